"""The size axis: one point per model and question, from the results table.

Chapter 10 asks every model the same questions that cost no training, on the same seeded
test records, and saves each answer as a row whose setting starts with ``size/``
(:data:`QUESTIONS`). The tuned question takes a model's LoRA row of greedy generation on
the same records, from whichever run trained on the most records. :func:`size_points`
turns the table into one point per model and question (MAP@4 with its interval, the
records it covers, the parameter count); :func:`baseline_band` re-scores the common run's
baselines on exactly those records and returns the strongest, the band every panel of
:func:`llmrec.report.plots.size_trend` draws. Both read only the table and the predictions
files it points at, so the figure and the README are generated from rows that
``results verify`` recomputes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmrec.artifacts import read_jsonl
from llmrec.evaluation.metrics import paired_bootstrap, per_record, score_on, zero_hit_bound
from llmrec.paths import in_repo
from llmrec.report.published import MODEL_PARAMS

#: The questions of the size axis, in panel order: a ``size/`` setting's second part names it.
QUESTIONS = {"zero-shot": "zero-shot", "few-shot": "few-shot",
             "tuned": "tuned (LoRA)", "likelihood": "scorer of SASRec's top 20",
             "similarity": "encoder (similarity search)"}
PANELS = ("zero-shot", "few-shot", "tuned (LoRA)", "scorer of SASRec's top 20",
          "encoder (similarity search)")
#: A tuned model's greedy list: chapter 4's settings, the learning curve's points included
#: (``lora-compact-1024``: a model too slow to train on every record here reaches its point
#: on the curve); of a model's tuned rows, the one trained on the most records is its point.
_TUNED = re.compile(r"^lora(-(compact|alpaca)-(all|\d+))?/greedy$")
#: The families the models belong to (the trend is read with them: they differ in more than size).
FAMILIES = {"smollm2-135m": "SmolLM2 (instruct)", "gemma3-270m": "Gemma 3 (base)",
            "qwen2.5-coder-0.5b": "Qwen2.5-Coder (code, instruct)",
            "qwen2.5-coder-1.5b": "Qwen2.5-Coder (code, instruct)"}


def question_of(setting: str) -> str | None:
    """The panel a row's setting belongs to, or None (``size/zero-shot-chat/greedy`` ->
    ``zero-shot``; a tuned model's greedy list -> ``tuned (LoRA)``)."""
    if setting.startswith("size/"):
        head = setting.split("/")[1]
        return next((QUESTIONS[q] for q in ("zero-shot", "few-shot", "likelihood", "similarity")
                     if head.startswith(q)), None)
    return QUESTIONS["tuned"] if _TUNED.match(setting) else None


def _records(path: Any) -> frozenset[str] | None:
    if not isinstance(path, str) or not in_repo(path).is_file():
        return None
    return frozenset(r["record_id"] for r in read_jsonl(in_repo(path)))


def size_points(table: pd.DataFrame, split: str = "temporal") -> pd.DataFrame:
    """One row per model and question: ``model, n_params, family, question, map_at_4,
    map_at_4_low, map_at_4_high, n_records, system, setting, run, train_records``.

    Only rows on the records of the ``size/`` rows count (the same seeded sample for every
    model), so every point of the figure is paired with every other; a model's tuned point
    is its LoRA row on those records trained on the most records."""
    rows = table[(table["split"] == split) & table["model"].isin(MODEL_PARAMS)].copy()
    rows["question"] = rows["setting"].map(question_of)
    rows = rows.dropna(subset=["question"])
    if rows.empty:
        return rows
    ids = {i: _records(p) for i, p in rows["predictions"].items()}
    # the sample the size questions were asked on: the one covering the most models (a
    # preview run's smaller sample loses to the published run's), then the larger
    size_rows = [i for i in rows.index if rows.at[i, "setting"].startswith("size/") and ids[i]]
    size_rows = size_rows or [i for i in rows.index if ids[i]]
    if size_rows:
        models: dict[frozenset[str], set[str]] = {}
        for i in size_rows:
            models.setdefault(ids[i], set()).add(rows.at[i, "model"])
        chosen = max(models, key=lambda s: (len(models[s]), len(s)))
        rows = rows[[ids[i] == chosen for i in rows.index]]
    if "train_records" not in rows:
        rows["train_records"] = float("nan")
    rows = rows.sort_values("train_records", ascending=False, na_position="last")
    rows = rows.drop_duplicates(["model", "question"])
    rows["n_params"] = rows["model"].map(MODEL_PARAMS)
    rows["family"] = rows["model"].map(FAMILIES).fillna("")
    cols = ["model", "n_params", "family", "question", "map_at_4", "map_at_4_low", "map_at_4_high",
            "n_records", "system", "setting", "run", "train_records", "predictions"]
    return rows[cols].sort_values(["question", "n_params"]).reset_index(drop=True)


def baseline_band(table: pd.DataFrame, points: pd.DataFrame, split: str = "temporal",
                  systems: Sequence[str] = ("popularity", "item_knn", "als", "ease", "sasrec")
                  ) -> dict[str, Any] | None:
    """The strongest baseline of the common run re-scored on the points' records:
    ``{system, map_at_4, map_at_4_low, map_at_4_high, n_records, run}``, or None."""
    if points.empty:
        return None
    records = _records(points["predictions"].iloc[0])
    base = table[(table["split"] == split) & (table["setting"] == "baseline")
                 & table["system"].isin(systems) & table["run"].astype(str).str.startswith("common-")]
    best = None
    for _, row in base.iterrows():
        path = row["predictions"]
        if not records or not isinstance(path, str) or not in_repo(path).is_file():
            continue
        scored = score_on(read_jsonl(in_repo(path)), records)
        if scored["n_records"] != len(records):
            continue
        if best is None or scored["map_at_4"] > best["map_at_4"]:
            best = {"system": row["system"], "run": row["run"], **{k: scored[k] for k in (
                "map_at_4", "map_at_4_low", "map_at_4_high", "n_records")}}
    return best


def fmt_point(mean: float, low: float, high: float, n_records: float) -> str:
    """``0.0313 [0.0260, 0.0368]``, or ``0 hits in 300 (< 0.0100)`` where no record had a hit
    (the rule-of-three bound, not a zero-width interval)."""
    if mean == 0 and high == 0 and n_records:
        return f"0 hits in {int(n_records)} (< {zero_hit_bound(int(n_records)):.4f})"
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]"


def trend_sentences(points: pd.DataFrame, band: Mapping[str, Any] | None) -> list[str]:
    """One sentence per question: each size's MAP@4 with its interval, smallest first, and
    where the strongest baseline lies on the same records (numbers from the points only)."""
    out = []
    for question in PANELS:
        sub = points[points["question"] == question].sort_values("n_params")
        if sub.empty:
            continue
        parts = [f"{r.model} {fmt_point(r.map_at_4, r.map_at_4_low, r.map_at_4_high, r.n_records)}"
                 + (f" (trained on {int(r.train_records):,} records)"
                    if question == QUESTIONS["tuned"] and pd.notna(r.train_records) else "")
                 for r in sub.itertuples()]
        n = int(sub["n_records"].iloc[0])
        line = f"**{question}** (n={n}): " + "; ".join(parts)
        if band is not None:
            above = int((sub["map_at_4_low"] > band["map_at_4_high"]).sum())
            below = int((sub["map_at_4_high"] < band["map_at_4_low"]).sum())
            line += (f". {band['system']} on the same records: {band['map_at_4']:.4f} "
                     f"[{band['map_at_4_low']:.4f}, {band['map_at_4_high']:.4f}]; "
                     f"{below} of {len(sub)} {'size' if len(sub) == 1 else 'sizes'} below it "
                     f"(intervals apart), {above} above")
        out.append(line + ".")
    return out


def _per_record_by_id(path: Any) -> dict[str, float]:
    rows = read_jsonl(in_repo(path))
    return dict(zip((r["record_id"] for r in rows), per_record(rows), strict=True))


def tuning_sentences(points: pd.DataFrame) -> list[str]:
    """What LoRA adds at each size that has a tuned point: its MAP@4 minus the same model's
    zero-shot and few-shot lists, paired record by record on the points' records (bootstrap,
    95%), smallest size first; read from the predictions files the points name."""
    out = []
    tuned = points[points["question"] == QUESTIONS["tuned"]].sort_values("n_params")
    for r in tuned.itertuples():
        mine = _per_record_by_id(r.predictions)
        parts = []
        for question in ("zero-shot", "few-shot"):
            other = points[(points["model"] == r.model) & (points["question"] == question)]
            if other.empty:
                continue
            theirs = _per_record_by_id(other["predictions"].iloc[0])
            ids = sorted(mine.keys() & theirs.keys())
            if len(ids) != len(mine):
                continue
            d = paired_bootstrap([mine[i] for i in ids], [theirs[i] for i in ids])
            verdict = ("above" if d["low"] > 0 else "below" if d["high"] < 0
                       else "not distinguishable at 95%")
            parts.append(f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] against its {question} "
                         f"({verdict})")
        if parts:
            records = f"{int(r.train_records):,} records" if pd.notna(r.train_records) else "LoRA"
            out.append(f"{r.model}, tuned on {records}: " + "; ".join(parts))
    return out
