"""Non-LLM baselines that see only a record's 6 input items, exactly like the LLM.

PROTOCOL.md section 5. Each baseline is fitted on training records only and ranks every
catalog item for a list of input items, the inputs themselves excluded; ties go to the item
liked more often in training, then to the smaller id.

============  ===================================================================
``random``    a seeded random order (the seed and the inputs fix each record's list)
``popularity`` most-liked items in the training records (a record's 10 items are likes)
``item_knn``  sum over the inputs of the cosine of co-like counts within training records
``content``   cosine to the mean all-MiniLM-L6-v2 embedding of the inputs'
              ``"Title (Year) genres"`` texts
``als``       implicit-feedback ALS (Hu, Koren & Volinsky 2008) on training records as
              users; a record's 6 inputs are folded in with one least-squares step
``ease``      EASE, the linear item-item model; its L2 weight chosen on validation
``sasrec``    SASRec, the self-attentive sequential model; its epochs chosen on validation
============  ===================================================================

The last two, the strong baselines, are RecBole's models: :mod:`llmrec.strong_baselines`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.errors import LlmrecError
from llmrec.matching import Catalog, embed_texts
from llmrec.recommenders import Recommender, build, ranked_predictions, register
from llmrec.records import item_popularity

BASELINES = ["random", "popularity", "item_knn", "content", "als", "ease", "sasrec"]


class Baseline(Recommender):
    """Scores every catalog item for a batch of input lists; ``recommend`` ranks them.

    As a :class:`~llmrec.recommenders.Recommender` its ``system`` is its name, its setting
    ``baseline``, and :meth:`predict` gives each record's top ``k`` (10) items. A baseline
    that makes a choice makes it on ``valid_records`` (the split's validation part)."""

    setting = "baseline"

    def __init__(self, train_records: pd.DataFrame, movies: pd.DataFrame, seed: int = 0,
                 k: int = 10, valid_records: pd.DataFrame | None = None):
        if len(train_records) == 0:
            raise LlmrecError(f"baseline {self.kind!r} needs training records; the split is empty")
        self.system = self.name = self.kind
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


@register("random")
class RandomBaseline(Baseline):
    def scores(self, inputs, input_lists):
        return np.stack([np.random.default_rng([self.seed, *items]).random(len(self.item_ids))
                         for items in input_lists])


@register("popularity")
class PopularityBaseline(Baseline):
    def scores(self, inputs, input_lists):
        return np.broadcast_to(self.popularity, (len(input_lists), len(self.item_ids))).copy()


def train_matrix(b: Baseline, train_records: pd.DataFrame) -> sp.csr_matrix:
    """Training records as 0/1 rows of their 10 items, over ``b``'s catalog columns."""
    lists = [list(i) + list(t) for i, t in zip(train_records["input_ids"],
                                               train_records["target_ids"], strict=True)]
    x = b._input_matrix(lists)
    x.data[:] = 1.0
    return x


@register("item_knn")
class ItemKnnBaseline(Baseline):
    def fit(self, train_records, movies):
        x = train_matrix(self, train_records)
        co = (x.T @ x).tocsr()
        norms = np.sqrt(co.diagonal())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        sim = sp.diags(inv) @ co @ sp.diags(inv)
        sim = sim.tolil()
        sim.setdiag(0.0)
        self.sim = sim.tocsr()

    def scores(self, inputs, input_lists):
        return np.asarray((inputs @ self.sim).todense())


@register("content")
class ContentBaseline(Baseline):
    def fit(self, train_records, movies):
        ids = np.sort(self.item_ids)  # a fixed order, so the cached embeddings are reused
        frame = movies.set_index("item_id").loc[ids]
        texts = [f"{t} {', '.join(g)}" for t, g in zip(frame["display_title"], frame["genres"],
                                                       strict=True)]
        emb = embed_texts(texts, cache=True).astype(np.float64)
        self.emb = emb[np.searchsorted(ids, self.item_ids)]

    def scores(self, inputs, input_lists):
        mean = inputs @ self.emb
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return mean @ self.emb.T


@register("als")
class AlsBaseline(Baseline):
    """Implicit ALS: preference 1 for a like, confidence 1 + alpha; training records are users."""

    factors, reg, alpha, iterations = 32, 0.1, 10.0, 10

    def fit(self, train_records, movies):
        x = train_matrix(self, train_records).tocsr()
        rng = np.random.default_rng(self.seed)
        n_items, f = x.shape[1], self.factors
        self.y = rng.normal(0, 0.01, size=(n_items, f))
        xt = x.T.tocsr()
        user_items = [x.indices[x.indptr[r]:x.indptr[r + 1]] for r in range(x.shape[0])]
        item_users = [xt.indices[xt.indptr[i]:xt.indptr[i + 1]] for i in range(n_items)]
        u = np.zeros((x.shape[0], f))
        eye = self.reg * np.eye(f)
        for _ in range(self.iterations):
            u = self._solve(self.y, user_items, eye)
            self.y = self._solve(u, item_users, eye)

    def _solve(self, other: np.ndarray, lists: list[np.ndarray], eye: np.ndarray) -> np.ndarray:
        """Per list: argmin_u sum_j c_j (p_j - u.o_j)^2 + reg |u|^2 over all rows j of other,
        c = 1 + alpha and p = 1 on the list's rows, else c = 1 and p = 0. Lists of one length
        are solved in one batched call."""
        gram = other.T @ other + eye
        out = np.zeros((len(lists), other.shape[1]))
        by_len: dict[int, list[int]] = {}
        for r, idx in enumerate(lists):
            if len(idx):
                by_len.setdefault(len(idx), []).append(r)
        for rows in by_len.values():
            o = other[np.stack([lists[r] for r in rows])]  # (batch, n, f)
            a = gram + self.alpha * np.einsum("bnf,bng->bfg", o, o)
            b = (1 + self.alpha) * o.sum(axis=1)
            out[rows] = np.linalg.solve(a, b[..., None])[..., 0]
        return out

    def scores(self, inputs, input_lists):
        inputs = inputs.tocsr()
        lists = [inputs.indices[inputs.indptr[r]:inputs.indptr[r + 1]] for r in range(inputs.shape[0])]
        u = self._solve(self.y, lists, self.reg * np.eye(self.factors))
        return u @ self.y.T


def fit_baseline(name: str, train_records: pd.DataFrame, movies: pd.DataFrame,
                 seed: int = 0, valid_records: pd.DataFrame | None = None,
                 **options: Any) -> Baseline:
    """Fit baseline ``name`` (one of :data:`BASELINES`) on training records; ``ease`` and
    ``sasrec`` make their choice on ``valid_records`` (or take it fixed in ``options``)."""
    if name not in BASELINES:
        raise LlmrecError(f"unknown baseline {name!r}; use one of {', '.join(BASELINES)}")
    return build(name, train_records=train_records, movies=movies, seed=seed,
                 valid_records=valid_records, **options)


# registers ease and sasrec; imported last, as it builds on Baseline
from llmrec import strong_baselines  # noqa: E402,F401
