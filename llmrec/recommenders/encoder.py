"""Recommenders on item vectors: similarity search, and its fusion with collaborative filtering.

The blog's two closing proposals, run as systems of the report:

==================  ============================================================================
``similarity``      a record's six liked movies -> the catalog items nearest their mean vector
                    (cosine), inputs excluded. The vectors come from a language model's hidden
                    states (:mod:`llmrec.llm.embeddings`) or from the sentence encoder (the
                    ``content`` baseline is this system on all-MiniLM-L6-v2's vectors)
``score_fusion``    a collaborative baseline's scores and a similarity's, each standardised over
                    the catalog per record, mixed as ``z(cf) + weight * z(similarity)``; the
                    weight chosen on validation records (0 in the grid: never worse there than
                    the collaborative baseline alone)
==================  ============================================================================

The third proposal, a sequential model whose item table starts from the vectors, is
:class:`~llmrec.recommenders.strong_baselines.SasrecBaseline` with ``item_init``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmrec.errors import LlmrecError
from llmrec.evaluation.weights import choose_weight
from llmrec.llm.embeddings import prepare
from llmrec.recommenders.base import register
from llmrec.recommenders.fitted import Baseline
from llmrec.recommenders.strong_baselines import validation_map

#: fusion weights tried on validation (0: the collaborative baseline alone)
FUSION_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


@register("similarity")
class Similarity(Baseline):
    """Cosine to the mean of the inputs' item vectors.

    ``vectors`` has one row per id of ``vector_ids`` (any order; every catalog item needed);
    ``center`` removes the mean vector first (:func:`llmrec.llm.embeddings.prepare`)."""

    def __init__(self, train_records: pd.DataFrame, movies: pd.DataFrame, seed: int = 0,
                 k: int = 10, valid_records: pd.DataFrame | None = None, *,
                 vectors: np.ndarray | None = None, vector_ids: np.ndarray | None = None,
                 center: bool = True, **names: Any):
        self.vectors, self.vector_ids, self.center = vectors, vector_ids, center
        super().__init__(train_records, movies, seed, k, valid_records, **names)

    def item_vectors(self, movies: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, their item ids)``; a subclass may compute them."""
        if self.vectors is None or self.vector_ids is None:
            raise LlmrecError("similarity needs vectors= and vector_ids= (one row per catalog item)")
        return self.vectors, self.vector_ids

    def fit(self, train_records, movies):
        vectors, ids = self.item_vectors(movies)
        pos = {int(i): r for r, i in enumerate(ids)}
        missing = [int(i) for i in self.item_ids if int(i) not in pos]
        if missing:
            raise LlmrecError(f"no vector for catalog item {missing[0]}; encode every catalog item")
        self.emb = prepare(np.asarray(vectors)[[pos[int(i)] for i in self.item_ids]], self.center)

    def scores(self, inputs, input_lists):
        mean = np.asarray(inputs @ self.emb)
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return mean @ self.emb.T

    def settings(self):
        return {**super().settings(), "centered": self.center}


def standardise_rows(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (a constant row becomes 0)."""
    s = np.asarray(scores, dtype=np.float64)
    s = np.where(np.isfinite(s), s, np.nan)
    mean = np.nanmean(s, axis=1, keepdims=True)
    std = np.nanstd(s, axis=1, keepdims=True)
    z = (s - mean) / np.where(std > 0, std, 1.0)
    return np.nan_to_num(z, nan=0.0)


@register("score_fusion")
class ScoreFusion(Baseline):
    """``z(base) + weight * z(other)`` over the whole catalog, two fitted baselines of one split."""

    def __init__(self, base: Baseline, other: Baseline, weight: float, *, system: str,
                 setting: str, k: int = 10):
        if list(base.item_ids) != list(other.item_ids):
            raise LlmrecError("score fusion needs two baselines fitted on the same training records")
        self.base, self.other, self.weight = base, other, float(weight)
        self.item_ids, self.col, self.popularity = base.item_ids, base.col, base.popularity
        self.seed, self.k, self.valid_records = base.seed, k, base.valid_records
        self.name, self.system, self.setting = self.kind, system, setting
        self.fit_seconds = base.fit_seconds + other.fit_seconds

    def scores(self, inputs, input_lists):
        z = standardise_rows(self.base.scores(inputs, input_lists))
        if self.weight == 0:
            return z
        return z + self.weight * standardise_rows(self.other.scores(inputs, input_lists))

    def settings(self):
        return {**super().settings(), "fusion_weight": self.weight, "retriever": self.base.kind,
                "fused": f"{self.base.system} + {self.other.system}"}


def tuned_fusion(base: Baseline, other: Baseline, valid_records: pd.DataFrame, *, system: str,
                 setting: str, grid: Sequence[float] = FUSION_WEIGHTS
                 ) -> tuple[ScoreFusion, pd.DataFrame]:
    """The fusion with the weight of best validation MAP@4 (ties to the smaller weight), and
    the table of every weight's validation MAP@4."""
    if valid_records is None or len(valid_records) == 0:
        raise LlmrecError("the fusion weight is chosen on validation records; pass the split's 'valid' part")

    def score_at(weight: float) -> float:
        return validation_map(ScoreFusion(base, other, weight, system=system, setting=setting),
                              valid_records)

    best, frame = choose_weight(score_at, grid)
    return (ScoreFusion(base, other, best, system=system, setting=setting),
            frame.rename(columns={"score": "valid_map_at_4"}))


def choose_vectors(train_records: pd.DataFrame, valid_records: pd.DataFrame, movies: pd.DataFrame,
                   vectors: dict[tuple, np.ndarray], vector_ids: np.ndarray) -> pd.DataFrame:
    """Every candidate set of item vectors (``{key: vectors}``, e.g. ``(text, layer,
    pooling)``), centred and not, scored by :class:`Similarity`'s validation MAP@4; best
    first (stable on ties). Columns: ``key``, ``centred``, ``validation MAP@4``."""
    rows = [{"key": key, "centred": center,
             "validation MAP@4": validation_map(Similarity(train_records, movies, vectors=v,
                                                           vector_ids=vector_ids, center=center),
                                                valid_records)}
            for key, v in vectors.items() for center in (True, False)]
    return (pd.DataFrame(rows).sort_values("validation MAP@4", ascending=False, kind="stable")
            .reset_index(drop=True))
