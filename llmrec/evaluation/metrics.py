"""Ranking metrics at K, generation-health and list-quality rates, bootstrap intervals.

PROTOCOL.md section 4. A *prediction list* holds, in rank order, entries that are an item id,
a list of ids (a title shared by several items: a hit if any of them is relevant) or ``None``
(a title with no catalog match: a miss that keeps its rank). An entry that shares an id with
an earlier entry of the same list is a *repeat*: it keeps its rank but never counts as a hit
(repeated items count once, at their first rank). A list shorter than K simply has fewer hits.

:func:`score` is the main entry: prediction rows in, one flat dict of means with 95% bootstrap
intervals out (the row of ``reports/results.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from llmrec.errors import LlmrecError

Entry = int | list[int] | None


# ----------------------------------------------------------------------------- per list
def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"K must be a positive integer, got {k!r}")


def _entry_ids(entry: Any) -> frozenset[int]:
    """The ids an entry stands for (empty for None)."""
    if entry is None:
        return frozenset()
    if isinstance(entry, (list, tuple, set, frozenset, np.ndarray)):
        return frozenset(int(i) for i in entry)
    return frozenset((int(entry),))


def hits(predicted: Sequence[Entry], relevant: Iterable[int], k: int) -> list[int]:
    """rel(i) for ranks i = 1..min(K, len(predicted)): 1 where the entry is a first-time hit.

    An entry is a hit when any of its ids is relevant and it shares no id with an earlier
    entry (repeats count once, at their first rank). ``None`` entries are misses.
    """
    _check_k(k)
    rel = set(int(i) for i in relevant)
    if not rel:
        raise ValueError("the relevant set is empty: AP, recall and NDCG are undefined")
    seen: set[int] = set()
    out = []
    for entry in list(predicted)[:k]:
        ids = _entry_ids(entry)
        first = not (ids & seen)
        out.append(int(first and bool(ids & rel)))
        seen |= ids
    return out


def ap_at_k(predicted: Sequence[Entry], relevant: Iterable[int], k: int) -> float:
    """Average precision at K.

    AP@K = 1 / min(K, |R|) * sum over ranks i <= K of Precision@i * rel(i), where
    Precision@i = (hits in the first i entries) / i and rel(i) is 1 for a hit (see :func:`hits`).
    """
    rel = set(relevant)
    h = hits(predicted, rel, k)
    total, n_hit = 0.0, 0
    for i, r in enumerate(h, start=1):
        if r:
            n_hit += 1
            total += n_hit / i
    return total / min(k, len(rel))


def precision_at_k(predicted: Sequence[Entry], relevant: Iterable[int], k: int) -> float:
    """Precision@K = (hits in the first K entries) / K (a list shorter than K is not rescaled)."""
    return sum(hits(predicted, relevant, k)) / k


def recall_at_k(predicted: Sequence[Entry], relevant: Iterable[int], k: int) -> float:
    """Recall@K = (hits in the first K entries) / |R|."""
    rel = set(relevant)
    return sum(hits(predicted, rel, k)) / len(rel)


def ndcg_at_k(predicted: Sequence[Entry], relevant: Iterable[int], k: int) -> float:
    """NDCG@K with binary gains: DCG = sum_i rel(i) / log2(i + 1), divided by the ideal DCG
    sum_{i <= min(K, |R|)} 1 / log2(i + 1)."""
    rel = set(relevant)
    dcg = sum(r / math.log2(i + 1) for i, r in enumerate(hits(predicted, rel, k), start=1))
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(k, len(rel)) + 1))
    return dcg / idcg


def hit_rate_at_k(predicted: Sequence[Entry], relevant: Iterable[int], k: int) -> float:
    """HitRate@K = 1 if any of the first K entries is a hit, else 0."""
    return float(any(hits(predicted, relevant, k)))


# ----------------------------------------------------------------------------- bootstrap
def _boot_indices(n_items: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_items, size=(n, n_items))


def _weighted_means(values: np.ndarray, weights: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    if weights is None:
        return values[idx].mean(axis=1)
    w = weights[idx]
    den = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (values[idx] * w).sum(axis=1) / den, np.nan)


def bootstrap_ci(
    values: Sequence[float],
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    weights: Sequence[float] | None = None,
    _idx: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval: ``(mean, low, high)``.

    Resamples the values (evaluation records) ``n`` times with replacement (seeded), and takes
    the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled means. With ``weights`` the
    statistic is the weighted mean sum(w * v) / sum(w) (a pooled rate over records).
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    w = None if weights is None else np.asarray(weights, dtype=float)
    if w is not None and w.sum() <= 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean() if w is None else (v * w).sum() / w.sum())
    idx = _boot_indices(v.size, n, seed) if _idx is None else _idx
    boot = _weighted_means(v, w, idx)
    low, high = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2])
    return mean, float(low), float(high)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, float]:
    """Paired bootstrap of mean(a) - mean(b) over the same records.

    Returns ``diff`` (observed mean difference), ``low``/``high`` (its percentile interval)
    and ``p``: twice the share of resampled differences on the other side of zero from the
    observed one (capped at 1), a rough two-sided p-value.
    """
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape or a_.size == 0:
        raise ValueError("paired_bootstrap needs two non-empty sequences of the same length")
    d = a_ - b_
    boot = d[_boot_indices(d.size, n, seed)].mean(axis=1)
    diff = float(d.mean())
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    if diff > 0:
        p = 2 * float(np.mean(boot <= 0))
    elif diff < 0:
        p = 2 * float(np.mean(boot >= 0))
    else:
        p = 1.0
    return {"diff": diff, "low": float(low), "high": float(high), "p": min(1.0, p)}


# ----------------------------------------------------------------------------- per record
def _novelty_share(item_popularity: Mapping[int, float], catalog_size: int | None):
    total = float(sum(item_popularity.values()))
    n = catalog_size or len(item_popularity)

    def info(item: int) -> float:
        # add-one smoothing so an item never liked in training has finite novelty
        return -math.log2((item_popularity.get(item, 0) + 1) / (total + n))

    return info


def record_values(
    row: Mapping[str, Any],
    k_values: Sequence[int] = (4, 10),
    n_titles_expected: int = 4,
    novelty_of=None,
) -> dict[str, tuple[float, float]]:
    """Per-record metric values as ``name -> (value, weight)``; weight 0 means not defined.

    Ranking metrics have weight 1. Rates over entries (hallucination, repeat, input, novelty)
    carry their entry count as weight, so that their weighted mean is the pooled rate.
    """
    target = row["target_ids"]
    pred = list(row.get("predicted_ids") or [])
    out: dict[str, tuple[float, float]] = {}
    for k in k_values:
        out[f"map_at_{k}"] = (ap_at_k(pred, target, k), 1.0)
        out[f"precision_at_{k}"] = (precision_at_k(pred, target, k), 1.0)
        out[f"recall_at_{k}"] = (recall_at_k(pred, target, k), 1.0)
        out[f"ndcg_at_{k}"] = (ndcg_at_k(pred, target, k), 1.0)
        out[f"hit_rate_at_{k}"] = (hit_rate_at_k(pred, target, k), 1.0)
    titles = row.get("titles")
    n_titles = len(titles) if titles is not None else len(pred)
    out["validity"] = (float(n_titles >= n_titles_expected), 1.0)
    n = len(pred)
    n_none = sum(e is None for e in pred)
    out["hallucination_rate"] = (n_none / n if n else 0.0, float(n))
    matched = [_entry_ids(e) for e in pred if e is not None]
    seen: set[int] = set()
    repeats = 0
    for ids in matched:
        repeats += bool(ids & seen)
        seen |= ids
    m = len(matched)
    out["repeat_rate"] = (repeats / m if m else 0.0, float(m))
    inputs = set(int(i) for i in (row.get("input_ids") or []))
    if "input_ids" in row:
        in_inputs = sum(bool(ids & inputs) for ids in matched)
        out["input_rate"] = (in_inputs / m if m else 0.0, float(m))
    if novelty_of is not None:
        nov = [min(novelty_of(i) for i in ids) for ids in matched]
        out["novelty"] = (float(np.mean(nov)) if nov else 0.0, float(m))
    return out


def _check_ids(rows: Sequence[Mapping[str, Any]], catalog_ids: set[int]) -> None:
    for row in rows:
        for entry in row.get("predicted_ids") or []:
            bad = _entry_ids(entry) - catalog_ids
            if bad:
                raise LlmrecError(
                    f"record {row.get('record_id')!r} predicts item {min(bad)} that is not in the "
                    "catalog; match titles against the same catalog the metrics use"
                )


def score(
    rows: Iterable[Mapping[str, Any]],
    k_values: Sequence[int] = (4, 10),
    catalog_size: int | None = None,
    item_popularity: Mapping[int, float] | None = None,
    n_titles_expected: int = 4,
    catalog_ids: Iterable[int] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Score prediction rows; return one flat dict (a row of the results table).

    ``rows``: dicts with ``record_id``, ``target_ids``, ``predicted_ids`` and optionally
    ``input_ids``, ``titles``, ``completion``. Returns ``n_records`` and, for each metric, its
    mean over records with ``_low``/``_high`` (95% bootstrap interval, the same resamples of
    records for every metric): ``map_at_K``, ``precision_at_K``, ``recall_at_K``, ``ndcg_at_K``,
    ``hit_rate_at_K`` for each K; ``validity`` (share of rows with at least
    ``n_titles_expected`` parsed titles; ``titles`` when present, else the predicted entries);
    ``hallucination_rate`` (share of entries that are None); ``repeat_rate`` (share of matched
    entries repeating an earlier one); ``input_rate`` (share of matched entries among the
    record's inputs; needs ``input_ids``); ``novelty`` (mean -log2 of an item's add-one-smoothed
    share of training likes; needs ``item_popularity``). The rates are pooled over entries.
    ``coverage`` (distinct items in the first max(K) entries of all lists / ``catalog_size``;
    a whole-run figure, given without interval) needs ``catalog_size`` or ``catalog_ids``.
    With ``catalog_ids`` every predicted id must belong to it.
    """
    rows = list(rows)
    if not rows:
        raise LlmrecError("no prediction rows to score; check the evaluation produced predictions")
    for k in k_values:
        _check_k(k)
    for row in rows:
        if not list(row.get("target_ids") or []):
            raise ValueError(f"record {row.get('record_id')!r} has no target items")
    if catalog_ids is not None:
        catalog_ids = set(int(i) for i in catalog_ids)
        _check_ids(rows, catalog_ids)
        catalog_size = catalog_size or len(catalog_ids)
    novelty_of = _novelty_share(item_popularity, catalog_size) if item_popularity else None
    per = [record_values(r, k_values, n_titles_expected, novelty_of) for r in rows]
    names = [n for n in per[0] if all(n in p for p in per)]
    idx = _boot_indices(len(rows), n_boot, seed)
    out: dict[str, Any] = {"n_records": len(rows)}
    for name in names:
        v = np.array([p[name][0] for p in per])
        w = np.array([p[name][1] for p in per])
        weights = None if np.all(w == 1.0) else w
        mean, low, high = bootstrap_ci(v, n_boot, seed, alpha, weights=weights, _idx=idx)
        out[name], out[f"{name}_low"], out[f"{name}_high"] = mean, low, high
    if catalog_size:
        kmax = max(k_values)
        items: set[int] = set()
        for row in rows:
            for entry in list(row.get("predicted_ids") or [])[:kmax]:
                items |= _entry_ids(entry)
        out["coverage"] = len(items) / catalog_size
        out["catalog_size"] = int(catalog_size)
    return out


def score_on(rows: Iterable[Mapping[str, Any]], record_ids: Iterable[str]) -> dict[str, Any]:
    """:func:`score` (K = 4) of the ``rows`` whose record is among ``record_ids``, with their
    count as ``n_records``: a system re-scored on another row's records."""
    wanted = set(record_ids)
    subset = [r for r in rows if r["record_id"] in wanted]
    return {**score(subset, k_values=(4,)), "n_records": len(subset)}


def zero_hit_bound(n_records: int) -> float:
    """One-sided 95% upper bound of a rate with no hit in ``n_records`` (the rule of three,
    3/n): what a mean with no hit at all is reported with instead of a [0, 0] interval."""
    return 3.0 / n_records if n_records else float("nan")


def per_record(rows: Iterable[Mapping[str, Any]], metric: str = "map_at_4") -> np.ndarray:
    """One metric's per-record values (for :func:`paired_bootstrap` between two systems)."""
    k_part = metric.rsplit("_", 1)[-1]
    ks = (int(k_part),) if k_part.isdigit() else (4,)
    return np.array([record_values(r, ks)[metric][0] for r in rows])
