"""The LlamaRec-style ranker on the tiny model: examples, answer token, training, scores."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from llmrec.artifacts import load_rows
from llmrec.data.formats import title_map, titles_for
from llmrec.data.samples import sample_records
from llmrec.errors import LlmrecError
from llmrec.evaluation.spine import Task, evaluate_and_save
from llmrec.llm.train import IGNORE_INDEX, config_for, tokenize_pair
from llmrec.recommenders.base import REGISTRY
from llmrec.recommenders.ranker import (
    LetterOrder,
    TrainedRanker,
    answer_letter_ids,
    candidate_scores,
    chance_loss,
    first_pick_summary,
    first_picks,
    listing_lengths,
    ranker_examples,
    recall_at,
    scores_file,
    setting_suffix,
    shown_order,
    train_ranker,
)
from llmrec.recommenders.rerank import LETTERS, letter_prompt, letter_token_ids


def _listed(prompt: str) -> list[str]:
    """The candidate titles a letter prompt lists, in letter order."""
    return re.findall(r"^\([A-Z]\) (.*)$", prompt, flags=re.M)


def test_top_with_scores_is_recommend_many_with_its_scores(item_knn_temporal, temporal_parts):
    inputs = [list(i) for i in temporal_parts["valid"]["input_ids"][:5]]
    ids, scores = item_knn_temporal.top_with_scores(inputs, 20)
    assert ids == item_knn_temporal.recommend_many(inputs, 20)
    full = item_knn_temporal.scores(item_knn_temporal._input_matrix(inputs), inputs)
    for row, (cands, sc) in enumerate(zip(ids, scores, strict=True)):
        assert sc == sorted(sc, reverse=True)
        assert sc == pytest.approx([full[row, item_knn_temporal.col[c]] for c in cands])
        assert not set(cands) & set(inputs[row])


def test_examples_answer_a_target_among_the_retrievers_candidates(item_knn_temporal, temporal_parts, ml100k):
    records = sample_records(temporal_parts["train"], 80)
    pairs, stats = ranker_examples(records, item_knn_temporal, ml100k.movies, n_candidates=20, seed=0)
    names = title_map(ml100k.movies)
    cands = dict(zip(records["record_id"], item_knn_temporal.recommend_many(records["input_ids"], 20), strict=True))
    targets = dict(zip(records["record_id"], records["target_ids"], strict=True))
    with_target = {r for r in records["record_id"] if set(cands[r]) & set(map(int, targets[r]))}
    assert stats["records"] == 80 and stats["kept"] == len(pairs) == len(with_target)
    assert stats["dropped"] == 80 - len(with_target) > 0  # some records have no target in the top 20
    assert {p["record_id"] for p in pairs} == with_target
    for p in pairs:
        rid = p["record_id"]
        assert p["candidates"] == cands[rid]
        assert p["answer"] in LETTERS[:20] and len(p["answer"]) == 1
        listed = _listed(p["prompt"])
        assert sorted(listed) == sorted(titles_for(cands[rid], names))
        order = shown_order(rid, 20, 0)
        assert listed == titles_for([cands[rid][j] for j in order], names)
        answer = cands[rid][order[LETTERS.index(p["answer"])]]
        assert answer == p["answer_id"] and answer in set(map(int, targets[rid]))
        assert p["prompt"].endswith("(")
    # the shuffle is seeded per record: the same pairs in any record order, another seed differs
    again, _ = ranker_examples(records.iloc[::-1], item_knn_temporal, ml100k.movies, n_candidates=20, seed=0)
    assert {p["record_id"]: p["prompt"] for p in again} == {p["record_id"]: p["prompt"] for p in pairs}
    other, _ = ranker_examples(records, item_knn_temporal, ml100k.movies, n_candidates=20, seed=1)
    assert sum(a["prompt"] != b["prompt"] for a, b in zip(pairs, other, strict=True)) > len(pairs) // 2
    assert sum(shown_order(r, 20, 0) != list(range(20)) for r in with_target) == len(with_target)
    # the answer letters spread over the list, not stuck on the retriever's first
    assert len({p["answer"] for p in pairs}) >= 5
    with pytest.raises(LlmrecError):
        ranker_examples(records, item_knn_temporal, ml100k.movies, n_candidates=27)


def test_examples_without_years_list_the_same_candidates_with_shorter_titles(tiny, item_knn_temporal,
                                                                            temporal_parts, ml100k):
    _, tok = tiny
    records = sample_records(temporal_parts["train"], 40)
    with_year, stats = ranker_examples(records, item_knn_temporal, ml100k.movies, seed=0)
    bare, bare_stats = ranker_examples(records, item_knn_temporal, ml100k.movies, seed=0, with_year=False)
    assert stats == bare_stats and len(bare) == len(with_year) > 0
    bare_names = title_map(ml100k.movies, with_year=False)
    for a, b in zip(with_year, bare, strict=True):
        # the same record, candidates, listing and answer: only the titles' years are gone
        assert {k: a[k] for k in ("record_id", "answer", "answer_id", "candidates")} == \
            {k: b[k] for k in ("record_id", "answer", "answer_id", "candidates")}
        order = shown_order(b["record_id"], 20, 0)
        assert _listed(b["prompt"]) == titles_for([b["candidates"][j] for j in order], bare_names)
        assert not re.search(r"\((19|20)\d\d\)", b["prompt"]) and re.search(r"\((19|20)\d\d\)", a["prompt"])
    lengths = listing_lengths(tok, records, item_knn_temporal, ml100k.movies, seed=0)
    assert list(lengths["titles"]) == ["with year", "without year"]
    assert list(lengths["examples"]) == [len(with_year)] * 2
    want = np.mean([len(tok(p["prompt"])["input_ids"]) for p in bare])
    assert lengths["mean_tokens"].iloc[1] == pytest.approx(want)
    assert lengths["share"].iloc[0] == 1 and 0 < lengths["share"].iloc[1] < 1
    assert (setting_suffix(True), setting_suffix(False)) == ("", "-no-year")


def test_the_trained_answer_token_is_the_letter_read_at_test_time(tiny, item_knn_temporal, temporal_parts, ml100k):
    _, tok = tiny
    assert answer_letter_ids(tok, 20) == letter_token_ids(tok, 20)
    pairs, _ = ranker_examples(temporal_parts["train"].head(30), item_knn_temporal, ml100k.movies)
    read = letter_token_ids(tok, 20)
    for p in pairs[:10]:
        f = tokenize_pair(tok, p["prompt"], p["answer"], cutoff_len=4096)
        labelled = [t for t in f["labels"] if t != IGNORE_INDEX]
        assert labelled == [read[LETTERS.index(p["answer"])], tok.eos_token_id]
        # the prompt's tokens are the ones scoring sees (tokenized alone, as at test time)
        n_prompt = len(tok(p["prompt"])["input_ids"])
        assert f["input_ids"][:n_prompt] == tok(p["prompt"])["input_ids"]


def test_train_ranker_trains_caches_and_checks_cutoff(tiny_model_dir, item_knn_temporal, temporal_parts, ml100k, tmp_path):
    torch.set_num_threads(1)
    train, valid = temporal_parts["train"].head(60), temporal_parts["valid"].head(20)
    config = config_for("smoke", max_steps=2, batch_size=2, max_train_records=None,
                        max_valid_records=4, cutoff_len=2048)
    out = tmp_path / "ranker"
    result, stats = train_ranker(str(tiny_model_dir), train, valid, item_knn_temporal, ml100k.movies, out, config,
                                 progress=False)
    assert result.steps == 2 and (out / "adapter" / "adapter_config.json").is_file()
    assert stats["train"]["records"] == 60 and result.n_train == stats["train"]["kept"] > 0
    assert result.n_valid == min(4, stats["valid"]["kept"])
    assert all(math.isfinite(s["loss"]) for s in result.step_log)
    # only the letter and EOS are trained: 2 labelled tokens per example
    assert all(s["tokens"] in (2, 4) for s in result.step_log)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert chance_loss(tok, 20) == pytest.approx(math.log(20) / 2)  # ln 20 over the letter and EOS
    again, _ = train_ranker(str(tiny_model_dir), train, valid, item_knn_temporal, ml100k.movies, out, config,
                            progress=False)
    assert again.finished_utc == result.finished_utc and again.data_fingerprint == result.data_fingerprint
    short = config_for("smoke", max_steps=1, cutoff_len=64)
    with pytest.raises(LlmrecError, match="cutoff_len"):
        train_ranker(str(tiny_model_dir), train, valid, item_knn_temporal, ml100k.movies, tmp_path / "cut", short,
                     progress=False)
    assert not (tmp_path / "cut").exists()


def test_candidate_scores_read_the_shown_letters_back_in_retriever_order(tiny, item_knn_temporal, temporal_parts, ml100k):
    model, tok = tiny
    records = temporal_parts["test"].head(5)
    entries = candidate_scores(model, tok, records, item_knn_temporal, ml100k.movies, n_candidates=20, batch_size=4,
                               progress=False)
    ids, raw = item_knn_temporal.top_with_scores(records["input_ids"], 20)
    read = letter_token_ids(tok, 20)
    names = title_map(ml100k.movies)
    for e, rid, inputs, c, r in zip(entries, records["record_id"], records["input_ids"], ids, raw,
                                    strict=True):
        assert e["record_id"] == rid and e["candidates"] == c and e["retriever_scores"] == r
        assert e["shown"] == shown_order(rid, 20, 0)
        # a plain single-prompt forward pass, letters read in the order shown
        prompt = letter_prompt(titles_for(inputs, names), titles_for([c[j] for j in e["shown"]], names))
        with torch.no_grad():
            logits = model(**tok(prompt, return_tensors="pt")).logits[0, -1].float()
        shown = torch.log_softmax(logits[read], dim=-1).tolist()
        expected = [0.0] * 20
        for pos, j in enumerate(e["shown"]):
            expected[j] = shown[pos]
        assert e["llm_scores"] == pytest.approx(expected, abs=1e-4)
        assert float(np.logaddexp.reduce(e["llm_scores"])) == pytest.approx(0.0, abs=1e-5)


def test_trained_ranker_predicts_from_its_candidates_through_evaluate(tiny, item_knn_temporal, temporal_parts, ml100k,
                                                                      tmp_path):
    model, tok = tiny
    assert REGISTRY["ranker"] is TrainedRanker
    records = temporal_parts["test"].head(6)
    ranker = TrainedRanker(model, tok, ml100k.movies, item_knn_temporal, system="tiny", k=4, batch_size=3,
                           progress=False)
    rows, saved = evaluate_and_save(ranker, records, Task.of(ml100k.movies, temporal_parts["train"]), tmp_path,
                                    "temporal")
    assert saved["n_records"] == 6 and saved["setting"] == "lora-ranker/letters"
    assert saved["retriever"] == "item_knn" and saved["n_candidates"] == 20
    for row in rows:
        assert len(row["predicted_ids"]) == 4 == len(set(row["predicted_ids"]))
        assert set(row["predicted_ids"]) <= set(row["candidates"])
        assert not set(row["predicted_ids"]) & set(row["input_ids"])
        best = max(row["llm_scores"])
        assert row["llm_scores"][row["candidates"].index(row["predicted_ids"][0])] == best
    assert load_rows(tmp_path, "tiny", "lora-ranker/letters", "temporal") == rows
    # the row says which letter the ranker put first most often, and how often
    letters = [LETTERS[shown_order(r["record_id"], 20).index(r["candidates"].index(r["predicted_ids"][0]))]
               for r in rows]
    top = max(sorted(set(letters)), key=letters.count)
    assert saved["first_letter"] == top and saved["first_letter_share"] == round(letters.count(top) / 6, 4)
    # each record is scored once: a second predict reads the cache
    assert ranker.scored_records == 6
    ranker.predict(records.head(3))
    assert ranker.scored_records == 6


def test_recall_at_is_the_share_of_targets_in_the_top_n(item_knn_temporal, temporal_parts):
    records = temporal_parts["valid"].head(50)
    rec = recall_at(item_knn_temporal, records, 20)
    tops = item_knn_temporal.recommend_many(records["input_ids"], 20)
    hits = [len(set(t) & set(top)) for t, top in zip(records["target_ids"], tops, strict=True)]
    assert rec["n_records"] == 50
    assert rec["any_target"] == pytest.approx(np.mean([h > 0 for h in hits]))
    assert rec["target_share"] == pytest.approx(np.mean(hits) / 4)
    assert 0 < rec["target_share"] <= rec["any_target"] <= 1
    assert recall_at(item_knn_temporal, records, 50)["target_share"] >= rec["target_share"]


def test_first_picks_count_the_letter_each_record_put_first():
    # candidates 10, 11, 12 in retriever order; the prompt showed them as (A) 12, (B) 10, (C) 11
    entries = [{"candidates": [10, 11, 12], "shown": [2, 0, 1], "llm_scores": [-2.0, -3.0, -0.5]},  # 12: A
               {"candidates": [10, 11, 12], "shown": [2, 0, 1], "llm_scores": [-0.1, -3.0, -2.0]},  # 10: B
               {"candidates": [10, 11, 12], "shown": [1, 2, 0], "llm_scores": [-1.0, -1.0, -1.0]}]  # tie: 10, C
    picks = first_picks(entries, 3)
    assert picks.set_index("letter")["records"].to_dict() == {"A": 1, "B": 1, "C": 1}
    assert picks["share"].sum() == pytest.approx(1.0)
    entries[1]["llm_scores"] = [-3.0, -3.0, -0.1]  # now 12, shown as (A)
    assert first_pick_summary(entries) == {"first_letter": "A", "first_letter_share": round(2 / 3, 4)}
    assert first_pick_summary([]) == {}


def test_letter_order_lists_the_candidates_as_the_prompt_shows_them(item_knn_temporal, temporal_parts, ml100k,
                                                                   tmp_path):
    assert REGISTRY["letter-order"] is LetterOrder
    records = temporal_parts["test"].head(8)
    control = LetterOrder(item_knn_temporal, n_candidates=20, k=4, seed=0)
    rows, saved = evaluate_and_save(control, records, Task.of(ml100k.movies, temporal_parts["train"]), tmp_path,
                                    "temporal")
    assert saved["system"] == "item_knn" and saved["setting"] == "top20-letter-order"
    assert saved["retriever"] == "item_knn" and saved["n_records"] == 8
    tops = item_knn_temporal.recommend_many(records["input_ids"], 20)
    for row, rid, top in zip(rows, records["record_id"], tops, strict=True):
        assert row["candidates"] == [int(c) for c in top]
        assert row["predicted_ids"] == [int(top[j]) for j in shown_order(rid, 20, 0)[:4]]
    with pytest.raises(LlmrecError, match="n_candidates must be between 1 and 26"):
        LetterOrder(item_knn_temporal, n_candidates=27)


def test_scores_on_disk_are_read_back_only_for_unchanged_candidates(tiny, item_knn_temporal, temporal_parts,
                                                                    ml100k, tmp_path):
    import gzip
    import json

    model, tok = tiny
    records = temporal_parts["test"].head(6)
    adapter = tmp_path / "ranker" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    path = scores_file(adapter, "float32", seed=0)
    assert path.parent == tmp_path / "ranker" / "scores" and "float32-seed0" in path.name
    kw = dict(system="tiny", k=4, batch_size=3, progress=False, scores_file=path)
    first = TrainedRanker(model, tok, ml100k.movies, item_knn_temporal, **kw)
    want = first.predict(records)
    assert first.scored_records == 6 and path.is_file()
    again = TrainedRanker(model, tok, ml100k.movies, item_knn_temporal, **kw)
    assert again.predict(records) == want  # the same lists and scores, bit for bit
    assert again.scored_records == 0 and again.reused_records == 6
    assert again.settings()["reused_scores"] == 6
    # a stored entry whose candidates are not the retriever's today is scored again
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    rows[0]["candidates"] = rows[0]["candidates"][::-1]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    third = TrainedRanker(model, tok, ml100k.movies, item_knn_temporal, **kw)
    assert third.predict(records) == want and third.scored_records == 1 and third.reused_records == 5
    (adapter / "adapter_model.safetensors").write_bytes(b"retrained")
    assert scores_file(adapter, "float32", seed=0) != path  # another adapter, another file
    # another title format, another file: the same adapter's scores of another prompt
    assert scores_file(adapter, "float32", seed=0, with_year=False).name.endswith("seed0-no-year.jsonl.gz")
    with pytest.raises(LlmrecError, match="train the ranker first"):
        scores_file(tmp_path / "nowhere", "float32")
