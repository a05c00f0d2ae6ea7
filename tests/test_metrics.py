"""Metrics: hand-computed cases, properties, bootstrap reproducibility, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import (
    ap_at_k,
    bootstrap_ci,
    hit_rate_at_k,
    ndcg_at_k,
    paired_bootstrap,
    per_record,
    precision_at_k,
    recall_at_k,
    score,
)


@pytest.mark.parametrize(
    "pred, rel, k, expected",
    [
        ([1, 2, 3, 4], {1, 2, 3, 4}, 4, 1.0),  # perfect
        ([4, 3, 2, 1], {1, 2, 3, 4}, 4, 1.0),  # any order of a perfect set
        ([1, 9, 2], {1, 2, 3, 4}, 4, (1 / 1 + 2 / 3) / 4),  # short list, miss in the middle
        ([9, 9, 9, 1], {1, 2, 3, 4}, 4, (1 / 4) / 4),
        ([1, 1, 2, 9], {1, 2}, 4, (1 + 2 / 3) / 2),  # repeat counts once at its first rank
        ([None, 1], {1}, 4, 1 / 2),  # hallucinated title keeps its rank as a miss
        ([], {1, 2, 3, 4}, 4, 0.0),  # empty list
        ([[5, 6], 1], {6, 1}, 4, 1.0),  # shared title: a hit on any of its ids
        ([[5, 6], 6], {6, 7}, 4, (1 / 1) / 2),  # an id repeated through a shared title
        ([9, 1, 2, 3, 4], {1, 2, 3, 4}, 4, (1 / 2 + 2 / 3 + 3 / 4) / 4),  # rank 5 is past K
        ([1, 2], {1, 2, 3, 4, 5, 6}, 10, 2 / 6),  # normaliser min(K, |R|) = |R|
    ],
)
def test_ap_hand_computed(pred, rel, k, expected):
    assert ap_at_k(pred, rel, k) == pytest.approx(expected)


def test_other_metrics_hand_computed():
    pred, rel = [9, 1, None, 2], {1, 2, 3, 4}
    assert precision_at_k(pred, rel, 4) == pytest.approx(2 / 4)
    assert recall_at_k(pred, rel, 2) == pytest.approx(1 / 4)
    assert hit_rate_at_k(pred, rel, 1) == 0.0
    assert hit_rate_at_k(pred, rel, 2) == 1.0
    idcg = sum(1 / math.log2(i + 1) for i in range(1, 5))
    assert ndcg_at_k(pred, rel, 4) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / idcg)
    assert ndcg_at_k([9, 1], {1}, 4) == pytest.approx(1 / math.log2(3))
    assert precision_at_k([1], {1}, 4) == pytest.approx(1 / 4)  # short list not rescaled


def test_properties_random_lists():
    rng = np.random.default_rng(0)
    for _ in range(300):
        rel = set(rng.choice(30, size=rng.integers(1, 6), replace=False).tolist())
        pred = rng.integers(0, 30, size=rng.integers(0, 12)).tolist()
        for k in (1, 4, 10):
            for f in (ap_at_k, precision_at_k, recall_at_k, ndcg_at_k, hit_rate_at_k):
                assert 0.0 <= f(pred, rel, k) <= 1.0 + 1e-12
        perfect = sorted(rel)
        assert ap_at_k(perfect, rel, 10) == pytest.approx(1.0)
        assert ndcg_at_k(perfect, rel, 10) == pytest.approx(1.0)


def test_order_matters():
    assert ap_at_k([1, 9], {1}, 4) > ap_at_k([9, 1], {1}, 4)
    assert ndcg_at_k([1, 9], {1}, 4) > ndcg_at_k([9, 1], {1}, 4)


@pytest.mark.parametrize("k", [0, -1])
def test_bad_k(k):
    with pytest.raises(ValueError, match="K must be"):
        ap_at_k([1], {1}, k)
    with pytest.raises(ValueError, match="K must be"):
        score([{"record_id": "a", "target_ids": [1], "predicted_ids": [1]}], k_values=(k,))


def test_empty_relevant_and_empty_rows():
    with pytest.raises(ValueError, match="empty"):
        ap_at_k([1], [], 4)
    with pytest.raises(ValueError, match="no target"):
        score([{"record_id": "a", "target_ids": [], "predicted_ids": [1]}])
    with pytest.raises(LlmrecError):
        score([])


def test_ids_outside_catalog():
    rows = [{"record_id": "u1-0", "target_ids": [1], "predicted_ids": [1, [2, 77]]}]
    with pytest.raises(LlmrecError, match="77"):
        score(rows, catalog_ids=range(1, 10))


def test_bootstrap_reproducible_and_brackets_mean():
    v = np.random.default_rng(1).random(200)
    a = bootstrap_ci(v, n=500, seed=3)
    assert a == bootstrap_ci(v, n=500, seed=3)
    assert a != bootstrap_ci(v, n=500, seed=4)
    mean, low, high = a
    assert mean == pytest.approx(v.mean())
    assert low < mean < high
    # weighted mean is the pooled rate
    m, _, _ = bootstrap_ci([0.5, 0.0], weights=[4, 0])
    assert m == pytest.approx(0.5)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    b = rng.random(300)
    same = paired_bootstrap(b, b)
    assert same["diff"] == 0 and same["p"] == 1.0
    better = paired_bootstrap(b + 0.2, b)
    assert better["diff"] == pytest.approx(0.2)
    assert better["low"] > 0 and better["p"] < 0.01
    assert paired_bootstrap(b + 0.2, b, seed=5) == paired_bootstrap(b + 0.2, b, seed=5)


def test_score_hand_computed():
    rows = [
        {"record_id": "1-0", "input_ids": [7, 8], "target_ids": [1, 2, 3, 4],
         "predicted_ids": [1, None, 7, 2], "titles": ["a", "b", "c", "d"]},
        {"record_id": "2-0", "input_ids": [5], "target_ids": [5, 6, 10, 11],
         "predicted_ids": [9, 9], "titles": ["x", "x"]},
    ]
    pop = {1: 10, 2: 5, 7: 1, 9: 0}
    m = score(rows, k_values=(4,), catalog_size=20, item_popularity=pop, n_boot=200)
    assert m["n_records"] == 2
    assert m["map_at_4"] == pytest.approx(((1 + 2 / 4) / 4 + 0) / 2)
    assert m["precision_at_4"] == pytest.approx((2 / 4 + 0) / 2)
    assert m["hit_rate_at_4"] == pytest.approx(0.5)
    assert m["validity"] == pytest.approx(0.5)
    assert m["hallucination_rate"] == pytest.approx(1 / 6)  # pooled over 6 entries
    assert m["repeat_rate"] == pytest.approx(1 / 5)  # second 9 of 5 matched entries
    assert m["input_rate"] == pytest.approx(1 / 5)  # the 7
    assert m["coverage"] == pytest.approx(4 / 20)  # 1, 7, 2, 9
    total = 16 + 20
    nov = [-math.log2((c + 1) / total) for c in (10, 1, 5, 0, 0)]
    assert m["novelty"] == pytest.approx(np.mean(nov))
    for key in ("map_at_4", "hallucination_rate", "novelty"):
        assert m[f"{key}_low"] <= m[key] <= m[f"{key}_high"]
    assert per_record(rows, "map_at_4").tolist() == pytest.approx([(1 + 2 / 4) / 4, 0.0])
