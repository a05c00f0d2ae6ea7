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

A collaborative prior can be mixed in (D3, "Decoding Matters", Bao et al. 2024): a fitted
baseline's scores for a record's inputs become probabilities over the titles
(:func:`catalog_prior`), and each allowed token gains ``weight * (log M(next node) - log
M(node))``, M the prior mass of the titles under a node, so a finished title gains ``weight *
log p(title)``: the LLM times the prior to the power ``weight``. The weight is chosen on
validation records (:func:`choose_prior_weight`); weight 0 decodes exactly as without it.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from llmrec.data.formats import SEPARATOR, title_map, titles_for
from llmrec.errors import LlmrecError
from llmrec.evaluation.matching import Catalog
from llmrec.evaluation.spine import Task, evaluate
from llmrec.evaluation.weights import choose_weight
from llmrec.llm.decoding import preset_kwargs
from llmrec.llm.heads import catalog_token_ids, restricted_head
from llmrec.llm.parsing import parse_completion
from llmrec.llm.prompts import build_prompts
from llmrec.llm.tokens import continuation_ids, decode
from llmrec.recommenders.base import Recommender, register
from llmrec.side_by_side import follow_share

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

#: LM heads of :func:`constrained_generate` (see there).
CONSTRAINED_HEADS = ("auto", "full", "catalog")
#: Prior weights :func:`choose_prior_weight` tries by default (0: no prior).
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class _Node:
    __slots__ = ("children", "title", "ids", "tokens", "row", "child_rows")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.title: int | None = None  # index of the title that ends here
        self.ids: set[int] = set()  # indices of the titles at or below this node
        self.tokens: list[int] | None = None  # cached sorted child tokens
        self.row = -1  # the node's row in its tree's mass table (see _TreeIndex)
        self.child_rows: np.ndarray | None = None  # rows of the children, as ``tokens``


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
    _trees: tuple | None = field(default=None, init=False, repr=False, compare=False)

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

    def tree_index(self) -> _TreeIndex:
        """Both trees' nodes numbered, with their title incidence (built once, on first use)."""
        if self._trees is None:
            self._trees = _TreeIndex((self.first, self.next), len(self.titles))
        return self._trees

    def masses(self, title_probs: np.ndarray) -> np.ndarray:
        """Prior mass of every node of both trees, per record: ``title_probs`` is
        ``(records, titles)`` (or one row); returns ``(records, nodes)``, column ``node.row``
        for a node of either tree. A node's mass is the sum of the probabilities of the
        titles at or below it, each title once."""
        p = np.atleast_2d(np.asarray(title_probs, dtype=np.float64))
        if p.ndim != 2 or p.shape[1] != len(self.titles):
            raise LlmrecError(f"prior has shape {p.shape} for a tree of {len(self.titles)} titles; "
                              "build it with catalog_prior from the same trie")
        return self.tree_index().masses(p)

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


class _TreeIndex:
    """The nodes of the two trees numbered breadth first (``node.row``: the first tree, then
    the ``=>`` tree; a node's children on consecutive rows in token order), their node x
    title incidence matrix, so a record's node masses are one sparse product with its title
    probabilities (one pass over the nodes, vectorised), and each title's path in each tree
    (``paths[tree][title, depth]``: the row of its node at that depth, -1 past its end)."""

    def __init__(self, roots: Sequence[_Node], n_titles: int) -> None:
        nodes: list[_Node] = []
        depths: list[int] = []
        self.paths: list[np.ndarray] = []
        for root in roots:
            start = i = len(nodes)
            root.row = start
            nodes.append(root)
            depths.append(0)
            while i < len(nodes):  # nodes doubles as the breadth-first queue
                node = nodes[i]
                node.tokens = sorted(node.children)
                first = len(nodes)
                for t in node.tokens:
                    child = node.children[t]
                    child.row = len(nodes)
                    nodes.append(child)
                    depths.append(depths[i] + 1)
                node.child_rows = np.arange(first, len(nodes), dtype=np.int64)
                i += 1
            path = np.full((n_titles, max(depths[start:]) + 1), -1, dtype=np.int64)
            for node, h in zip(nodes[start:], depths[start:], strict=True):
                path[list(node.ids), h] = node.row
            self.paths.append(path)
        rows = np.repeat(np.arange(len(nodes)), [len(n.ids) for n in nodes])
        cols = np.fromiter((t for n in nodes for t in n.ids), dtype=np.int64, count=len(rows))
        self.nodes = nodes
        self.incidence = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                       shape=(len(nodes), n_titles))

    def masses(self, title_probs: np.ndarray) -> np.ndarray:
        return np.asarray((self.incidence @ title_probs.T).T)


def catalog_prior(baseline: Any, trie: CatalogTrie, catalog: Catalog,
                  input_lists: Sequence[Sequence[int]]) -> np.ndarray:
    """Each record's prior over the trie's titles from a fitted baseline: ``(records, titles)``,
    rows summing to 1.

    ``baseline``: a fitted :class:`llmrec.recommenders.baselines.Baseline` (``popularity``, ``item_knn``
    ...), scoring every catalog item for a record's input items. Its scores become item
    probabilities by a softmax at temperature 1 over the scores standardised across the
    record's eligible items (those whose title is in the tree, the record's inputs left
    out: they get 0). A softmax rather than normalised non-negative scores because
    popularity and item-kNN give most items a score of 0 (never liked in training, never
    liked with an input): normalising would give them no mass, and ``log 0`` would forbid
    them outright at any weight, whereas every eligible item keeps some mass under a
    softmax and the prior's weight alone sets how hard it pulls. Standardising makes the
    spread scale-free, so one weight grid serves both baselines. A title shared by several
    items gets the sum of their probabilities (so the title masses still sum to 1); a title of
    the tree none of whose items the baseline scores gets 0.
    """
    index = trie.index
    title_of = {int(i): index.get(t, -1) for t, ids in zip(catalog.titles, catalog.ids, strict=True)
                for i in ids}
    item_ids = np.asarray(baseline.item_ids)
    col_title = np.array([title_of.get(int(i), -1) for i in item_ids], dtype=np.int64)
    if (col_title < 0).all():
        raise LlmrecError("no item of the baseline has a title in the tree; build the trie from "
                          "the same catalog (Catalog.titles) as the baseline's movies")
    lists = [[int(i) for i in items] for items in input_lists]
    inputs = baseline._input_matrix(lists)
    scores = np.asarray(baseline.scores(inputs, lists), dtype=np.float64)
    eligible = np.broadcast_to(col_title >= 0, scores.shape).copy()
    eligible[inputs.nonzero()] = False
    out = np.zeros((len(lists), len(trie.titles)))
    for r in range(len(lists)):
        s = scores[r, eligible[r]]
        sd = s.std()
        z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
        p = np.exp(z - z.max())
        out[r] = np.bincount(col_title[eligible[r]], weights=p / p.sum(), minlength=len(trie.titles))
    return out


class _PriorBonus:
    """The prior's log-probability bonus of every allowed next token, one batch of ``generate``.

    ``M_R(node)``: the prior mass of the titles at or below a node, less those in ``R``, the
    titles a row may no longer produce (its excluded titles and the ones it has already
    generated). Inside a title a token's bonus is ``log M_R(child) - log M_R(node)``; the
    token that closes a title (the first token of ``=>`` with the next title, or the end
    token) gets ``log p(title) - log M_R(node)``, and a new title starts from the root of the
    ``=>`` tree with ``R`` grown by the title just closed. Summed over a title's tokens the
    bonus telescopes to ``log p(title) - log M_R(root)``: ``log p(title)`` for the first
    title when the prior gives the excluded titles no mass (as :func:`catalog_prior` does
    with a record's inputs), and ``log (p(title) / (1 - p(titles before it)))`` for a later
    one: over a whole list, the log-probability of drawing that list from the prior without
    replacement (Plackett-Luce). Where a token is read two ways at once (it both continues a
    title and starts ``=>``: alternatives of the decoding state) the masses of the ways add.
    Written here because no library injects a prefix-tree-structured prior into ``generate``.
    """

    def __init__(self, trie: CatalogTrie, title_probs: np.ndarray) -> None:
        self.trie = trie
        self.p = np.atleast_2d(np.asarray(title_probs, dtype=np.float64))
        self.mass = trie.masses(self.p)
        self.total = self.p.sum(axis=1)
        self.paths = trie.tree_index().paths

    def masses(self, b: int, node: _Node, tree: int, depth: int, removed: Sequence[int]
               ) -> tuple[float, np.ndarray]:
        """``M_R`` of ``node`` (at ``depth`` in tree ``tree``: 0 first, 1 ``=>``) and of its
        children (in token order), ``R`` = ``removed``."""
        m_node = float(self.mass[b, node.row])
        m_children = self.mass[b, node.child_rows]  # a copy (fancy indexing)
        if removed:
            rem = np.fromiter(removed, dtype=np.int64, count=len(removed))
            path = self.paths[tree]
            if depth < path.shape[1]:
                on = rem[path[rem, depth] == node.row]
                if len(on):
                    pr = self.p[b, on]
                    m_node -= float(pr.sum())
                    if depth + 1 < path.shape[1] and len(node.child_rows):
                        below = path[on, depth + 1]
                        ok = below >= 0
                        np.subtract.at(m_children, below[ok] - node.child_rows[0], pr[ok])
        return max(m_node, 0.0), np.maximum(m_children, 0.0)

    def __call__(self, b: int, state: tuple, exclude: frozenset[int], n_titles: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens, bonus)``: the tokens some alternative of ``state`` may take next (eos
        included), sorted, and each one's bonus (``-inf`` where the prior gives no mass)."""
        eos, sep = self.trie.eos_token_id, self.trie.next
        p = self.p[b]
        excl_mass = float(p[list(exclude)].sum()) if exclude else 0.0
        toks, vals, before = [], [], []
        with np.errstate(divide="ignore"):
            for node, done, end, pos in state:
                # log-probability of the done titles drawn in order, without replacement
                root, cond = self.total[b] - excl_mass, 0.0
                for d in done:
                    cond += math.log(p[d]) - math.log(root) if p[d] > 0 and root > 0 else -math.inf
                    root -= p[d]
                removed = tuple(exclude) + done
                tree, depth = (1, pos - end) if done else (0, pos)
                m_node, m_children = self.masses(b, node, tree, depth, removed)
                log_root = math.log(root) if root > 0 else -math.inf
                base = cond - log_root
                before.append(base + (math.log(m_node) if m_node > 0 else -math.inf))
                toks.append(np.asarray(node.tokens, dtype=np.int64))
                vals.append(base + np.log(m_children))
                title = node.title
                if title is not None and title not in exclude and title not in done:
                    closed = base + (math.log(p[title]) if p[title] > 0 else -math.inf)
                    if len(done) + 1 >= n_titles:
                        toks.append(np.array([eos], dtype=np.int64))
                        vals.append(np.array([closed]))
                    else:
                        root_next = root - p[title]
                        _, m_sep = self.masses(b, sep, 1, 0, removed + (title,))
                        log_next = math.log(root_next) if root_next > 0 else -math.inf
                        toks.append(np.asarray(sep.tokens, dtype=np.int64))
                        vals.append(closed + np.log(m_sep) - log_next)
        if not toks:
            return np.array([], dtype=np.int64), np.array([])
        tok, inv = np.unique(np.concatenate(toks), return_inverse=True)
        after = np.full(len(tok), -np.inf)
        np.logaddexp.at(after, inv, np.concatenate(vals))
        start = np.logaddexp.reduce(np.array(before))
        if not np.isfinite(start):  # a path the prior gives no mass (forced): no opinion
            return tok, np.zeros(len(tok))
        return tok, after - start


class CatalogLogitsProcessor:
    """Masks every token that does not continue a catalog title (one batch of ``generate``).

    ``prompt_len`` is the padded prompt length of the batch; ``exclude[b]`` holds the
    title indices batch row ``b`` may not produce; beam ``r`` belongs to row ``r // num_beams``.
    With ``prior`` (``(rows, titles)`` title probabilities, :func:`catalog_prior`) and
    ``prior_weight`` > 0, every allowed token also gets ``prior_weight`` times the prior's
    bonus (:class:`_PriorBonus`): a finished list gains ``prior_weight`` times its
    log-probability under the prior (the first title ``log p(title)``), the LLM times the
    prior to that power (a product of experts, D3's collaborative prior).
    """

    def __init__(self, trie: CatalogTrie, prompt_len: int, n_titles: int,
                 exclude: Sequence[frozenset[int]], num_beams: int = 1,
                 prior: np.ndarray | None = None, prior_weight: float = 0.0) -> None:
        self.trie = trie
        self.prior = _PriorBonus(trie, prior) if prior is not None and prior_weight != 0 else None
        self.prior_weight = float(prior_weight)
        self.prior_seconds = 0.0  # of which the prior's bonus
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
            state = self._state(b, tuple(toks))
            allowed = self._allowed(b, state)
            if self.prior is None:
                mask[r, allowed] = 0.0
            else:
                mask[r, allowed] = torch.as_tensor(self.bonus(b, state, allowed), dtype=mask.dtype,
                                                   device=mask.device)
        out = scores + mask
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out

    def bonus(self, b: int, state: tuple, allowed: Sequence[int]) -> np.ndarray:
        """``prior_weight`` times the prior's bonus of each ``allowed`` token of row ``b`` in
        ``state`` (0 without a prior; all 0 where the prior gives every allowed token no mass)."""
        if self.prior is None:
            return np.zeros(len(allowed))
        start = time.perf_counter()
        tok, bonus = self.prior(b, state, self.exclude[b], self.n_titles)
        out = np.zeros(len(allowed))
        if len(tok):  # tokens the prior does not know (the end token of a dead state) get 0
            want = np.asarray(allowed, dtype=np.int64)
            pos = np.minimum(np.searchsorted(tok, want), len(tok) - 1)
            found = tok[pos] == want
            out[found] = self.prior_weight * bonus[pos[found]]
        if not np.isfinite(out).any():
            out[:] = 0.0
        self.prior_seconds += time.perf_counter() - start
        return out


def _free_children(node: _Node, excluded: frozenset[int] | set[int]) -> list[int]:
    """Child tokens of ``node`` under which some title is not excluded."""
    if node.tokens is None:
        node.tokens = sorted(node.children)
    if not excluded or not (excluded & node.ids):
        return list(node.tokens)
    return [t for t in node.tokens if len(node.children[t].ids) > len(excluded & node.children[t].ids)]


def _generate_kwargs(preset: str | Mapping[str, Any]) -> dict[str, Any]:
    """``generate`` arguments of a preset name (:data:`llmrec.llm.decoding.PRESETS`) or a dict."""
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
    prior: np.ndarray | None = None,
    prior_weight: float = 0.0,
) -> list[str]:
    """Complete each prompt with ``n_titles`` catalog titles joined by the separator.

    ``exclude[i]``: titles prompt ``i`` may not produce (unknown titles are ignored).
    ``max_new_tokens`` defaults to a budget that always fits ``n_titles`` titles. The
    returned text is the decoded completion up to the last whole title (first_prefix
    stripped); it parses into exact catalog titles only. A ``stats`` dict, when given,
    receives ``seconds`` (all), ``constraint_seconds`` (inside the logits processor),
    ``steps`` (generation steps) and ``new_tokens`` (tokens kept in the completions).

    ``head``: ``"full"`` computes the logits of the whole vocabulary at each step;
    ``"catalog"`` only those of the tokens the trees use (and eos, :func:`llmrec.llm.heads.
    restricted_head`), every other token ``-inf``. Greedy decoding picks the same tokens
    either way (the mask allows only catalog tokens); beam search ranks beams by
    log-probabilities, which ``"catalog"`` normalises over the catalog's tokens only: a
    different setting. ``"auto"``: ``"catalog"`` for greedy decoding, else ``"full"``.

    ``prior``: a collaborative prior, ``(prompts, titles)`` probabilities over the trie's
    titles per prompt (:func:`catalog_prior`); with ``prior_weight`` > 0 each allowed token's
    log-probability gains ``prior_weight * (log M(next node) - log M(node))``, M a node's
    prior mass, so a whole list gains ``prior_weight`` times its log-probability under the
    prior (D3, Bao et al. 2024). ``prior_weight`` 0 decodes exactly as without a prior.
    ``stats`` then also receives ``prior_seconds`` (within ``constraint_seconds``).
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import LogitsProcessorList

    if n_titles < 1:
        raise LlmrecError(f"n_titles must be at least 1, got {n_titles}")
    if exclude is not None and len(exclude) != len(prompts):
        raise LlmrecError(f"exclude has {len(exclude)} entries for {len(prompts)} prompts; give one per prompt")
    if not (math.isfinite(prior_weight) and prior_weight >= 0):
        raise LlmrecError(f"prior_weight must be a finite number >= 0, got {prior_weight}")
    if prior is not None:
        prior = np.atleast_2d(np.asarray(prior, dtype=np.float64))
        if prior.shape != (len(prompts), len(trie.titles)):
            raise LlmrecError(f"prior has shape {prior.shape}; give one row of {len(trie.titles)} "
                              f"title probabilities per prompt ({len(prompts)}), from catalog_prior")
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
    spent, prior_spent, steps, kept = 0.0, 0.0, 0, 0
    try:
        if restrict_to is not None:  # strict: where the setting's beams depend on it
            restrict.enter_context(restricted_head(model, restrict_to, strict=not greedy))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        for n, batch in enumerate(tqdm(batches, desc="constrained generation", disable=not progress)):
            follow_share()  # a chain left alone takes the idle core (llmrec.side_by_side)
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                            add_special_tokens=True).to(device)
            plen = enc["input_ids"].shape[1]
            proc = CatalogLogitsProcessor(trie, plen, n_titles, [excl[i] for i in batch], num_beams,
                                          prior=None if prior is None else prior[batch],
                                          prior_weight=prior_weight)
            torch.manual_seed(seed + n)
            with torch.inference_mode():
                seqs = model.generate(
                    **enc, **kwargs, max_new_tokens=budget,
                    logits_processor=LogitsProcessorList([proc]),
                    eos_token_id=trie.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                )
            spent += proc.seconds
            prior_spent += proc.prior_seconds
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
                     new_tokens=kept, prior_seconds=prior_spent)
    return [o or "" for o in out]


@register("constrained")
class ConstrainedGeneration(Recommender):
    """An LLM that can only spell catalog titles: ``style`` prompts, decoding ``preset``, the
    catalog's prefix trees (``trie``). With ``exclude_inputs`` a record's input titles
    cannot be recommended.

    The titles are the completion split on the separator and map to their ids by exact
    lookup in ``catalog`` (``Catalog.exact``): no matcher is involved. Each prediction also
    says whether :func:`llmrec.llm.parsing.parse_completion` reads the same titles
    (``parser_agrees``); the settings add the constraint's own cost.

    ``prior``: a fitted baseline (:mod:`llmrec.recommenders.baselines`; ``popularity`` or ``item_knn``)
    whose per-record item scores become a prior over the titles (:func:`catalog_prior`),
    injected into the decoding with ``prior_weight`` (:func:`constrained_generate`). The
    setting then ends in ``+<baseline>-prior`` (``lora/constrained-greedy+item_knn-prior``);
    :meth:`settings` records the prior's name and weight. Choose the weight on validation
    records with :func:`choose_prior_weight`. The prior gives a record's inputs no mass, so
    at a weight above 0 they are never recommended, even without ``exclude_inputs``.
    """

    def __init__(self, model: Any, tokenizer: Any, movies, catalog: Catalog, trie: CatalogTrie,
                 *, system: str, setting: str, style: str = "alpaca",
                 preset: str | Mapping[str, Any] = "beam4", batch_size: int = 8,
                 max_new_tokens: int | None = None, seed: int = 0, k: int = 4,
                 exclude_inputs: bool = True, progress: bool = True,
                 prior: Any = None, prior_weight: float = 0.0):
        if not (math.isfinite(prior_weight) and prior_weight >= 0):
            raise LlmrecError(f"prior_weight must be a finite number >= 0, got {prior_weight}")
        if prior is None and prior_weight:
            raise LlmrecError("prior_weight is set but no prior is given; pass a fitted baseline "
                              "as prior (e.g. fit_baseline('item_knn', ...))")
        self.model, self.tokenizer, self.movies, self.catalog, self.trie = (
            model, tokenizer, movies, catalog, trie)
        self.system, self.setting, self.style, self.preset = system, setting, style, preset
        self.batch_size, self.max_new_tokens, self.seed, self.k = batch_size, max_new_tokens, seed, k
        self.exclude_inputs, self.progress = exclude_inputs, progress
        self.prior, self.prior_weight = prior, float(prior_weight)
        if prior is not None:
            self.setting = f"{setting}+{prior_name(prior)}-prior"
        self.stats: dict[str, float] = {}
        self.parser_agreement = float("nan")

    def predict(self, records) -> list[dict[str, Any]]:
        prompts = build_prompts(self.style, records, self.movies, tokenizer=self.tokenizer, n=self.k)
        names = title_map(self.movies)
        exclude = ([titles_for(r.input_ids, names) for r in records.itertuples()]
                   if self.exclude_inputs else None)
        self.stats = {}
        probs = (catalog_prior(self.prior, self.trie, self.catalog, list(records["input_ids"]))
                 if self.prior is not None and self.prior_weight else None)
        texts = constrained_generate(self.model, self.tokenizer, prompts, self.trie,
                                     preset=self.preset, n_titles=self.k,
                                     batch_size=self.batch_size,
                                     max_new_tokens=self.max_new_tokens, exclude=exclude,
                                     seed=self.seed, progress=self.progress, stats=self.stats,
                                     prior=probs, prior_weight=self.prior_weight)
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
            "prior": prior_name(self.prior) if self.prior is not None else None,
            "prior_weight": self.prior_weight,
            "prior_seconds": round(self.stats.get("prior_seconds", 0.0), 3),
        }


def prior_name(prior: Any) -> str:
    """A prior's name in a setting: the baseline's name."""
    return str(getattr(prior, "name", None) or getattr(prior, "kind", None) or type(prior).__name__)


def choose_prior_weight(build_system: Callable[[float], Recommender], valid_records,
                        task: Task, grid: Sequence[float] = PRIOR_WEIGHTS
                        ) -> tuple[float, pd.DataFrame]:
    """The prior weight with the best validation MAP@K, and the table of every weight's.

    ``build_system(weight)`` returns the constrained recommender with that prior weight
    (e.g. a :class:`ConstrainedGeneration` with ``prior_weight=weight``); each is scored on
    ``valid_records`` through :func:`llmrec.evaluation.spine.evaluate` (no files written). Ties
    go to the smaller weight (:func:`llmrec.evaluation.weights.choose_weight`); with 0 in the grid
    (the default) the chosen weight is never worse on validation than plain constrained
    decoding. The frame has ``weight``, ``map_at_K`` and the run's ``seconds``.
    """
    seconds: dict[float, float] = {}

    def score_at(weight: float) -> float:
        _, metrics = evaluate(build_system(weight), valid_records, task)
        seconds[weight] = metrics["seconds"]
        return float(metrics[f"map_at_{task.k}"])

    best, frame = choose_weight(score_at, grid)
    frame = frame.rename(columns={"score": f"map_at_{task.k}"})
    frame["seconds"] = frame["weight"].map(seconds)
    return best, frame
