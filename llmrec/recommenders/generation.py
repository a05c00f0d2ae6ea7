"""Free generation as a recommender: prompts -> completions -> titles -> catalog ids.

:class:`FreeGeneration` builds one prompt per record (:func:`llmrec.llm.prompts.build_prompts`:
zero-shot, few-shot, chat or Alpaca, with the ablation variants), generates (batched,
:func:`llmrec.llm.decoding.generate`), parses (:func:`llmrec.llm.parsing.parse_completion`) and
matches each title to catalog ids with the matcher under test (:mod:`llmrec.evaluation.matching`).
An empty or unparsable completion is a prediction with no ids: it counts as invalid, it
is never dropped and never stops the run. :func:`llmrec.evaluation.spine.evaluate` scores it.

:func:`example_outputs` runs the hand-picked lists of ``templates/blog_examples.json``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmrec.data.formats import join_titles
from llmrec.llm.decoding import generate
from llmrec.llm.parsing import parse_completion
from llmrec.llm.prompts import (
    blog_examples,
    blog_shots,
    build_prompts,
    shots_from_records,
    style_prompt,
)
from llmrec.recommenders.base import Recommender, register


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


@register("generate")
class FreeGeneration(Recommender):
    """An LLM that writes its list: ``style`` prompts, decoding ``preset``, a title matcher.

    ``shots``: the few-shot examples (default: ``n_shots`` drawn from ``train_records`` with
    ``seed``); ``with_year``, ``dislikes`` (+ ``ratings``): the prompt variants.
    ``generate_kwargs`` override the preset's settings (``temperature``, ``top_p`` ...).
    """

    def __init__(self, model: Any, tokenizer: Any, movies: pd.DataFrame, matcher: Any, *,
                 system: str, setting: str, style: str = "zero-shot", preset: str = "greedy",
                 train_records: pd.DataFrame | None = None, n_shots: int = 2,
                 shots: Sequence[Mapping[str, Any]] | None = None, with_year: bool = True,
                 dislikes: bool = False, ratings: pd.DataFrame | None = None,
                 batch_size: int = 16, max_new_tokens: int = 48, seed: int = 0, k: int = 4,
                 generate_kwargs: Mapping[str, Any] | None = None, progress: bool = True):
        self.model, self.tokenizer, self.movies, self.matcher = model, tokenizer, movies, matcher
        self.system, self.setting, self.style, self.preset = system, setting, style, preset
        if style == "few-shot" and shots is None:
            shots = (shots_from_records(train_records, movies, n_shots, seed, with_year)
                     if train_records is not None else blog_shots(n_shots))
        self.shots = list(shots or [])
        self.n_shots = n_shots if style == "few-shot" else 0
        self.example_titles = [t for s in self.shots for t in s["answer"]]
        self.with_year, self.dislikes, self.ratings = with_year, dislikes, ratings
        self.batch_size, self.max_new_tokens, self.seed, self.k = batch_size, max_new_tokens, seed, k
        self.generate_kwargs = dict(generate_kwargs or {})
        self.progress = progress
        self.generation_seconds = float("nan")

    def prompts(self, records: pd.DataFrame) -> list[str]:
        """The prompt of each record, exactly as the model sees it."""
        return build_prompts(self.style, records, self.movies, tokenizer=self.tokenizer, n=self.k,
                             with_year=self.with_year, dislikes=self.dislikes,
                             ratings=self.ratings, shots=self.shots or None, seed=self.seed)

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """Raw completions of ``prompts`` with this system's decoding settings."""
        return generate(self.model, self.tokenizer, prompts, preset=self.preset,
                        batch_size=self.batch_size, max_new_tokens=self.max_new_tokens,
                        seed=self.seed, stop_after_titles=self.k, progress=self.progress,
                        **self.generate_kwargs)

    def predict(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        prompts = self.prompts(records)
        start = time.perf_counter()
        completions = self.complete(prompts)
        self.generation_seconds = time.perf_counter() - start
        titles = [parse_completion(c, max_titles=self.k) for c in completions]
        predicted = match_titles(self.matcher, titles)
        self.n_predicted = len(completions)
        return [{"predicted_ids": p, "titles": t, "completion": c}
                for p, t, c in zip(predicted, titles, completions, strict=True)]

    def settings(self) -> dict[str, Any]:
        n, gen = getattr(self, "n_predicted", 0), self.generation_seconds
        return {"preset": self.preset, "style": self.style, "n_shots": self.n_shots,
                "with_year": self.with_year, "dislikes": self.dislikes,
                "batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens,
                **self.generate_kwargs,
                "generation_seconds": round(gen, 3),
                "prompts_per_second": round(n / gen, 4) if n and gen > 0 else float("nan")}


def example_outputs(model: Any, tokenizer: Any, style: str = "zero-shot", preset: str = "greedy",
                    n_shots: int = 1, n: int = 4, max_new_tokens: int = 48, seed: int = 0
                    ) -> pd.DataFrame:
    """The hand-picked lists (``templates/blog_examples.json``) with the raw outputs."""
    examples = blog_examples()
    texts = []
    for q in examples["queries"]:
        # a shot never answers its own list
        shots = [s for s in examples["shots"] if s["name"] != q["name"]][:n_shots]
        texts.append(style_prompt(style, q["liked"], n=n, tokenizer=tokenizer, shots=shots))
    completions = generate(model, tokenizer, texts, preset=preset, batch_size=len(texts),
                           max_new_tokens=max_new_tokens, seed=seed, stop_after_titles=n,
                           progress=False)
    return pd.DataFrame({
        "example": [q["name"] for q in examples["queries"]],
        "liked": [join_titles(q["liked"]) for q in examples["queries"]],
        "style": style, "preset": preset,
        "completion": completions,
        "titles": [parse_completion(c, max_titles=n) for c in completions],
    })
