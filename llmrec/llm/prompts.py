"""Prompts: the text a model sees for one record. Templates are data (``llmrec/llm/templates``).

Styles (pick one by name with :func:`build_prompts`):

- ``zero-shot``: the blog's plain-text continuation prompt: the 6 liked movies joined by
  ``" => "``, then a request for ``n`` similar movies separated by ``=>``.
- ``few-shot``: ``k`` worked examples in the same format before the query: drawn from
  *training* records (seeded), or the hand-written lists of ``templates/blog_examples.json``
  (like the blog's Studio Ghibli list).
- ``chat``: the same request as one user message through the tokenizer's chat template
  (for instruction-tuned models, which otherwise continue the plain prompt with code).
- ``alpaca``: the Alpaca instruction prompt that LoRA-tuned models are trained on.
- ``compact``: the liked titles and ``Next 4:``, without Alpaca's fixed preamble: a
  training format of ours (about half the tokens), for tuned models only.

Variants: liked + disliked movies (ratings <= 2 the user gave before the record's input
ends) and titles without years.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from llmrec.data.formats import join_titles, title_map, titles_for
from llmrec.errors import LlmrecError

STYLES = ("zero-shot", "few-shot", "chat", "alpaca", "compact")
#: Ratings at or below this are dislikes (the blog's suggested variant).
DISLIKE_MAX_RATING = 2.0


@cache
def load_template(name: str) -> dict[str, Any]:
    """The template ``llmrec/llm/templates/<name>.json`` as a dict."""
    try:
        text = resources.files("llmrec.llm").joinpath("templates", f"{name}.json").read_text("utf-8")
    except FileNotFoundError:
        raise LlmrecError(f"no prompt template {name!r}; see llmrec/llm/templates/*.json") from None
    return json.loads(text)


# --- the four styles, one record at a time -------------------------------------------------

def zero_shot_prompt(liked: Sequence[str], n: int = 4,
                     disliked: Sequence[str] | None = None) -> str:
    """The blog's continuation prompt for one list of liked titles."""
    t = load_template("zero_shot")
    if disliked is None:
        return t["prompt"].format(liked=join_titles(liked), n=n)
    return t["prompt_with_dislikes"].format(
        liked=join_titles(liked), n=n, disliked=join_titles(disliked) if disliked else t["no_dislikes"])


def few_shot_prompt(liked: Sequence[str], shots: Sequence[Mapping[str, Any]], n: int = 4,
                    disliked: Sequence[str] | None = None) -> str:
    """``shots`` worked examples (dicts with ``liked``, ``answer`` and, for the dislike
    variant, ``disliked`` title lists), then the zero-shot prompt for ``liked``."""
    t = load_template("few_shot")
    none = load_template("zero_shot")["no_dislikes"]
    parts = []
    for shot in shots:
        if disliked is None:
            parts.append(t["example"].format(liked=join_titles(shot["liked"]), n=len(shot["answer"]),
                                             answer=join_titles(shot["answer"])))
        else:
            parts.append(t["example_with_dislikes"].format(
                liked=join_titles(shot["liked"]), n=len(shot["answer"]), answer=join_titles(shot["answer"]),
                disliked=join_titles(shot.get("disliked") or []) or none))
    return "".join(parts) + zero_shot_prompt(liked, n=n, disliked=disliked)


def alpaca_instruction(n: int = 4) -> str:
    """The instruction every Alpaca training record carries."""
    return load_template("alpaca")["instruction"].format(n=n)


def alpaca_prompt(input_titles: Sequence[str], output_titles: Sequence[str] | None = None,
                  n: int = 4) -> str:
    """The Alpaca prompt for ``input_titles``; with ``output_titles`` the answer follows it
    (a training text; the caller appends the tokenizer's eos token)."""
    prompt, answer = alpaca_parts(input_titles, output_titles or [], n=n)
    return prompt + answer


def alpaca_parts(input_titles: Sequence[str], output_titles: Sequence[str],
                 n: int = 4) -> tuple[str, str]:
    """``(prompt, answer)`` of a training example: the loss is computed on ``answer`` only."""
    t = load_template("alpaca")
    prompt = t["prompt_input"].format(instruction=alpaca_instruction(n), input=join_titles(input_titles))
    return prompt, join_titles(output_titles)


def compact_parts(input_titles: Sequence[str], output_titles: Sequence[str],
                  n: int = 4) -> tuple[str, str]:
    """``(prompt, answer)`` in the compact format (``templates/compact.json``)."""
    prompt = load_template("compact")["prompt"].format(liked=join_titles(input_titles), n=n)
    return prompt, join_titles(output_titles)


def split_alpaca(text: str) -> tuple[str, str]:
    """Split a full Alpaca text at the response marker: ``(prompt, answer)``.

    The prompt keeps the marker and its newline, so ``prompt + answer == text``.
    """
    marker = load_template("alpaca")["response_split"]
    at = text.find(marker)
    if at < 0:
        raise LlmrecError(f"text has no {marker!r}; it is not an Alpaca prompt")
    end = at + len(marker)
    if text[end:end + 1] == "\n":
        end += 1
    return text[:end], text[end:]


def chat_prompt(tokenizer: Any, titles: Sequence[str], n: int = 4,
                disliked: Sequence[str] | None = None, with_year: bool = True) -> str:
    """One user message through ``tokenizer``'s chat template, assistant turn opened."""
    if not getattr(tokenizer, "chat_template", None):
        raise LlmrecError("this tokenizer has no chat template; use style zero-shot or few-shot")
    t = load_template("chat")
    if disliked is not None:
        none = load_template("zero_shot")["no_dislikes"]
        text = t["user_with_dislikes"].format(liked=join_titles(titles), n=n,
                                              disliked=join_titles(disliked) if disliked else none)
    else:
        text = t["user" if with_year else "user_no_year"].format(liked=join_titles(titles), n=n)
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


# --- examples and dislikes ------------------------------------------------------------------

def blog_examples() -> dict[str, Any]:
    """The hand-picked lists (``shots`` with answers, ``queries`` without)."""
    return load_template("blog_examples")


def blog_shots(k: int = 1) -> list[dict[str, Any]]:
    shots = blog_examples()["shots"]
    if k > len(shots):
        raise LlmrecError(f"only {len(shots)} hand-written shots exist; use n_shots <= {len(shots)} "
                          "or draw shots from training records")
    return [dict(s) for s in shots[:k]]


def shots_from_records(train_records, movies, k: int = 2, seed: int = 0,
                       with_year: bool = True) -> list[dict[str, Any]]:
    """``k`` worked examples drawn (seeded) from training records: liked = inputs, answer = targets."""
    if k <= 0:
        return []
    if len(train_records) < k:
        raise LlmrecError(f"only {len(train_records)} training records for {k} shots; lower n_shots")
    names = title_map(movies, with_year)
    rng = np.random.default_rng(seed)
    rows = train_records.iloc[sorted(rng.choice(len(train_records), size=k, replace=False))]
    return [{"record_id": r.record_id, "liked": titles_for(r.input_ids, names),
             "answer": titles_for(r.target_ids, names)} for r in rows.itertuples()]


def disliked_ids(records, ratings, max_items: int = 6) -> list[list[int]]:
    """Per record, the user's most recent dislikes (rating <= 2) up to the record's input end.

    Only ratings with ``timestamp <= input_end_ts`` count, so nothing from the future
    leaks in; the last ``max_items`` of them, oldest first.
    """
    bad = ratings[ratings["rating"] <= DISLIKE_MAX_RATING].sort_values(["timestamp", "item_id"])
    by_user = {u: (g["timestamp"].to_numpy(), g["item_id"].to_numpy())
               for u, g in bad.groupby("user_id")}
    out = []
    for r in records.itertuples():
        ts, items = by_user.get(r.user_id, ((), ()))
        chosen = [int(i) for t, i in zip(ts, items, strict=False) if t <= r.input_end_ts]
        out.append(chosen[-max_items:] if max_items else chosen)
    return out


# --- many records at once -------------------------------------------------------------------

def build_prompts(
    style: str,
    records,
    movies,
    tokenizer: Any = None,
    n: int = 4,
    with_year: bool = True,
    dislikes: bool = False,
    ratings=None,
    shots: Sequence[Mapping[str, Any]] | None = None,
    n_shots: int = 2,
    train_records=None,
    seed: int = 0,
) -> list[str]:
    """One prompt per record (in order) in ``style`` (one of :data:`STYLES`).

    ``few-shot`` uses ``shots`` if given, else ``n_shots`` drawn from ``train_records``
    (seeded), else the hand-written blog shots. ``dislikes=True`` needs ``ratings``.
    """
    if style not in STYLES:
        raise LlmrecError(f"unknown prompt style {style!r}; use one of {', '.join(STYLES)}")
    names = title_map(movies, with_year)
    disliked: list[list[str] | None] = [None] * len(records)
    if dislikes:
        if ratings is None:
            raise LlmrecError("the dislike variant needs the ratings table (ratings=...)")
        disliked = [titles_for(ids, names) for ids in disliked_ids(records, ratings)]
    if style == "few-shot" and shots is None:
        if train_records is not None:
            shots = shots_from_records(train_records, movies, n_shots, seed, with_year)
        else:
            shots = blog_shots(n_shots)
    if style == "chat" and tokenizer is None:
        raise LlmrecError("style 'chat' needs the model's tokenizer (tokenizer=...)")
    return [style_prompt(style, titles_for(r.input_ids, names), n, tokenizer, shots, bad, with_year)
            for r, bad in zip(records.itertuples(), disliked, strict=False)]


def style_prompt(style: str, liked: Sequence[str], n: int = 4, tokenizer: Any = None,
                 shots: Sequence[Mapping[str, Any]] | None = None,
                 disliked: Sequence[str] | None = None, with_year: bool = True) -> str:
    """The prompt of one list of liked titles in ``style`` (one of :data:`STYLES`)."""
    if style == "zero-shot":
        return zero_shot_prompt(liked, n, disliked)
    if style == "few-shot":
        return few_shot_prompt(liked, shots or [], n, disliked)
    if style == "chat":
        return chat_prompt(tokenizer, liked, n, disliked, with_year)
    if style == "alpaca":
        return alpaca_prompt(liked, n=n)
    if style == "compact":
        return compact_parts(liked, [], n=n)[0]
    raise LlmrecError(f"unknown prompt style {style!r}; use one of {', '.join(STYLES)}")


def check_lengths(prompts: Sequence[str], tokenizer: Any, context: int, reserve: int = 0) -> list[int]:
    """Token lengths of ``prompts``; a prompt that leaves fewer than ``reserve`` tokens of the
    model's ``context`` for the completion is refused with its length."""
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    for i, length in enumerate(lengths):
        if length + reserve > context:
            raise LlmrecError(
                f"prompt {i} is {length} tokens; with {reserve} new tokens it exceeds the model's "
                f"context of {context}: use fewer shots, shorter titles or a smaller max_new_tokens")
    return lengths
