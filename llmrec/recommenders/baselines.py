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

The last two, the strong baselines, are RecBole's models: :mod:`llmrec.recommenders.strong_baselines`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.errors import LlmrecError
from llmrec.evaluation.matching import embed_texts
from llmrec.llm.embeddings import item_texts
from llmrec.recommenders.base import build, register
from llmrec.recommenders.encoder import Similarity
from llmrec.recommenders.fitted import Baseline, train_matrix

BASELINES = ["random", "popularity", "item_knn", "content", "als", "ease", "sasrec"]


@register("random")
class RandomBaseline(Baseline):
    def scores(self, inputs, input_lists):
        return np.stack([np.random.default_rng([self.seed, *items]).random(len(self.item_ids))
                         for items in input_lists])


@register("popularity")
class PopularityBaseline(Baseline):
    def scores(self, inputs, input_lists):
        return np.broadcast_to(self.popularity, (len(input_lists), len(self.item_ids))).copy()


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
class ContentBaseline(Similarity):
    """Similarity search on all-MiniLM-L6-v2's vectors of ``Title (Year) genre, genre``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, center=False, **kwargs)

    def item_vectors(self, movies):
        ids, texts = item_texts(movies, "genres")
        return embed_texts(texts, cache=True).astype(np.float64), ids


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
