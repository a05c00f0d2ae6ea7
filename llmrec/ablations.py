"""The blog's untested ideas as controlled comparisons on the same records.

Helpers for chapter 07: fewer input movies (:func:`with_n_inputs`), prediction rows from
ranked id lists (a retriever, a reranker: :func:`ranked_rows`), reading back what other
chapters wrote for a system (:func:`load_rows`), and the paired comparison table
(:func:`paired_table`): every system scored on the records they all share, with a 95%
bootstrap interval and a paired bootstrap of its difference from a reference system.
Prompt variants (no years, dislikes) live in :mod:`llmrec.prompts`; year errors in
generated titles are counted by :class:`llmrec.llm_eval.YearIndex`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.errors import LlmrecError


def with_n_inputs(records: pd.DataFrame, n: int) -> pd.DataFrame:
    """The records with only their ``n`` most recent input likes (targets unchanged)."""
    if n < 1:
        raise LlmrecError(f"the number of input movies must be at least 1, got {n}")
    out = records.copy()
    out["input_ids"] = [list(ids)[-n:] for ids in records["input_ids"]]
    return out


def ranked_rows(records: pd.DataFrame, ranked: Sequence[Sequence[int]], k: int = 10,
                extra: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Prediction rows (PROTOCOL.md section 7) from ranked item ids, the first ``k`` kept."""
    if len(ranked) != len(records):
        raise LlmrecError(f"{len(ranked)} ranked lists for {len(records)} records")
    rows = []
    for i, (r, ids) in enumerate(zip(records.itertuples(), ranked, strict=True)):
        rows.append({
            "record_id": r.record_id,
            "user_id": int(r.user_id),
            "input_ids": [int(x) for x in r.input_ids],
            "target_ids": [int(x) for x in r.target_ids],
            "predicted_ids": [int(x) for x in list(ids)[:k]],
            **(dict(extra[i]) if extra else {}),
        })
    return rows


def load_rows(run_dir: str | Path, system: str, setting: str, split: str) -> list[dict[str, Any]] | None:
    """The prediction rows another chapter saved for ``system x setting x split``, or None."""
    from llmrec.artifacts import read_jsonl, system_dir

    path = system_dir(run_dir, system, setting, split) / "predictions.jsonl.gz"
    return read_jsonl(path) if path.is_file() else None


def paired_table(rows_by_label: Mapping[str, Sequence[Mapping[str, Any]]], reference: str,
                 metric: str = "map_at_4", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each system on the records all of them share: mean ``metric`` with its 95% interval,
    and the paired-bootstrap difference from ``reference`` (``diff``, ``diff_low``,
    ``diff_high``, ``p``). One row per label, in the given order."""
    from llmrec.metrics import bootstrap_ci, paired_bootstrap, per_record

    if reference not in rows_by_label:
        raise LlmrecError(f"reference {reference!r} is not among the systems compared")
    common = set.intersection(*(set(r["record_id"] for r in rows) for rows in rows_by_label.values()))
    if not common:
        raise LlmrecError("the systems compared share no records; evaluate them on the same split")
    order = sorted(common)
    values = {}
    for label, rows in rows_by_label.items():
        by_id = {r["record_id"]: r for r in rows}
        values[label] = per_record([by_id[i] for i in order], metric)
    out = []
    for label, v in values.items():
        mean, low, high = bootstrap_ci(v, n_boot, seed)
        diff = paired_bootstrap(v, values[reference], n_boot, seed)
        out.append({"system": label, "n_records": len(order), metric: mean, f"{metric}_low": low,
                    f"{metric}_high": high, "diff": diff["diff"], "diff_low": diff["low"],
                    "diff_high": diff["high"], "p": diff["p"]})
    return pd.DataFrame(out)


def year_counts(rows: Sequence[Mapping[str, Any]], movies: pd.DataFrame,
                this_year: int | None = None) -> dict[str, float]:
    """Per generated title (not per completion): how many carry a year, and of those how
    many give a catalog title another year than the catalog's (``wrong_year``), a year
    after the catalog's last one (``after_catalog``) or after this year (``future``)."""
    from llmrec.llm_eval import YearIndex
    from llmrec.matching import split_year

    years = YearIndex(movies)
    titles = [t for r in rows for t in (r.get("titles") or [])]
    counts = {"titles": len(titles), "with_year": 0, "wrong_year": 0, "after_catalog": 0, "future": 0}
    for t in titles:
        if split_year(t)[1] is None:
            continue
        flags = years.flags([t], this_year)
        counts["with_year"] += 1
        counts["wrong_year"] += flags["wrong_year"]
        counts["after_catalog"] += flags["year_after_catalog"]
        counts["future"] += flags["future_year"]
    n = counts["with_year"]
    for key in ("wrong_year", "after_catalog", "future"):
        counts[f"{key}_share"] = counts[key] / n if n else float("nan")
    return counts


def saved_rows(run_dir: str | Path, system: str, split: str) -> dict[str, list[dict[str, Any]]]:
    """Every setting saved under ``run_dir`` for ``system`` and ``split``: setting -> rows."""
    from llmrec.artifacts import read_json, read_jsonl

    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(run_dir).glob(f"*/{split}/metrics.json")):
        meta = read_json(path)
        pred = path.parent / "predictions.jsonl.gz"
        if meta.get("system") == system and meta.get("split") == split and pred.is_file():
            out[meta["setting"]] = read_jsonl(pred)
    return out
