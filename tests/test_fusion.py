"""Score fusion: standardisation, weight 0 is the retriever, the weight chosen on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.artifacts import load_rows
from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import ap_at_k
from llmrec.evaluation.spine import Task, evaluate_and_save
from llmrec.recommenders.base import REGISTRY
from llmrec.recommenders.fusion import (
    GRID,
    Fusion,
    choose_weight,
    fuse,
    fused_ranking,
    llm_changes,
    map_at,
    standardise,
)
from llmrec.recommenders.ranker import TrainedRanker


class Scores:
    """A scorer with fixed LLM scores (anything with ``candidate_scores(records)`` fuses):
    the retriever's real candidates and scores, and ``llm(record_index, candidates, targets)``."""

    def __init__(self, retriever, llm):
        self.retriever, self.llm = retriever, llm

    def candidate_scores(self, records):
        ids, raw = self.retriever.top_with_scores(records["input_ids"], 20)
        return [{"record_id": r, "candidates": c, "retriever_scores": s,
                 "llm_scores": self.llm(n, c, [int(x) for x in t])}
                for n, (r, t, c, s) in enumerate(zip(records["record_id"], records["target_ids"], ids, raw,
                                                     strict=True))]


def _noise(n, cands, targets):
    return list(np.log(np.random.default_rng(n).dirichlet(np.ones(len(cands)))))


def _oracle(n, cands, targets):
    """Log-probabilities that favour the targets: an LLM that knows the answer."""
    raw = np.array([3.0 if c in targets else 0.0 for c in cands])
    return list(raw - np.logaddexp.reduce(raw))


def test_standardise_edge_cases():
    z = standardise([3.0, 1.0, 2.0])
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    assert list(np.argsort(-z)) == [0, 2, 1]
    assert standardise([0.4, 0.4, 0.4]).tolist() == [0.0, 0.0, 0.0]
    assert standardise([5.0]).tolist() == [0.0]
    assert standardise([]).size == 0
    assert standardise([1e9, 1e9 + 2]).tolist() == pytest.approx([-1.0, 1.0])
    with pytest.raises(LlmrecError):
        standardise([1.0, float("-inf")])


def test_weight_zero_is_exactly_the_retrievers_order(item_knn_temporal, temporal_parts):
    records = temporal_parts["valid"].head(40)
    entries = Scores(item_knn_temporal, _noise).candidate_scores(records)
    ranked, _ = fused_ranking(entries, 0.0)
    assert ranked == item_knn_temporal.recommend_many(records["input_ids"], 20)
    # ties in the retriever's scores stay in its order at weight 0, whatever the LLM says
    tied = [{"candidates": [7, 3, 9, 1], "retriever_scores": [2.0, 1.0, 1.0, 1.0],
             "llm_scores": [-9.0, -3.0, -1.0, -0.1]}]
    assert fused_ranking(tied, 0.0)[0] == [[7, 3, 9, 1]]
    assert fused_ranking(tied, 1.0)[0] == [[1, 9, 3, 7]]  # z = 1.73, -0.58 x3, plus the LLM
    assert fuse([[2.0, 1.0, 1.0, 1.0]], [[-9.0, -3.0, -1.0, -0.1]], 0.5)[0] == pytest.approx(
        (standardise([2.0, 1.0, 1.0, 1.0]) + 0.5 * np.array([-9.0, -3.0, -1.0, -0.1])).tolist())
    with pytest.raises(LlmrecError):
        fuse([[1.0, 2.0]], [[0.0]], 1.0)
    with pytest.raises(LlmrecError):
        fuse([[1.0]], [[0.0]], -1.0)


def test_choose_weight_prefers_smaller_on_ties_and_never_loses_to_the_retriever(item_knn_temporal, temporal_parts):
    weight, table = choose_weight(lambda w: 0.5 if w >= 1 else 0.1, GRID)
    assert weight == 1.0 and table["chosen"].sum() == 1
    assert table.loc[table["chosen"], "weight"].item() == 1.0
    weight, _ = choose_weight(lambda w: 0.3, GRID)
    assert weight == 0.0
    with pytest.raises(LlmrecError, match="include 0"):
        choose_weight(lambda w: 0.3, (0.5, 1.0))
    valid = temporal_parts["valid"].head(60)
    targets = list(valid["target_ids"])
    for llm in (_noise, _oracle):
        entries = Scores(item_knn_temporal, llm).candidate_scores(valid)
        score_at = map_at(entries, targets, 4)
        weight, table = choose_weight(score_at, GRID)
        assert table["valid_map_at_4"].max() == pytest.approx(score_at(weight))
        assert score_at(weight) >= score_at(0.0)
        ranked = item_knn_temporal.recommend_many(valid["input_ids"], 4)
        assert score_at(0.0) == pytest.approx(np.mean([ap_at_k(r, t, 4) for r, t in zip(ranked, targets, strict=True)]))
        if llm is _oracle:  # an LLM that knows the targets earns a weight and beats the retriever
            assert weight > 0 and score_at(weight) > score_at(0.0)


def test_fusion_through_evaluate_reuses_the_rankers_scores(tiny, item_knn_temporal, temporal_parts, ml100k, tmp_path):
    model, tok = tiny
    assert REGISTRY["fusion"] is Fusion
    ranker = TrainedRanker(model, tok, ml100k.movies, item_knn_temporal, system="tiny", k=4, batch_size=4,
                           progress=False)
    valid, test = temporal_parts["valid"].head(8), temporal_parts["test"].head(6)
    fusion = Fusion.tuned(ranker, valid, system="tiny", k=4)
    assert ranker.scored_records == 8 and fusion.weight in GRID
    task = Task.of(ml100k.movies, temporal_parts["train"])
    evaluate_and_save(ranker, test, task, tmp_path, "temporal")
    rows, saved = evaluate_and_save(fusion, test, task, tmp_path, "temporal")
    assert ranker.scored_records == 14  # the fusion read the ranker's cached test scores
    assert saved["setting"] == "lora-ranker/fused" and saved["n_records"] == 6
    assert saved["weight"] == fusion.weight and saved["fusion_grid"] == "0 0.1 0.25 0.5 1 2 4 8"
    by_weight = json.loads(saved["valid_map_by_weight"])
    assert set(by_weight) == {f"{w:g}" for w in GRID}
    assert saved["valid_map_at_4"] >= saved["valid_map_at_4_retriever"]
    entries = ranker.candidate_scores(test)
    expected, _ = fused_ranking(entries, fusion.weight, 4)
    for row, e, exp in zip(rows, entries, expected, strict=True):
        assert row["predicted_ids"] == exp and row["candidates"] == e["candidates"]
        assert row["moved"] == sum(a != b for a, b in zip(exp, e["candidates"][:4], strict=True))
    assert load_rows(tmp_path, "tiny", "lora-ranker/fused", "temporal") == rows
    # weight 0 through the same path: the retriever's top 4 exactly
    zero = Fusion(ranker, 0.0, system="tiny", setting="lora-ranker/fused-0", k=4)
    rows0, _ = evaluate_and_save(zero, test, task, tmp_path, "temporal")
    assert [r["predicted_ids"] for r in rows0] == item_knn_temporal.recommend_many(test["input_ids"], 4)
    assert all(r["moved"] == 0 for r in rows0)
    frame, share = llm_changes(rows0)
    assert share == 0.0 and not frame["differs"].any()
    with pytest.raises(LlmrecError):
        Fusion(object(), 1.0, system="x")


def test_llm_changes_names_what_moved_up():
    rows = [{"record_id": "1-0", "candidates": [10, 20, 30, 40, 50, 60], "predicted_ids": [50, 10, 20, 30]},
            {"record_id": "2-0", "candidates": [1, 2, 3, 4, 5], "predicted_ids": [1, 2, 3, 4]},
            {"record_id": "3-0", "candidates": [1, 2, 3, 4, 5], "predicted_ids": [2, 1, 3, 4]}]
    frame, share = llm_changes(rows, k=4)
    assert share == pytest.approx(2 / 3)
    assert frame["differs"].tolist() == [True, False, True]
    assert frame["positions_changed"].tolist() == [4, 0, 2]
    assert frame["entered"].tolist() == [1, 0, 0]
    assert frame.loc[0, "moved_up"] == [(50, 5, 1)]
    assert frame.loc[2, "moved_up"] == [(2, 2, 1)]
    assert frame.loc[1, "moved_up"] == []
