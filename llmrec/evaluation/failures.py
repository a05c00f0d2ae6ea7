"""Failure analysis of generated lists: what went wrong in a completion, and how often.

Every generating system's rows (free generation, constrained generation) go through
:func:`analyse` in :func:`llmrec.evaluation.spine.evaluate`; nothing else computes these flags.

Per completion (:func:`failure_flags`): **empty** (no title parses out), **looks_like_code**,
**non_english** (:func:`llmrec.llm.parsing.classify_completion`), **article_only** (a "title"
that is only an article and a year, ``The (1995)``: MovieLens' trailing-article form
copied without the title), **future_year** (a year after this one), **year_after_catalog**
(after the catalog's last year: the catalog cannot hold it), **wrong_year** (a catalog
title given another year than the catalog's), **copied_example** (a title copied from a
few-shot example's answer). Per generated title: :func:`year_counts`.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from llmrec.data.formats import split_year
from llmrec.evaluation.matching import normalize_title
from llmrec.llm.parsing import classify_completion

FAILURE_COLUMNS = ["empty", "looks_like_code", "non_english", "article_only", "future_year",
                   "year_after_catalog", "wrong_year", "copied_example"]
_ARTICLE_ONLY = re.compile(r"^\W*(the|a|an)?\W*(\(\d{4}\))?\W*$", re.IGNORECASE)


class YearIndex:
    """Which years the catalog knows for each title, and its last year."""

    def __init__(self, movies: pd.DataFrame):
        self.years: dict[str, set[int]] = {}
        for title, year in zip(movies["title"].astype(str), movies["year"], strict=True):
            if pd.notna(year):
                self.years.setdefault(normalize_title(title), set()).add(int(year))
        known = [y for ys in self.years.values() for y in ys]
        self.max_year = max(known) if known else None

    def flags(self, titles: Sequence[str], this_year: int | None = None) -> dict[str, bool]:
        """``future_year``, ``year_after_catalog`` and ``wrong_year`` over ``titles``."""
        this_year = this_year or _dt.date.today().year
        out = {"future_year": False, "year_after_catalog": False, "wrong_year": False}
        for t in titles:
            base, year = split_year(t)
            if year is None:
                continue
            out["future_year"] |= year > this_year
            out["year_after_catalog"] |= self.max_year is not None and year > self.max_year
            known = self.years.get(normalize_title(base))
            out["wrong_year"] |= bool(known) and year not in known
        return out


def failure_flags(completion: str, titles: Sequence[str], years: YearIndex,
                  example_titles: frozenset[str] = frozenset()) -> dict[str, bool]:
    """All failure-mode flags of one completion (see the module docstring)."""
    return {**classify_completion(completion),
            "article_only": any(_ARTICLE_ONLY.match(t) for t in titles),
            **years.flags(titles),
            "copied_example": any(t in example_titles for t in titles)}


def analyse(rows: Sequence[dict[str, Any]], movies: pd.DataFrame,
            example_titles: Iterable[str] = ()) -> dict[str, float]:
    """Flag every row that holds a ``completion`` (in place, under ``failures``); return the
    rates (:func:`failure_rates`). Rows without a completion (a ranker's) are left alone and
    the result is empty."""
    generated = [r for r in rows if "completion" in r]
    if not generated:
        return {}
    years = YearIndex(movies)
    copied = frozenset(example_titles)
    for r in generated:
        r["failures"] = failure_flags(r["completion"], r.get("titles") or [], years, copied)
    return failure_rates(generated)


def failure_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One line per completion: record_id, the flags, the raw completion."""
    data = [{"record_id": r["record_id"], **r.get("failures", {}),
             "completion": r.get("completion", "")} for r in rows]
    return pd.DataFrame(data, columns=["record_id", *FAILURE_COLUMNS, "completion"])


def failure_frame(rows_by_setting: Mapping[Any, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """:func:`failure_table` of several settings stacked, with a ``setting`` column (a key
    that is a tuple, e.g. ``(setting, split)``, reads ``"setting (split)"``)."""
    frames = [failure_table(rows).assign(setting=(f"{key[0]} ({key[1]})" if isinstance(key, tuple)
                                                  else str(key)))
              for key, rows in rows_by_setting.items()]
    return pd.concat(frames, ignore_index=True)


def failure_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Share of completions with each failure flag: ``<flag>_rate``."""
    table = failure_table(rows)
    if table.empty:
        return {f"{c}_rate": float("nan") for c in FAILURE_COLUMNS}
    return {f"{c}_rate": float(table[c].mean()) for c in FAILURE_COLUMNS}


def failure_examples(table: pd.DataFrame, per_flag: int = 3) -> pd.DataFrame:
    """At most ``per_flag`` raw completions per failure mode of a :func:`failure_table`
    (with a ``setting`` column), so counts can be checked by eye."""
    shown = []
    for flag in FAILURE_COLUMNS:
        hit = table[table[flag].fillna(False).astype(bool)].head(per_flag)
        shown += [{"failure": flag, "setting": r.setting, "record_id": r.record_id,
                   "completion": r.completion} for r in hit.itertuples()]
    return pd.DataFrame(shown, columns=["failure", "setting", "record_id", "completion"])


def year_counts(rows: Sequence[Mapping[str, Any]], movies: pd.DataFrame,
                this_year: int | None = None) -> dict[str, float]:
    """Per generated title (not per completion): how many carry a year, and of those how
    many give a catalog title another year than the catalog's (``wrong_year``), a year
    after the catalog's last one (``after_catalog``) or after this year (``future``)."""
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
