"""A recommender fitted on training records that scores every catalog item.

:class:`Baseline` is what the baselines of :mod:`llmrec.recommenders.baselines` and the
strong baselines of :mod:`llmrec.recommenders.strong_baselines` share: the catalog's
columns ordered by training popularity, the input matrix of a batch of records, the top
``k`` with the inputs excluded, and :func:`train_matrix` (training records as 0/1 rows).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data.records import item_popularity
from llmrec.errors import LlmrecError
from llmrec.evaluation.matching import Catalog
from llmrec.recommenders.base import Recommender, ranked_predictions


class Baseline(Recommender):
    """Scores every catalog item for a batch of input lists; ``recommend`` ranks them.

    As a :class:`~llmrec.recommenders.base.Recommender` its ``system`` is its name, its setting
    ``baseline`` (unless ``system`` and ``setting`` name a variant: an LLM's item vectors in
    a baseline's place), and :meth:`predict` gives each record's top ``k`` (10) items. A
    baseline that makes a choice makes it on ``valid_records`` (the split's validation part)."""

    setting = "baseline"

    def __init__(self, train_records: pd.DataFrame, movies: pd.DataFrame, seed: int = 0,
                 k: int = 10, valid_records: pd.DataFrame | None = None, *,
                 system: str | None = None, setting: str | None = None):
        if len(train_records) == 0:
            raise LlmrecError(f"baseline {self.kind!r} needs training records; the split is empty")
        self.name = self.kind
        self.system = system or self.kind
        self.setting = setting or type(self).setting
        self.seed, self.k, self.valid_records = seed, k, valid_records
        start = time.perf_counter()
        pop = item_popularity(train_records)
        ids = sorted(Catalog.from_movies(movies).item_ids)
        # columns ordered by training popularity, then id: a stable sort breaks ties this way
        ids.sort(key=lambda i: (-pop.get(i, 0), i))
        self.item_ids = np.array(ids, dtype=np.int64)
        self.col = {int(i): c for c, i in enumerate(ids)}
        self.popularity = np.array([pop.get(i, 0) for i in ids], dtype=np.float64)
        self.fit(train_records, movies)
        self.fit_seconds = time.perf_counter() - start

    # -- to implement
    def fit(self, train_records: pd.DataFrame, movies: pd.DataFrame) -> None:
        """Learn what the baseline needs from training records only."""

    def scores(self, inputs: sp.csr_matrix, input_lists: list[list[int]]) -> np.ndarray:
        """Dense (batch, n_items) scores; higher is better."""
        raise NotImplementedError

    # -- shared
    def _input_matrix(self, input_lists: list[list[int]]) -> sp.csr_matrix:
        rows, cols = [], []
        for r, items in enumerate(input_lists):
            for i in items:
                c = self.col.get(int(i))
                if c is not None:
                    rows.append(r)
                    cols.append(c)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                             shape=(len(input_lists), len(self.item_ids)))

    def top_with_scores(self, list_of_inputs: Iterable[Sequence[int]], k: int,
                        batch_size: int = 512) -> tuple[list[list[int]], list[list[float]]]:
        """Top-``k`` item ids for each input list (inputs excluded), in rank order, and the
        baseline's raw scores of those items (what a score fusion standardises)."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        lists = [[int(i) for i in items] for items in list_of_inputs]
        ids: list[list[int]] = []
        values: list[list[float]] = []
        for a in range(0, len(lists), batch_size):
            part = lists[a:a + batch_size]
            x = self._input_matrix(part)
            s = np.asarray(self.scores(x, part), dtype=np.float64)
            s[x.nonzero()] = -np.inf
            order = np.argsort(-s, axis=1, kind="stable")[:, :k]
            ids.extend(self.item_ids[order].tolist())
            values.extend(np.take_along_axis(s, order, axis=1).tolist())
        return ids, values

    def recommend_many(self, list_of_inputs: Iterable[Sequence[int]], k: int,
                       batch_size: int = 512) -> list[list[int]]:
        """Top-``k`` item ids for each input list (inputs excluded), in rank order."""
        return self.top_with_scores(list_of_inputs, k, batch_size)[0]

    def recommend(self, input_ids: Sequence[int], k: int) -> list[int]:
        """Top-``k`` item ids for one list of input items (inputs excluded)."""
        return self.recommend_many([input_ids], k)[0]

    def predict(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        return ranked_predictions(self.recommend_many(records["input_ids"], self.k))

    def settings(self) -> dict[str, Any]:
        return {"fit_seconds": round(self.fit_seconds, 3)}


def train_matrix(b: Baseline, train_records: pd.DataFrame) -> sp.csr_matrix:
    """Training records as 0/1 rows of their 10 items, over ``b``'s catalog columns."""
    lists = [list(i) + list(t) for i, t in zip(train_records["input_ids"],
                                               train_records["target_ids"], strict=True)]
    x = b._input_matrix(lists)
    x.data[:] = 1.0
    return x
