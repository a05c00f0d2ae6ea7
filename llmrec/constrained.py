"""Catalog-constrained decoding: generation that can only spell titles that exist.

A prefix tree (trie) over the token ids of the catalog's display titles, as they appear
in a completion (``Title (Year) => Title (Year) => ...``), is walked by a logits
processor during ``model.generate``: at each step only the tokens that continue some
catalog title are allowed; ``=>`` (with the next title) only right after a whole title;
after ``n_titles`` whole titles only the end-of-sequence token. Titles given in
``exclude`` (e.g. the input movies) and titles already generated in the same completion
are pruned from the tree, so a list never repeats an item.

Token ids come from tokenizing the full continuation strings in context: the first title
as it follows the prompt's last character (``first_anchor``, a newline by default), each
later one as ``" => Title (Year)"`` after a closing parenthesis. The separator and the
title are one token path, so tokenizer merges across the boundary are handled, and every
path is checked to decode back to exactly its text; a title that does not round-trip is
left out of the tree (counted in :attr:`CatalogTrie.skipped`). A completion can therefore
hold only exact catalog titles: the hallucination rate is 0 by construction and a matcher
maps each parsed title to its ids by exact lookup. A title cut by ``max_new_tokens`` is
dropped from the returned text, never returned half-spelt.

Works with greedy, sampling and beam search, batched with left padding (every row of a
batch has the same padded prompt length, so the generated tokens of each row are the ids
after that length).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmrec.decoding import preset_kwargs
from llmrec.errors import LlmrecError
from llmrec.formats import SEPARATOR, title_map, titles_for
from llmrec.heads import catalog_token_ids, restricted_head
from llmrec.matching import Catalog
from llmrec.parsing import parse_completion
from llmrec.prompts import build_prompts
from llmrec.recommenders import Recommender, register
from llmrec.tokens import continuation_ids, decode

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

#: LM heads of :func:`constrained_generate` (see there).
CONSTRAINED_HEADS = ("auto", "full", "catalog")


class _Node:
    __slots__ = ("children", "title", "ids", "tokens")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.title: int | None = None  # index of the title that ends here
        self.ids: set[int] = set()  # indices of the titles at or below this node
        self.tokens: list[int] | None = None  # cached sorted child tokens


def _insert(root: _Node, ids: Sequence[int], title: int) -> None:
    node = root
    node.ids.add(title)
    for tok in ids:
        node = node.children.setdefault(tok, _Node())
        node.ids.add(title)
    node.title = title


def _depth(node: _Node) -> int:
    return 0 if not node.children else 1 + max(_depth(c) for c in node.children.values())


@dataclass
class CatalogTrie:
    """Two prefix trees over the catalog titles' token ids: first title, and ``=> title``.

    Build it with :meth:`from_titles`. ``titles[i]`` is the exact text of title ``i``;
    ``skipped`` lists titles whose tokens do not decode back to them (left out).
    """

    titles: list[str]
    first: _Node
    next: _Node
    eos_token_id: int
    separator: str = SEPARATOR
    first_prefix: str = ""
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def from_titles(
        cls,
        tokenizer,
        titles: Iterable[str],
        separator: str = SEPARATOR,
        first_prefix: str = "",
        first_anchor: str = "\n",
    ) -> CatalogTrie:
        """Tokenize every distinct title as a first title (``first_prefix + title`` after
        ``first_anchor``, the prompt's last characters) and as a later one
        (``separator + title`` after ``")"``); build both trees."""
        if tokenizer.eos_token_id is None:
            raise LlmrecError("constrained decoding needs a tokenizer with an eos token; set tokenizer.eos_token")
        unique = list(dict.fromkeys(t for t in titles if t and t.strip()))
        if not unique:
            raise LlmrecError("constrained decoding got an empty catalog; pass the movies' display titles")
        first, nxt = _Node(), _Node()
        kept: list[str] = []
        skipped: list[str] = []
        for title in unique:
            a = continuation_ids(tokenizer, first_prefix + title, first_anchor)
            b = continuation_ids(tokenizer, separator + title, ")")
            if a is None or b is None:
                skipped.append(title)
                continue
            idx = len(kept)
            kept.append(title)
            _insert(first, a, idx)
            _insert(nxt, b, idx)
        if not kept:
            raise LlmrecError("no catalog title survives tokenization round-trip; check the tokenizer")
        return cls(kept, first, nxt, int(tokenizer.eos_token_id), separator, first_prefix, skipped)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.titles)}

    def max_tokens(self, n_titles: int) -> int:
        """Token budget that always fits ``n_titles`` whole titles plus the end token."""
        return _depth(self.first) + max(0, n_titles - 1) * _depth(self.next) + 1

    def step(self, alts: tuple, tok: int, exclude: frozenset[int] = frozenset(),
             n_titles: int | None = None) -> tuple:
        """Advance every alternative ``(node, done_titles, end, pos)`` by ``tok``; drop dead ones.

        Alternatives exist because a token may both continue a title and start ``=> next``.
        ``end`` is how many tokens the whole titles in ``done_titles`` span. A title in
        ``exclude`` or already done cannot be closed; after ``n_titles`` no ``=>`` follows.
        """
        out = []
        for node, done, end, pos in alts:
            if tok in node.children:
                out.append((node.children[tok], done, end, pos + 1))
            if (node.title is not None and tok in self.next.children
                    and node.title not in exclude and node.title not in done
                    and (n_titles is None or len(done) + 1 < n_titles)):
                out.append((self.next.children[tok], done + (node.title,), pos, pos + 1))
        return tuple(out)

    def start(self) -> tuple:
        return ((self.first, (), 0, 0),)

    def walk(self, tokens: Sequence[int], exclude: frozenset[int] = frozenset(),
             n_titles: int | None = None) -> tuple[list[int], int]:
        """Whole titles (indices) spelt by ``tokens``, and how many tokens they span."""
        alts = self.start()
        for tok in tokens:
            nxt = self.step(alts, tok, exclude, n_titles)
            if not nxt:
                break
            alts = nxt
        best: tuple[tuple[int, ...], int] = ((), 0)
        for node, done, end, pos in alts:
            closable = node.title is not None and node.title not in exclude and node.title not in done
            cand = (done + (node.title,), pos) if closable else (done, end)
            if len(cand[0]) > len(best[0]):
                best = cand
        return list(best[0]), best[1]


class CatalogLogitsProcessor:
    """Masks every token that does not continue a catalog title (one batch of ``generate``).

    ``prompt_len`` is the padded prompt length of the batch; ``exclude[b]`` holds the
    title indices batch row ``b`` may not produce; beam ``r`` belongs to row ``r // num_beams``.
    """

    def __init__(self, trie: CatalogTrie, prompt_len: int, n_titles: int,
                 exclude: Sequence[frozenset[int]], num_beams: int = 1) -> None:
        self.trie = trie
        self.prompt_len = prompt_len
        self.n_titles = n_titles
        self.exclude = list(exclude)
        self.num_beams = max(1, num_beams)
        self._states: dict[tuple[int, tuple[int, ...]], tuple] = {}
        self.seconds = 0.0  # time spent masking: the constraint's own cost
        self.calls = 0

    # A state is a tuple of alternatives (node, done_titles, end, pos); () once dead or ended.
    def _state(self, b: int, toks: tuple[int, ...]) -> tuple:
        key = (b, toks)
        hit = self._states.get(key)
        if hit is not None:
            return hit
        if not toks:
            state = self.trie.start()
        else:
            state = self.trie.step(self._state(b, toks[:-1]), toks[-1], self.exclude[b], self.n_titles)
        self._states[key] = state
        return state

    def _allowed(self, b: int, state: tuple) -> list[int]:
        eos = self.trie.eos_token_id
        allowed: set[int] = set()
        for node, done, _end, _pos in state:
            excluded = self.exclude[b].union(done) if done else self.exclude[b]
            allowed.update(_free_children(node, excluded))
            if node.title is not None and node.title not in excluded:
                if len(done) + 1 >= self.n_titles:
                    allowed.add(eos)
                else:
                    allowed.update(_free_children(self.trie.next, excluded | {node.title}))
        return sorted(allowed) or [eos]

    def __call__(self, input_ids, scores):
        import torch

        start = time.perf_counter()
        gen = input_ids[:, self.prompt_len:].tolist()
        mask = torch.full_like(scores, -math.inf)
        for r, toks in enumerate(gen):
            b = r // self.num_beams
            allowed = self._allowed(b, self._state(b, tuple(toks)))
            mask[r, allowed] = 0.0
        out = scores + mask
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def _free_children(node: _Node, excluded: frozenset[int] | set[int]) -> list[int]:
    """Child tokens of ``node`` under which some title is not excluded."""
    if node.tokens is None:
        node.tokens = sorted(node.children)
    if not excluded or not (excluded & node.ids):
        return list(node.tokens)
    return [t for t in node.tokens if len(node.children[t].ids) > len(excluded & node.children[t].ids)]


def _generate_kwargs(preset: str | Mapping[str, Any]) -> dict[str, Any]:
    """``generate`` arguments of a preset name (:data:`llmrec.decoding.PRESETS`) or a dict."""
    kwargs = dict(preset) if isinstance(preset, Mapping) else preset_kwargs(preset)
    for key in ("max_new_tokens", "min_new_tokens", "max_length", "min_length"):
        kwargs.pop(key, None)
    return kwargs


def constrained_generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    trie: CatalogTrie,
    preset: str | Mapping[str, Any] = "beam4",
    n_titles: int = 4,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    exclude: Sequence[Iterable[str]] | None = None,
    seed: int = 0,
    progress: bool = True,
    stats: dict[str, float] | None = None,
    head: str = "auto",
) -> list[str]:
    """Complete each prompt with ``n_titles`` catalog titles joined by the separator.

    ``exclude[i]``: titles prompt ``i`` may not produce (unknown titles are ignored).
    ``max_new_tokens`` defaults to a budget that always fits ``n_titles`` titles. The
    returned text is the decoded completion up to the last whole title (first_prefix
    stripped); it parses into exact catalog titles only. A ``stats`` dict, when given,
    receives ``seconds`` (all), ``constraint_seconds`` (inside the logits processor),
    ``steps`` (generation steps) and ``new_tokens`` (tokens kept in the completions).

    ``head``: ``"full"`` computes the logits of the whole vocabulary at each step;
    ``"catalog"`` only those of the tokens the trees use (and eos, :func:`llmrec.heads.
    restricted_head`), every other token ``-inf``. Greedy decoding picks the same tokens
    either way (the mask allows only catalog tokens); beam search ranks beams by
    log-probabilities, which ``"catalog"`` normalises over the catalog's tokens only: a
    different setting. ``"auto"``: ``"catalog"`` for greedy decoding, else ``"full"``.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import LogitsProcessorList

    if n_titles < 1:
        raise LlmrecError(f"n_titles must be at least 1, got {n_titles}")
    if exclude is not None and len(exclude) != len(prompts):
        raise LlmrecError(f"exclude has {len(exclude)} entries for {len(prompts)} prompts; give one per prompt")
    kwargs = _generate_kwargs(preset)
    num_beams = int(kwargs.get("num_beams", 1) or 1)
    if head not in CONSTRAINED_HEADS:
        raise LlmrecError(f"unknown head {head!r}; use one of {', '.join(CONSTRAINED_HEADS)}")
    greedy = num_beams == 1 and not kwargs.get("do_sample")
    restrict_to = catalog_token_ids(trie) if head == "catalog" or head == "auto" and greedy else None
    restrict = contextlib.ExitStack()
    budget = max_new_tokens or trie.max_tokens(n_titles)
    index = trie.index
    excl = [frozenset(index[t] for t in (exclude[i] if exclude else ()) if t in index)
            for i in range(len(prompts))]

    pad_side = tokenizer.padding_side
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    spent, steps, kept = 0.0, 0, 0
    try:
        if restrict_to is not None:  # strict: where the setting's beams depend on it
            restrict.enter_context(restricted_head(model, restrict_to, strict=not greedy))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        for n, batch in enumerate(tqdm(batches, desc="constrained generation", disable=not progress)):
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                            add_special_tokens=True).to(device)
            plen = enc["input_ids"].shape[1]
            proc = CatalogLogitsProcessor(trie, plen, n_titles, [excl[i] for i in batch], num_beams)
            torch.manual_seed(seed + n)
            with torch.inference_mode():
                seqs = model.generate(
                    **enc, **kwargs, max_new_tokens=budget,
                    logits_processor=LogitsProcessorList([proc]),
                    eos_token_id=trie.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                )
            spent += proc.seconds
            steps += proc.calls
            for row, i in enumerate(batch):
                toks = seqs[row, plen:].tolist()
                titles, end = trie.walk(toks, excl[i], n_titles)
                kept += end
                text = decode(tokenizer, toks[:end])
                canonical = trie.separator.join(trie.titles[t] for t in titles)
                text = text[len(trie.first_prefix):] if text.startswith(trie.first_prefix) else text
                # The tree only holds round-trip-checked paths, so this is a safety net.
                if text != canonical:
                    warnings.warn(f"constrained output decodes as {text!r}, not {canonical!r}; "
                                  "returning the catalog titles", stacklevel=2)
                out[i] = canonical
    finally:
        restrict.close()
        tokenizer.padding_side = pad_side
        model.train(was_training)
    if stats is not None:
        stats.update(seconds=time.perf_counter() - started, constraint_seconds=spent, steps=steps,
                     new_tokens=kept)
    return [o or "" for o in out]


@register("constrained")
class ConstrainedGeneration(Recommender):
    """An LLM that can only spell catalog titles: ``style`` prompts, decoding ``preset``, the
    catalog's prefix trees (``trie``). With ``exclude_inputs`` a record's input titles
    cannot be recommended.

    The titles are the completion split on the separator and map to their ids by exact
    lookup in ``catalog`` (``Catalog.exact``): no matcher is involved. Each prediction also
    says whether :func:`llmrec.parsing.parse_completion` reads the same titles
    (``parser_agrees``); the settings add the constraint's own cost.
    """

    def __init__(self, model: Any, tokenizer: Any, movies, catalog: Catalog, trie: CatalogTrie,
                 *, system: str, setting: str, style: str = "alpaca",
                 preset: str | Mapping[str, Any] = "beam4", batch_size: int = 8,
                 max_new_tokens: int | None = None, seed: int = 0, k: int = 4,
                 exclude_inputs: bool = True, progress: bool = True):
        self.model, self.tokenizer, self.movies, self.catalog, self.trie = (
            model, tokenizer, movies, catalog, trie)
        self.system, self.setting, self.style, self.preset = system, setting, style, preset
        self.batch_size, self.max_new_tokens, self.seed, self.k = batch_size, max_new_tokens, seed, k
        self.exclude_inputs, self.progress = exclude_inputs, progress
        self.stats: dict[str, float] = {}
        self.parser_agreement = float("nan")

    def predict(self, records) -> list[dict[str, Any]]:
        prompts = build_prompts(self.style, records, self.movies, tokenizer=self.tokenizer, n=self.k)
        names = title_map(self.movies)
        exclude = ([titles_for(r.input_ids, names) for r in records.itertuples()]
                   if self.exclude_inputs else None)
        self.stats = {}
        texts = constrained_generate(self.model, self.tokenizer, prompts, self.trie,
                                     preset=self.preset, n_titles=self.k,
                                     batch_size=self.batch_size,
                                     max_new_tokens=self.max_new_tokens, exclude=exclude,
                                     seed=self.seed, progress=self.progress, stats=self.stats)
        out = []
        for text in texts:
            titles = [t for t in text.split(self.trie.separator) if t] if text else []
            missing = [t for t in titles if t not in self.catalog.exact]
            if missing:
                raise LlmrecError(f"constrained title {missing[0]!r} is not in the catalog; build "
                                  "the trie from the same catalog (Catalog.titles)")
            ids = [self.catalog.ids[self.catalog.exact[t]] for t in titles]
            out.append({"predicted_ids": [i[0] if len(i) == 1 else list(i) for i in ids],
                        "titles": titles, "completion": text,
                        "parser_agrees": parse_completion(text, max_titles=self.k) == titles})
        self.parser_agreement = (sum(p["parser_agrees"] for p in out) / len(out)
                                 if out else float("nan"))
        self.n_predicted = len(out)
        return out

    def settings(self) -> dict[str, Any]:
        n, gen = getattr(self, "n_predicted", 0), self.stats.get("seconds", 0.0)
        return {
            "preset": self.preset if isinstance(self.preset, str) else "custom",
            "constrained": True,
            "exclude_inputs": self.exclude_inputs,
            "batch_size": self.batch_size,
            "max_new_tokens": self.max_new_tokens or self.trie.max_tokens(self.k),
            "generation_seconds": round(gen, 3),
            "constraint_seconds": round(self.stats.get("constraint_seconds", 0.0), 3),
            "new_tokens": int(self.stats.get("new_tokens", 0)),
            "prompts_per_second": round(n / gen, 4) if n and gen > 0 else float("nan"),
            "parser_agreement": self.parser_agreement,
        }
