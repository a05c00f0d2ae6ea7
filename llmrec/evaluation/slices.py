"""Slices where collaborative filtering is blind: cold and long-tail items, cold users, and
the quality of the lists themselves.

Computed from prediction rows alone (a predictions file's lines: ``record_id``, ``user_id``,
``target_ids``, ``predicted_ids``) and the split's training records, so every table here
recomputes from the predictions files of the results table.

- **Items** (:func:`item_slices`): each held-out target is bucketed by its number of training
  likes (:data:`ITEM_BUCKETS`: never seen, 1-5, 6-20, more); per bucket, the share of its
  targets found in a list's first 10 entries (recall@10) and first 4 (hits@4). Ten is the
  longest list every ranking system of the report writes (a written list holds 4 titles).
- **Users** (:func:`user_slices`): test records by their user's number of training windows
  (:data:`USER_BUCKETS`; 0 is a user the training records never saw); MAP@4 per bucket.
- **Lists** (:func:`list_quality`): coverage of the catalog, distinct items, the mean
  training likes of what is recommended, and the share of lists that repeat an item.

Every bucket's mean comes with its 95% bootstrap interval over records, and its paired
difference from a reference system (the strongest baseline) on the same records
(the bootstrap of the per-record differences: both systems on the same resampled records). A record counts in an item bucket
with the number of its targets there as weight, so that the weighted mean is the pooled share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import ap_at_k, bootstrap_ci

#: (label, fewest, most) training likes of a target item; None: no upper bound
ITEM_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("never seen", 0, 0), ("1-5", 1, 5), ("6-20", 6, 20), ("over 20", 21, None))
#: (label, fewest, most) training windows of a test record's user
USER_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("no training window", 0, 0), ("1-2", 1, 2), ("3-5", 3, 5), ("6 or more", 6, None))


def bucket(count: int, buckets: Sequence[tuple[str, int, int | None]]) -> str:
    """The label of the bucket ``count`` falls in."""
    for label, low, high in buckets:
        if count >= low and (high is None or count <= high):
            return label
    raise LlmrecError(f"{count} falls in no bucket; the buckets must cover every count from 0")


def _ids(entry: Any) -> set[int]:
    if entry is None:
        return set()
    return {int(i) for i in entry} if isinstance(entry, (list, tuple)) else {int(entry)}


def _found(predicted: Sequence[Any], k: int) -> set[int]:
    out: set[int] = set()
    for entry in list(predicted)[:k]:
        out |= _ids(entry)
    return out


def _pairs(rows_by_system: Mapping[str, Sequence[Mapping[str, Any]]], reference: str | None
           ) -> list[tuple[str, list[str], dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]] | None]]:
    """Per system: its name, the record ids it is sliced on (its own, in order; those the
    reference also scored, when there is a reference), its rows and the reference's by id."""
    if not rows_by_system:
        raise LlmrecError("no systems to slice; pass {system: prediction rows}")
    if reference is not None and reference not in rows_by_system:
        raise LlmrecError(f"the reference {reference!r} is not among the systems; add its rows")
    ref = ({r["record_id"]: r for r in rows_by_system[reference]} if reference is not None
           else None)
    out = []
    for name, rows in rows_by_system.items():
        by = {r["record_id"]: r for r in rows}
        rids = [r["record_id"] for r in rows if ref is None or r["record_id"] in ref]
        if not rids:
            raise LlmrecError(f"{name} shares no record with {reference}; slice systems scored "
                              "on the records the reference covers")
        out.append((name, rids, by, ref))
    return out


def _shares(rows: Mapping[str, Mapping[str, Any]], kept: Sequence[str],
            wanted: Mapping[str, Sequence[int]], k: int) -> np.ndarray:
    """Per record of ``kept``: the share of its ``wanted`` targets among its list's first ``k``."""
    return np.array([len(set(wanted[rid]) & _found(rows[rid].get("predicted_ids") or [], k))
                     / len(wanted[rid]) for rid in kept])


def _aps(rows: Mapping[str, Mapping[str, Any]], kept: Sequence[str], k: int) -> np.ndarray:
    """Per record of ``kept``: AP@k of its list."""
    return np.array([ap_at_k(list(rows[rid].get("predicted_ids") or []), rows[rid]["target_ids"], k)
                     for rid in kept])


def _interval_cells(values: np.ndarray, weights: np.ndarray | None, ref: np.ndarray | None,
                    seed: int) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values, seed=seed, weights=weights)
    cells = {"mean": mean, "low": low, "high": high}
    if ref is not None:  # paired: the same resampled records for both (weighted: pooled shares)
        d, dlow, dhigh = bootstrap_ci(values - ref, seed=seed, weights=weights)
        cells.update({"diff": d, "diff_low": dlow, "diff_high": dhigh})
    return cells


def item_slices(rows_by_system: Mapping[str, Sequence[Mapping[str, Any]]],
                popularity: Mapping[int, int], reference: str | None = None,
                buckets: Sequence[tuple[str, int, int | None]] = ITEM_BUCKETS,
                seed: int = 0) -> pd.DataFrame:
    """Per system and item bucket: ``n_targets``, ``n_records`` (the system's records with a
    target there), ``recall_at_10`` and ``hits_at_4`` (pooled shares of the bucket's targets)
    with intervals, and their paired difference from ``reference`` on the same records."""
    out = []
    for name, rids, by, ref in _pairs(rows_by_system, reference):
        for label, *_ in buckets:
            wanted = {rid: [int(t) for t in by[rid]["target_ids"]
                            if bucket(int(popularity.get(int(t), 0)), buckets) == label]
                      for rid in rids}
            kept = [rid for rid in rids if wanted[rid]]
            if not kept:
                continue
            weights = np.array([len(wanted[rid]) for rid in kept], dtype=float)
            row = {"system": name, "bucket": label, "n_targets": int(weights.sum()),
                   "n_records": len(kept)}
            for k, metric in ((10, "recall_at_10"), (4, "hits_at_4")):
                mine = _shares(by, kept, wanted, k)
                other = (_shares(ref, kept, wanted, k) if ref is not None and name != reference
                         else None)
                cells = _interval_cells(mine, weights, other, seed)
                row.update({metric if c == "mean" else f"{metric}_{c}": v for c, v in cells.items()})
            out.append(row)
    return pd.DataFrame(out)


def training_windows(train_records: pd.DataFrame) -> dict[int, int]:
    """user id -> number of training records (windows) of that user."""
    return {int(u): int(n) for u, n in train_records["user_id"].value_counts().items()}


def user_slices(rows_by_system: Mapping[str, Sequence[Mapping[str, Any]]],
                windows: Mapping[int, int], reference: str | None = None,
                buckets: Sequence[tuple[str, int, int | None]] = USER_BUCKETS,
                seed: int = 0, k: int = 4) -> pd.DataFrame:
    """Per system and user bucket: ``n_records`` and MAP@4 with its interval, and the paired
    difference from ``reference`` on the same records."""
    out = []
    for name, rids, by, ref in _pairs(rows_by_system, reference):
        labels = {rid: bucket(int(windows.get(int(by[rid]["user_id"]), 0)), buckets) for rid in rids}
        for label, *_ in buckets:
            kept = [rid for rid in rids if labels[rid] == label]
            if not kept:
                continue
            other = _aps(ref, kept, k) if ref is not None and name != reference else None
            cells = _interval_cells(_aps(by, kept, k), None, other, seed)
            out.append({"system": name, "bucket": label, "n_records": len(kept),
                        **{f"map_at_{k}" if c == "mean" else f"map_at_{k}_{c}": v
                           for c, v in cells.items()}})
    return pd.DataFrame(out)


def list_quality(rows_by_system: Mapping[str, Sequence[Mapping[str, Any]]],
                 popularity: Mapping[int, int], catalog_size: int, k: int = 4) -> pd.DataFrame:
    """Per system, over its first ``k`` entries of every list: ``coverage`` (distinct items /
    ``catalog_size``), ``distinct_items``, ``mean_training_likes`` of the recommended items
    (how popular what it recommends is), ``lists_with_a_repeat`` (share of lists naming an
    item twice) and ``n_records``."""
    out = []
    for name, rows in rows_by_system.items():
        items: set[int] = set()
        likes, repeats = [], 0
        for r in rows:
            seen: set[int] = set()
            repeated = False
            for entry in list(r.get("predicted_ids") or [])[:k]:
                ids = _ids(entry)
                repeated |= bool(ids & seen)
                seen |= ids
                if ids:
                    likes.append(min(popularity.get(i, 0) for i in ids))
            items |= seen
            repeats += repeated
        out.append({"system": name, "n_records": len(rows), "coverage": len(items) / catalog_size,
                    "distinct_items": len(items),
                    "mean_training_likes": float(np.mean(likes)) if likes else float("nan"),
                    "lists_with_a_repeat": repeats / len(rows) if rows else float("nan")})
    return pd.DataFrame(out)
