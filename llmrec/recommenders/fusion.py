"""Score fusion: the retriever's standardised score plus lambda times the LLM's log-probability.

PROTOCOL.md section 5. Per record and candidate (the retriever's top 20)::

    fused = z(retriever score) + lambda * LLM log-probability

where ``z`` standardises the retriever's scores over the record's own candidates (its raw
scale differs between retrievers and records) and the LLM's score is the ranker's
log-softmax over the candidates (:func:`llmrec.recommenders.ranker.candidate_scores`). This is the
linear interpolation of a first-stage and a second-stage score used throughout
learning-to-rank and two-stage recommendation, with lambda a single weight chosen on the
validation records by MAP@4 (:func:`choose_weight`). The grid includes 0, which gives
exactly the retriever's order (ties broken by it), so the chosen fusion is never worse
than the retriever on validation. No maintained library fuses two score lists per record
over our records and metric, and the arithmetic is a few lines, so it is written here.

:func:`llm_changes` is the "what did the LLM change" table: per record, whether the fused
top K differs from the retriever's and which items moved up.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import ap_at_k
from llmrec.evaluation.weights import choose_weight as choose_best_weight
from llmrec.recommenders.base import Recommender, ranked_predictions, register
from llmrec.recommenders.rerank import order_by_scores

#: The weights tried on validation (0: the retriever alone).
GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def standardise(scores: Sequence[float]) -> np.ndarray:
    """One record's scores as z-scores over its candidates (population standard deviation);
    all zeros when they are all equal (a standard deviation of 0: one candidate, or ties)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    if not np.all(np.isfinite(s)):
        raise LlmrecError("a retriever score is not finite; retrieve fewer candidates than the "
                          "catalog has items besides the inputs")
    if s.max() == s.min():  # not s.std() == 0: the mean of equal floats can be off by an ulp
        return np.zeros_like(s)
    return (s - s.mean()) / s.std()


def fuse(retriever_scores: Sequence[Sequence[float]], llm_scores: Sequence[Sequence[float]],
         weight: float) -> list[list[float]]:
    """Per record: ``z(retriever) + weight * llm`` over its candidates (same order).
    ``weight=0`` is the standardised retriever score alone (the LLM's scores unread)."""
    if len(retriever_scores) != len(llm_scores):
        raise LlmrecError(f"{len(retriever_scores)} retriever score lists for {len(llm_scores)} LLM ones")
    if not math.isfinite(weight) or weight < 0:
        raise LlmrecError(f"fusion weight must be a finite number >= 0, got {weight}")
    out = []
    for r, m in zip(retriever_scores, llm_scores, strict=True):
        if len(r) != len(m):
            raise LlmrecError(f"{len(r)} retriever scores for {len(m)} LLM scores of one record")
        z = standardise(r)
        out.append((z if weight == 0 else z + weight * np.asarray(m, dtype=np.float64)).tolist())
    return out


def fused_ranking(entries: Sequence[Mapping[str, Any]], weight: float, k: int | None = None
                  ) -> tuple[list[list[int]], list[list[float]]]:
    """``(ranked ids, fused scores)`` of :func:`llmrec.recommenders.ranker.candidate_scores` entries;
    ties keep the retriever's order."""
    fused = fuse([e["retriever_scores"] for e in entries], [e["llm_scores"] for e in entries], weight)
    return order_by_scores([e["candidates"] for e in entries], fused, k), fused


def map_at(entries: Sequence[Mapping[str, Any]], targets: Sequence[Sequence[int]], k: int = 4
           ) -> Callable[[float], float]:
    """``weight -> MAP@k`` of the fused lists of ``entries`` against ``targets`` (one list
    per entry): the function :func:`choose_weight` maximises on validation records."""
    if len(entries) != len(targets):
        raise LlmrecError(f"{len(entries)} scored records for {len(targets)} target lists")
    if not entries:
        raise LlmrecError("no validation records to choose the fusion weight on")

    def score_at(weight: float) -> float:
        ranked, _ = fused_ranking(entries, weight, k)
        return float(np.mean([ap_at_k(r, t, k) for r, t in zip(ranked, targets, strict=True)]))

    return score_at


def choose_weight(score_at: Callable[[float], float], grid: Sequence[float] = GRID
                  ) -> tuple[float, pd.DataFrame]:
    """The weight of ``grid`` with the best ``score_at`` (validation MAP@4); ties go to the
    smaller weight (:func:`llmrec.evaluation.weights.choose_weight`, the one chooser of every mixing
    weight). Fusion's own rule: ``grid`` must include 0 (the retriever alone), so the choice
    is never worse than the retriever on validation. Returns the weight and the table
    (``weight``, ``valid_map_at_4``, ``chosen``)."""
    if 0.0 not in {float(w) for w in grid}:
        raise LlmrecError("the fusion grid must include 0 (the retriever alone), so the fusion is "
                          "never worse than the retriever on validation")
    weight, table = choose_best_weight(score_at, grid)
    return weight, table.rename(columns={"score": "valid_map_at_4"})


def _moved(candidates: Sequence[int], ranked: Sequence[int]) -> int:
    """Positions of the list whose item is not the retriever's item at that position."""
    return sum(a != b for a, b in zip(ranked, candidates[:len(ranked)], strict=True))


@register("fusion")
class Fusion(Recommender):
    """The retriever's candidates ordered by :func:`fuse` of its scores and the LLM's.

    ``scorer``: anything with ``candidate_scores(records)`` returning
    :func:`llmrec.recommenders.ranker.candidate_scores` entries (a :class:`llmrec.recommenders.ranker.TrainedRanker`,
    whose cache then serves both systems from one pass). ``weight``: lambda, fixed, or
    chosen on validation records with :meth:`tuned`. Predictions keep ``candidates``
    (retriever order), ``fused_scores`` and ``moved`` (positions of the list that hold
    another item than the retriever's list)."""

    def __init__(self, scorer: Any, weight: float, *, system: str, setting: str = "lora-ranker/fused",
                 k: int = 10, grid: Sequence[float] | None = None, table: pd.DataFrame | None = None):
        if not math.isfinite(weight) or weight < 0:
            raise LlmrecError(f"fusion weight must be a finite number >= 0, got {weight}")
        if not hasattr(scorer, "candidate_scores"):
            raise LlmrecError("the fusion's scorer needs a candidate_scores(records) method "
                              "(e.g. llmrec.recommenders.ranker.TrainedRanker)")
        self.scorer, self.weight, self.system, self.setting, self.k = scorer, float(weight), system, setting, k
        self.grid = None if grid is None else [float(w) for w in grid]
        self.table = table
        self.fuse_seconds = float("nan")

    @classmethod
    def tuned(cls, scorer: Any, valid_records: pd.DataFrame, *, system: str,
              setting: str = "lora-ranker/fused", grid: Sequence[float] = GRID, k: int = 10
              ) -> Fusion:
        """The fusion with its weight chosen on ``valid_records`` by MAP@4 (:func:`choose_weight`)."""
        if len(valid_records) == 0:
            raise LlmrecError("no validation records to choose the fusion weight on; pass the "
                              "split's 'valid' part")
        entries = scorer.candidate_scores(valid_records)
        weight, table = choose_weight(map_at(entries, list(valid_records["target_ids"]), 4), grid)
        return cls(scorer, weight, system=system, setting=setting, k=k, grid=grid, table=table)

    def predict(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        entries = self.scorer.candidate_scores(records)
        start = time.perf_counter()
        ranked, fused = fused_ranking(entries, self.weight, self.k)
        self.fuse_seconds = time.perf_counter() - start
        extra = [{"candidates": e["candidates"], "fused_scores": [round(x, 4) for x in f],
                  "moved": _moved(e["candidates"], r)}
                 for e, f, r in zip(entries, fused, ranked, strict=True)]
        return ranked_predictions(ranked, self.k, extra)

    def settings(self) -> dict[str, Any]:
        """The weight, and with :meth:`tuned` the grid and each weight's validation MAP@4 (flat
        values: a results-table row)."""
        retriever = getattr(self.scorer, "retriever", None)
        out: dict[str, Any] = {"weight": self.weight, "fuse_seconds": round(self.fuse_seconds, 4)}
        if retriever is not None:
            out["retriever"] = getattr(retriever, "system", type(retriever).__name__)
        if hasattr(self.scorer, "n_candidates"):
            out["n_candidates"] = self.scorer.n_candidates
        if self.grid is not None:
            out["fusion_grid"] = " ".join(f"{w:g}" for w in sorted(self.grid))
        if self.table is not None:
            values = dict(zip(self.table["weight"], self.table["valid_map_at_4"], strict=True))
            if self.weight in values:
                out["valid_map_at_4"] = round(float(values[self.weight]), 6)
            if 0.0 in values:
                out["valid_map_at_4_retriever"] = round(float(values[0.0]), 6)
            out["valid_map_by_weight"] = json.dumps({f"{w:g}": round(float(v), 6) for w, v in values.items()})
        return out


def llm_changes(rows: Sequence[Mapping[str, Any]], k: int = 4) -> tuple[pd.DataFrame, float]:
    """What the LLM changed in each record's top ``k``: a frame with one row per record and
    the share of records whose list differs from the retriever's.

    ``rows``: prediction rows (or predictions) with ``candidates`` (retriever order) and
    ``predicted_ids`` (a :class:`Fusion`'s or a ranker's). Columns: ``record_id`` (the
    row's, else its position), ``differs`` (the top ``k`` is not the retriever's, order
    included), ``positions_changed``, ``entered`` (items of the top ``k`` from below the
    retriever's top ``k``) and ``moved_up`` (``(item_id, retriever rank, new rank)`` for each
    item ranked higher than the retriever ranked it; ranks from 1)."""
    if not rows:
        raise LlmrecError("no prediction rows to compare with the retriever")
    out = []
    for n, row in enumerate(rows):
        if "candidates" not in row:
            raise LlmrecError("a prediction row has no 'candidates'; pass a reranking system's rows")
        cands = [int(c) for c in row["candidates"]]
        top = [int(i) for i in list(row["predicted_ids"])[:k]]
        rank = {item: r + 1 for r, item in enumerate(cands)}
        moved = [(item, rank[item], r + 1) for r, item in enumerate(top) if rank[item] > r + 1]
        out.append({"record_id": row.get("record_id", n), "differs": top != cands[:k],
                    "positions_changed": _moved(cands[:k], top),
                    "entered": sum(rank[item] > k for item in top), "moved_up": moved})
    frame = pd.DataFrame(out)
    return frame, float(frame["differs"].mean())
