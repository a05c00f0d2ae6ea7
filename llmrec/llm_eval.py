"""The glue every LLM chapter uses: prompts -> completions -> titles -> item ids -> scores.

:func:`evaluate_llm` generates (batched, :mod:`llmrec.decoding`), parses
(:mod:`llmrec.parsing`), matches titles to catalog items with the matcher under test
(:mod:`llmrec.matching`), and scores (:mod:`llmrec.metrics`). It returns one prediction
row per record (PROTOCOL.md section 7: ``record_id``, ``target_ids``, ``predicted_ids``,
``titles``, ``completion`` ...) and the metrics dict with timings and failure-mode rates.
An empty or unparsable completion is a row with no predictions: it counts as invalid,
it is never dropped and never stops the run.

Failure modes measured per completion (:func:`failure_flags`): empty, looks like code,
drifted into another language, a bare article for a title (``The (1995)``), a year after
the catalog's last one or in the future (``Star Wars (2025)``), a catalog title given with
another year than the catalog's, a title copied from a few-shot example's answer.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmrec.decoding import generate
from llmrec.parsing import classify_completion, parse_completion

FAILURE_COLUMNS = ["empty", "looks_like_code", "non_english", "article_only", "future_year",
                   "year_after_catalog", "wrong_year", "copied_example"]
_ARTICLE_ONLY = re.compile(r"^\W*(the|a|an)?\W*(\(\d{4}\))?\W*$", re.IGNORECASE)


class YearIndex:
    """Which years the catalog knows for each title, and its last year."""

    def __init__(self, movies: pd.DataFrame):
        from llmrec.matching import normalize_title

        self._key = normalize_title
        self.years: dict[str, set[int]] = {}
        for title, year in zip(movies["title"].astype(str), movies["year"], strict=True):
            if pd.notna(year):
                self.years.setdefault(normalize_title(title), set()).add(int(year))
        known = [y for ys in self.years.values() for y in ys]
        self.max_year = max(known) if known else None

    def flags(self, titles: Sequence[str], this_year: int | None = None) -> dict[str, bool]:
        """``future_year`` (after this year: invented), ``year_after_catalog`` (after the
        catalog's last year: the catalog cannot hold it), ``wrong_year`` (a catalog title
        with a year the catalog does not give it)."""
        this_year = this_year or _dt.date.today().year
        out = {"future_year": False, "year_after_catalog": False, "wrong_year": False}
        from llmrec.matching import split_year

        for t in titles:
            base, year = split_year(t)
            if year is None:
                continue
            out["future_year"] |= year > this_year
            out["year_after_catalog"] |= self.max_year is not None and year > self.max_year
            known = self.years.get(self._key(base))
            out["wrong_year"] |= bool(known) and year not in known
        return out


def failure_flags(completion: str, titles: Sequence[str], years: YearIndex,
                  example_titles: frozenset[str] = frozenset()) -> dict[str, bool]:
    """All failure-mode flags of one completion (see the module docstring).

    ``article_only``: a "title" that is only an article and a year (``The (1995)``: the model
    copies MovieLens' trailing-article form without the title); ``copied_example``: a title
    copied from a few-shot example's answer."""
    return {**classify_completion(completion),
            "article_only": any(_ARTICLE_ONLY.match(t) for t in titles),
            **years.flags(titles),
            "copied_example": any(t in example_titles for t in titles)}


def training_popularity(train_records: pd.DataFrame) -> dict[int, int]:
    """How often each item is liked in the training records (inputs and targets)."""
    counts: dict[int, int] = {}
    for col in ("input_ids", "target_ids"):
        for ids in train_records[col]:
            for i in ids:
                counts[int(i)] = counts.get(int(i), 0) + 1
    return counts


def failure_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Share of completions with each failure flag: ``<flag>_rate``."""
    table = failure_table(rows)
    if table.empty:
        return {f"{c}_rate": float("nan") for c in FAILURE_COLUMNS}
    return {f"{c}_rate": float(table[c].mean()) for c in FAILURE_COLUMNS}


def failure_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One line per completion: record_id, the flags, the raw completion."""
    data = [{"record_id": r["record_id"], **r.get("failures", {}),
             "completion": r.get("completion", "")} for r in rows]
    return pd.DataFrame(data, columns=["record_id", *FAILURE_COLUMNS, "completion"])


def _entry(ids: Sequence[int] | None) -> int | list[int] | None:
    """A matcher result as a prediction entry: one id, a list of ids, or None."""
    if ids is None or len(ids) == 0:
        return None
    ids = [int(i) for i in ids]
    return ids[0] if len(ids) == 1 else ids


def match_titles(matcher: Any, titles: Sequence[Sequence[str]]) -> list[list[Any]]:
    """Per record, the prediction entries of its titles (one matcher call for all titles)."""
    flat = [t for ts in titles for t in ts]
    matched = list(matcher.match(flat)) if flat else []
    out, at = [], 0
    for ts in titles:
        out.append([_entry(m) for m in matched[at:at + len(ts)]])
        at += len(ts)
    return out


def evaluate_llm(
    model: Any,
    tokenizer: Any,
    records: pd.DataFrame,
    movies: pd.DataFrame,
    prompts: Sequence[str],
    preset: str,
    matcher: Any,
    catalog: Any,
    item_popularity: Mapping[int, float] | None,
    batch_size: int = 16,
    max_new_tokens: int = 48,
    seed: int = 0,
    k: int = 4,
    progress: bool = True,
    example_titles: Sequence[str] = (),
    generate_kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate, parse, match and score one prompt per record; ``(rows, metrics)``.

    ``metrics`` is :func:`llmrec.metrics.score`'s dict plus ``seconds``,
    ``seconds_per_record``, ``prompts_per_second``, the generation settings and the
    failure-mode rates (``looks_like_code_rate``, ``non_english_rate`` ...).
    ``example_titles``: the few-shot examples' answer titles (to count copies of them).
    ``generate_kwargs``: overrides of the preset's settings (``temperature``, ``top_p`` ...),
    passed to :func:`llmrec.decoding.generate`.
    """
    from llmrec import metrics as M

    if len(prompts) != len(records):
        raise ValueError(f"{len(prompts)} prompts for {len(records)} records")
    start = time.perf_counter()
    completions = generate(model, tokenizer, prompts, preset=preset, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, seed=seed, stop_after_titles=k,
                           progress=progress, **dict(generate_kwargs or {}))
    gen_seconds = time.perf_counter() - start
    titles = [parse_completion(c, max_titles=k) for c in completions]
    predicted = match_titles(matcher, titles)
    years = YearIndex(movies)
    copied = frozenset(example_titles)
    rows = []
    for r, prompt_titles, pred, completion in zip(records.itertuples(), titles, predicted,
                                                  completions, strict=True):
        rows.append({
            "record_id": r.record_id,
            "user_id": int(r.user_id),
            "input_ids": [int(i) for i in r.input_ids],
            "target_ids": [int(i) for i in r.target_ids],
            "predicted_ids": pred,
            "titles": prompt_titles,
            "completion": completion,
            "failures": failure_flags(completion, prompt_titles, years, copied),
        })
    scores = M.score(rows, k_values=(k, 10) if k != 10 else (k,), catalog_size=len(catalog),
                     item_popularity=item_popularity, n_titles_expected=k,
                     catalog_ids=getattr(catalog, "item_ids", None), seed=seed)
    seconds = time.perf_counter() - start
    n = len(rows)
    metrics = {
        **scores,
        **failure_rates(rows),
        "preset": preset,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "seconds": round(seconds, 3),
        "generation_seconds": round(gen_seconds, 3),
        "seconds_per_record": round(seconds / n, 4) if n else float("nan"),
        "prompts_per_second": round(n / gen_seconds, 4) if n and gen_seconds > 0 else float("nan"),
    }
    return rows, metrics


def evaluate_style(
    model: Any,
    tokenizer: Any,
    style: str,
    records: pd.DataFrame,
    movies: pd.DataFrame,
    preset: str,
    matcher: Any,
    catalog: Any,
    item_popularity: Mapping[int, float] | None,
    train_records: pd.DataFrame | None = None,
    n_shots: int = 2,
    with_year: bool = True,
    dislikes: bool = False,
    ratings: pd.DataFrame | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 48,
    seed: int = 0,
    k: int = 4,
    progress: bool = True,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Build prompts of ``style`` (:func:`llmrec.prompts.build_prompts`) and evaluate them."""
    from llmrec.prompts import blog_shots, build_prompts, shots_from_records

    shots = None
    if style == "few-shot":
        shots = (shots_from_records(train_records, movies, n_shots, seed, with_year)
                 if train_records is not None else blog_shots(n_shots))
    prompts = build_prompts(style, records, movies, tokenizer=tokenizer, n=k, with_year=with_year,
                            dislikes=dislikes, ratings=ratings, shots=shots, seed=seed)
    example_titles = [t for s in shots or [] for t in s["answer"]]
    rows, metrics = evaluate_llm(model, tokenizer, records, movies, prompts, preset, matcher,
                                 catalog, item_popularity, batch_size, max_new_tokens, seed, k,
                                 progress, example_titles, generate_kwargs)
    metrics.update({"style": style, "n_shots": n_shots if style == "few-shot" else 0,
                    "with_year": with_year, "dislikes": dislikes})
    return rows, metrics


def example_outputs(
    model: Any,
    tokenizer: Any,
    style: str = "zero-shot",
    preset: str = "greedy",
    n_shots: int = 1,
    n: int = 4,
    max_new_tokens: int = 48,
    seed: int = 0,
) -> pd.DataFrame:
    """The hand-picked example lists (``templates/blog_examples.json``) with raw outputs."""
    from llmrec import prompts as P

    queries = P.blog_examples()["queries"]
    all_shots = P.blog_examples()["shots"]
    texts = []
    for q in queries:
        if style == "zero-shot":
            texts.append(P.zero_shot_prompt(q["liked"], n))
        elif style == "few-shot":
            # a shot never answers its own list
            shots = [s for s in all_shots if s["name"] != q["name"]][:n_shots]
            texts.append(P.few_shot_prompt(q["liked"], shots, n))
        elif style == "chat":
            texts.append(P.chat_prompt(tokenizer, q["liked"], n))
        else:
            texts.append(P.alpaca_prompt(q["liked"], n=n))
    completions = generate(model, tokenizer, texts, preset=preset, batch_size=len(texts),
                           max_new_tokens=max_new_tokens, seed=seed, stop_after_titles=n,
                           progress=False)
    return pd.DataFrame({
        "example": [q["name"] for q in queries],
        "liked": [" => ".join(q["liked"]) for q in queries],
        "style": style, "preset": preset,
        "completion": completions,
        "titles": [parse_completion(c, max_titles=n) for c in completions],
    })
