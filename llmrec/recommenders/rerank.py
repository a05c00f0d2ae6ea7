"""Retrieve-then-rerank: a baseline proposes candidates, the language model orders them.

The blog's closing idea, "a combination of traditional recsys and LLMs", made concrete:
a retriever (e.g. item-kNN) proposes ``n`` candidates per record from the 6 inputs, and
the LLM only *orders* them, so it can never name a movie outside the catalog.

Two scorers:

- :func:`rerank_likelihood`: the log-likelihood of each candidate title as the
  continuation of the prompt (the first title of the answer). The prompt is run once and
  its key/value cache shared by all candidates of the record (one batched forward pass
  over the candidates' tokens), so scoring 20 candidates costs about one prompt plus 20
  short titles. ``reduction="mean"`` (per token, the default) does not favour short
  titles; ``"sum"`` is the total log-probability. Method ``likelihood-catalog`` is the
  same with every next-token distribution normalised over the tokens catalog titles are
  spelt with only (:func:`catalog_vocabulary`): a different score, cheaper on a model
  with a large vocabulary (the head computes a few thousand logits, not 262,144).
- :func:`rerank_letters`: LlamaRec-style: the candidates are listed in the prompt as
  (A), (B), ... (:func:`letter_prompt`), and one forward pass reads the next-token
  log-probability of each letter.

:func:`rerank` turns either score into ranked item ids (ties keep the retriever's order).
"""

from __future__ import annotations

import copy
import string
import time
from collections.abc import Mapping, Sequence
from typing import Any

from llmrec.data.formats import join_titles, title_map, titles_for
from llmrec.errors import LlmrecError
from llmrec.llm.heads import head_logits, hidden_states
from llmrec.llm.prompts import build_prompts, load_template
from llmrec.llm.tokens import continuation_ids
from llmrec.recommenders.base import Recommender, ranked_predictions, register
from llmrec.side_by_side import follow_share

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

LETTERS = string.ascii_uppercase
METHODS = ("likelihood", "letters", "likelihood-catalog")


def letter_prompt(input_titles: Sequence[str], candidate_titles: Sequence[str]) -> str:
    """The liked titles and the candidates labelled (A), (B), ...; ends where the letter goes
    (``templates/letters.json``)."""
    if len(candidate_titles) > len(LETTERS):
        raise LlmrecError(f"{len(candidate_titles)} candidates but only {len(LETTERS)} letters; "
                          "retrieve at most 26")
    template = load_template("letters")
    lines = [template["candidate"].format(letter=LETTERS[i], title=t)
             for i, t in enumerate(candidate_titles)]
    return template["prompt"].format(liked=join_titles(input_titles), candidates="\n".join(lines))


def _candidate_ids(tokenizer, titles: Sequence[str], anchor: str) -> list[list[int]]:
    out = []
    for title in titles:
        ids = continuation_ids(tokenizer, title, anchor) or tokenizer.encode(title, add_special_tokens=False)
        if not ids:
            raise LlmrecError(f"candidate title {title!r} tokenizes to nothing; drop empty titles")
        out.append(ids)
    return out


def rerank_likelihood(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    candidate_titles: Sequence[Sequence[str]],
    batch_size: int = 20,
    reduction: str = "mean",
    anchor: str = "\n",
    progress: bool = True,
    full_head: bool = False,
    vocabulary: Sequence[int] | None = None,
) -> list[list[float]]:
    """Per prompt, the log-likelihood of each candidate title as the prompt's continuation.

    ``candidate_titles[i]`` are prompt ``i``'s candidates (tokenized as they would follow
    ``anchor``, the prompt's last character). ``batch_size`` candidates go through one
    forward pass that reuses the prompt's cache; the LM head runs only where a candidate
    token is predicted (``full_head=True``: at every position of the pass, the naive way;
    the same scores). Returns scores in candidate order.

    ``vocabulary``: normalise each next-token distribution over these token ids only
    (e.g. :func:`catalog_vocabulary`, the tokens catalog titles are spelt with), so the
    head computes only their logits: a different score (its own setting,
    ``likelihood-catalog``), not a faster way to the same one.
    """
    import torch
    from tqdm.auto import tqdm

    if reduction not in ("mean", "sum"):
        raise LlmrecError(f"unknown reduction {reduction!r}; use 'mean' or 'sum'")
    if len(candidate_titles) != len(prompts):
        raise LlmrecError(f"{len(candidate_titles)} candidate lists for {len(prompts)} prompts; "
                          "give one list per prompt")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    vocab = position = None
    if vocabulary is not None:
        vocab = torch.tensor(sorted({int(t) for t in vocabulary}), dtype=torch.long, device=device)
        position = {int(t): i for i, t in enumerate(vocab.tolist())}
    scores: list[list[float]] = []
    with torch.inference_mode():
        for prompt, titles in tqdm(list(zip(prompts, candidate_titles, strict=True)),
                                   desc="rerank (likelihood)", disable=not progress, leave=False):
            follow_share()
            if not titles:
                scores.append([])
                continue
            cands = _candidate_ids(tokenizer, titles, anchor)
            enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=True).to(device)
            out = model(**enc, use_cache=True, logits_to_keep=1)  # only the last position's logits
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            if vocab is not None:
                missing = [t for c in cands for t in c if t not in position]
                if missing:
                    raise LlmrecError(f"candidate token {missing[0]} is not in the vocabulary scores are "
                                      "normalised over; build it from the catalog's titles")
                first = torch.log_softmax(out.logits[0, -1].float().index_select(0, vocab), dim=-1)
                cands_at = [[position[t] for t in c] for c in cands]
            record: list[float] = []
            chunks = [cands[i:i + batch_size] for i in range(0, len(cands), batch_size)]
            for n, chunk in enumerate(chunks):
                cache = out.cache if n == len(chunks) - 1 else copy.deepcopy(out.cache)
                cache.batch_repeat_interleave(len(chunk))
                width = max(len(c) for c in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long, device=device)
                for r, c in enumerate(chunk):
                    ids[r, :len(c)] = torch.tensor(c, device=device)
                mask = torch.ones((len(chunk), enc["input_ids"].shape[1] + width), dtype=torch.long,
                                  device=device)
                if full_head:  # the naive way: logits at every position, pads and last ones too
                    logits = model(input_ids=ids, attention_mask=mask, cache=cache,
                                   use_cache=True).logits
                    logp = torch.log_softmax(logits.float(), dim=-1)
                    tails = [logp[r, torch.arange(len(c) - 1, device=device),
                                  torch.tensor(c[1:], device=device)] for r, c in enumerate(chunk)]
                else:
                    at = None if vocab is None else cands_at[n * batch_size:(n + 1) * batch_size]
                    tails = _tail_logps(model, ids, mask, cache, chunk, vocab, at)
                for r, (c, tail) in enumerate(zip(chunk, tails, strict=True)):
                    head_tok = c[0] if vocab is None else cands_at[n * batch_size + r][0]
                    total = float(first[head_tok]) + (float(tail.sum()) if len(c) > 1 else 0.0)
                    record.append(total / len(c) if reduction == "mean" else total)
            scores.append(record)
    return scores


def _tail_logps(model, ids, mask, cache, chunk, vocab=None, chunk_at=None):
    """Per candidate, the log-probabilities of its tokens after the first: the decoder runs
    over the whole chunk, the LM head (and the log-softmax over the vocabulary) only at the
    positions that predict a candidate token, not at pads or after a candidate's end.
    With ``vocab`` (token ids) the head and the log-softmax cover only those tokens, and
    ``chunk_at`` gives each candidate's tokens as positions in ``vocab``."""
    import torch

    hidden, _ = hidden_states(model, input_ids=ids, attention_mask=mask, cache=cache, use_cache=True)
    rows = [r for r, c in enumerate(chunk) for _ in range(len(c) - 1)]
    cols = [p for c in chunk for p in range(len(c) - 1)]
    if not rows:
        return [hidden.new_zeros(0) for _ in chunk]
    device = hidden.device
    picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
    logp = torch.log_softmax(head_logits(model, picked, vocab).float(), dim=-1)
    targets = torch.tensor([t for c in (chunk_at or chunk) for t in c[1:]], device=device)
    values = logp[torch.arange(len(rows), device=device), targets]
    return list(values.split([len(c) - 1 for c in chunk]))


def catalog_vocabulary(tokenizer, titles: Sequence[str], anchor: str = "\n") -> list[int]:
    """Every token id the titles are spelt with, as they follow ``anchor`` (the vocabulary
    ``likelihood-catalog`` normalises over)."""
    return sorted({t for ids in _candidate_ids(tokenizer, list(dict.fromkeys(titles)), anchor) for t in ids})


def letter_token_ids(tokenizer, n: int) -> list[int]:
    """The token id of each letter A, B, ... as it follows ``(`` (its first token)."""
    ids = []
    for letter in LETTERS[:n]:
        tok = continuation_ids(tokenizer, letter, "(") or tokenizer.encode(letter, add_special_tokens=False)
        ids.append(tok[0])
    if len(set(ids)) != len(ids):
        raise LlmrecError("two candidate letters share a first token with this tokenizer; use likelihood")
    return ids


def rerank_letters(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    n_candidates: Sequence[int],
    batch_size: int = 8,
    progress: bool = True,
    over: str = "vocabulary",
    token_ids: Sequence[int] | None = None,
) -> list[list[float]]:
    """LlamaRec-style scores: the next-token log-probability of each candidate's letter.

    ``prompts`` come from :func:`letter_prompt`; ``n_candidates[i]`` is how many letters
    prompt ``i`` lists. Batched with left padding; one forward pass per prompt, the LM
    head at its last position only.

    ``over="vocabulary"``: the log-softmax over the whole vocabulary (a zero-shot model
    may put its mass elsewhere); ``"letters"``: over the prompt's own letters only (the
    verbalizer of a ranker trained to answer with a letter, LlamaRec's reading).
    ``token_ids``: the letters' token ids (default :func:`letter_token_ids`).
    """
    import torch
    from tqdm.auto import tqdm

    if len(n_candidates) != len(prompts):
        raise LlmrecError(f"{len(n_candidates)} candidate counts for {len(prompts)} prompts")
    if over not in ("vocabulary", "letters"):
        raise LlmrecError(f"unknown normalisation {over!r}; use 'vocabulary' or 'letters'")
    n_max = max(n_candidates, default=0)
    letters = list(token_ids) if token_ids is not None else letter_token_ids(tokenizer, n_max)
    if len(letters) < n_max:
        raise LlmrecError(f"{len(letters)} letter tokens for prompts listing up to {n_max} candidates")
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[list[float]] = []
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(prompts), batch_size), desc="rerank (letters)",
                              disable=not progress, leave=False):
                follow_share()  # a chain left alone takes the idle core (llmrec.side_by_side)
                batch = list(prompts[start:start + batch_size])
                enc = tokenizer(batch, return_tensors="pt", padding=True,
                                add_special_tokens=True).to(device)
                logits = model(**enc, logits_to_keep=1).logits[:, -1].float()
                if over == "vocabulary":
                    logits = torch.log_softmax(logits, dim=-1)
                for r, n in enumerate(n_candidates[start:start + batch_size]):
                    row = logits[r, letters[:n]]
                    out.append((row if over == "vocabulary" else torch.log_softmax(row, dim=-1)).tolist())
    finally:
        tokenizer.padding_side = side
    return out


def order_by_scores(candidate_ids: Sequence[Sequence[int]], scores: Sequence[Sequence[float]],
                    k: int | None = None) -> list[list[int]]:
    """Candidates sorted by score, highest first; ties keep the retriever's order."""
    ranked = []
    for ids, sc in zip(candidate_ids, scores, strict=True):
        order = sorted(range(len(ids)), key=lambda i: (-sc[i], i))
        ranked.append([ids[i] for i in order][:k])
    return ranked


def rerank(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    candidate_ids: Sequence[Sequence[int]],
    titles: Mapping[int, str],
    method: str = "likelihood",
    k: int | None = None,
    batch_size: int = 20,
    input_titles: Sequence[Sequence[str]] | None = None,
    progress: bool = True,
) -> tuple[list[list[int]], list[list[float]]]:
    """Order each record's candidates with the LLM; return ``(ranked ids, scores)``.

    ``method="likelihood"``: ``prompts`` are the usual answer prompts (e.g. Alpaca) and
    each candidate is scored as the first title of the answer; ``"likelihood-catalog"``
    normalises over the catalog titles' tokens (``titles``' values). ``method="letters"``:
    the prompts are built here from ``input_titles`` with :func:`letter_prompt`
    (``prompts`` is ignored). ``scores[i]`` follow the order of ``candidate_ids[i]``.
    """
    if method not in METHODS:
        raise LlmrecError(f"unknown rerank method {method!r}; use one of {', '.join(METHODS)}")
    try:
        cand_titles = [[titles[int(i)] for i in ids] for ids in candidate_ids]
    except KeyError as err:
        raise LlmrecError(f"candidate item {err.args[0]} has no title; pass the movies' titles") from None
    if method.startswith("likelihood"):
        if any(not p for p in prompts):
            raise LlmrecError(f"method {method!r} needs the answer prompts (one per record)")
        vocabulary = (catalog_vocabulary(tokenizer, [str(t) for t in titles.values()])
                      if method == "likelihood-catalog" else None)
        scores = rerank_likelihood(model, tokenizer, prompts, cand_titles, batch_size=batch_size,
                                   progress=progress, vocabulary=vocabulary)
    else:
        if input_titles is None:
            raise LlmrecError("method 'letters' needs input_titles to build the listing prompts")
        letter_prompts = [letter_prompt(inp, ct) for inp, ct in zip(input_titles, cand_titles, strict=True)]
        scores = rerank_letters(model, tokenizer, letter_prompts, [len(c) for c in cand_titles],
                                batch_size=max(1, batch_size // 4), progress=progress)
    return order_by_scores(candidate_ids, scores, k), scores


@register("rerank")
class Rerank(Recommender):
    """Retrieve-then-rerank: ``retriever`` (a fitted baseline) proposes ``n_candidates`` per
    record (inputs excluded), the LLM orders them by ``method``; the first ``k`` are the list.

    Predictions keep the ``candidates`` (retriever order) and the LLM's ``llm_scores``.
    ``style``: the answer prompt whose first title is scored (``likelihood`` and
    ``likelihood-catalog`` only)."""

    def __init__(self, model: Any, tokenizer: Any, movies, retriever: Any, *, system: str,
                 setting: str, method: str = "likelihood", style: str = "alpaca",
                 n_candidates: int = 20, k: int = 10, batch_size: int = 20, progress: bool = True):
        if method not in METHODS:
            raise LlmrecError(f"unknown rerank method {method!r}; use one of {', '.join(METHODS)}")
        self.model, self.tokenizer, self.movies, self.retriever = model, tokenizer, movies, retriever
        self.system, self.setting, self.method, self.style = system, setting, method, style
        self.n_candidates, self.k, self.batch_size, self.progress = n_candidates, k, batch_size, progress
        self.rerank_seconds = float("nan")

    def predict(self, records) -> list[dict[str, Any]]:
        candidates = self.retriever.recommend_many(records["input_ids"], self.n_candidates)
        names = title_map(self.movies)
        inputs = [titles_for(ids, names) for ids in records["input_ids"]]
        prompts = (build_prompts(self.style, records, self.movies, tokenizer=self.tokenizer)
                   if self.method.startswith("likelihood") else [""] * len(records))
        start = time.perf_counter()
        ranked, scores = rerank(self.model, self.tokenizer, prompts, candidates, names,
                                method=self.method, batch_size=self.batch_size,
                                input_titles=inputs, progress=self.progress)
        self.rerank_seconds = time.perf_counter() - start
        extra = [{"candidates": [int(i) for i in c], "llm_scores": [round(float(x), 4) for x in sc]}
                 for c, sc in zip(candidates, scores, strict=True)]
        return ranked_predictions(ranked, self.k, extra)

    def settings(self) -> dict[str, Any]:
        return {"method": self.method, "retriever": self.retriever.system,
                "n_candidates": self.n_candidates, "rerank_seconds": round(self.rerank_seconds, 3)}
