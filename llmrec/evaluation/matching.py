"""From a generated title to catalog item ids: four matchers, each with a threshold.

PROTOCOL.md section 3. A :class:`Catalog` holds the distinct display titles
(``Title (Year)``) of a movies frame, each with the set of item ids sharing it (18 titles
appear twice in ml-100k). A matcher finds, for each generated title, the best catalog title
and a similarity in [0, 1]; it returns that title's ids when the similarity reaches the
matcher's threshold, and ``None`` (a *hallucinated* title: a miss that keeps its rank)
otherwise. It never forces an invented title onto the nearest real movie.

=================  ==========================================================  ===============
matcher            best catalog title                                          similarity
=================  ==========================================================  ===============
``common_chars``   most characters in common (multiset intersection), first    common / len(q)
                   in catalog order on ties: the blog's first idea, kept to
                   show its bias toward long titles
``levenshtein``    smallest edit distance (jellyfish / rapidfuzz), raw strings  1 - d / max len
``normalized``     smallest edit distance after case-folding, accents and       1 - d / max len
                   punctuation stripped, aliases in brackets dropped, a
                   trailing article (", The") moved to the front; the year is
                   optional: it only breaks ties (same or nearest year first)
``embedding``      highest cosine of all-MiniLM-L6-v2 sentence embeddings      cosine
=================  ==========================================================  ===============

The bulk path (:meth:`Matcher.match`) deduplicates titles, answers exact display titles from
a dict (where that cannot change the answer), and computes the rest in chunks with rapidfuzz's
``process.cdist`` (the same unit-cost Levenshtein distance as jellyfish), a matrix product of
character-count indicators, or an embedding matrix product. :meth:`Matcher.match_reference`
is the plain one-title-against-every-title loop with jellyfish; the tests check they agree.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.artifacts import atomic_write_bytes
from llmrec.data.assets import minilm_dir, notice
from llmrec.data.formats import split_year
from llmrec.data.movielens import load_movielens
from llmrec.errors import LlmrecError
from llmrec.paths import cache_dir

MATCHERS = ["common_chars", "levenshtein", "normalized", "embedding"]

#: Thresholds chosen with :func:`choose_threshold` on the validation half of the labelled
#: messy titles (``llmrec/evaluation/data_files/messy_titles.json``; notebook 05 shows the choice).
DEFAULT_THRESHOLDS = {"common_chars": 0.925, "levenshtein": 0.7, "normalized": 0.85,
                      "embedding": 0.775}

_ALIAS = re.compile(r"\s*\([^)]*\)")
_ARTICLES = ("the", "a", "an", "les", "la", "le", "l'", "il", "el", "das", "der", "die", "los",
             "las", "lo", "i", "gli", "det", "den")
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.*),\s*(?P<art>" + "|".join(map(re.escape, _ARTICLES))
                               + r")$")
_NON_ALNUM = re.compile(r"[^\w]+")
_CHUNK_CELLS = 8_000_000  # distance-matrix cells computed at once (32 MB of int32)


# ----------------------------------------------------------------------------- normalising
def normalize_title(title: str) -> str:
    """Case-folded, accents and punctuation stripped, year and bracketed aliases dropped,
    trailing article moved to the front: ``"Usual Suspects, The (1995)"`` -> ``"the usual suspects"``."""
    text, _ = split_year(title)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    without_alias = _ALIAS.sub("", text).strip()
    text = without_alias or text
    m = _TRAILING_ARTICLE.match(text)
    if m:
        art = m.group("art")
        text = f"{art}{'' if art.endswith(chr(39)) else ' '}{m.group('rest')}"
    return " ".join(_NON_ALNUM.sub(" ", text).replace("_", " ").split())


_BARE_YEAR = re.compile(r"^(?P<title>.+\S)\s+(?P<year>(18[89]|19\d|20[0-4])\d)$")


def query_variants(title: str) -> list[tuple[str, int | None]]:
    """The normalised forms of a generated title tried by the ``normalized`` matcher, first
    the plain one: ``(normalised text, year or None)``. When the year is not in brackets
    (``"usual suspects the 1995"``) a form without the trailing number is tried too, and a
    trailing "the" that lost its comma is moved to the front."""
    norm, year = normalize_title(title), split_year(title)[1]
    forms = [(norm, year)]
    if year is None:
        m = _BARE_YEAR.match(norm)
        if m:
            forms.append((m.group("title"), int(m.group("year"))))
    for text, y in list(forms):
        if text.endswith(" the"):
            forms.append(("the " + text[:-4], y))
    return forms


# ----------------------------------------------------------------------------- catalog
@dataclass
class Catalog:
    """The distinct display titles of a movies frame, with their ids and normalised forms."""

    titles: list[str]
    ids: list[list[int]]
    years: list[int | None]
    norm: list[str]
    exact: dict[str, int] = field(repr=False)
    item_ids: frozenset[int] = field(repr=False)

    @classmethod
    def from_movies(cls, movies: pd.DataFrame) -> Catalog:
        """From a movies frame (``item_id``, ``display_title``; ``year`` optional).

        Titles are kept in order of their first item id; MovieLens' ``unknown`` placeholder
        item is left out (no generated title should ever match it)."""
        if not {"item_id", "display_title"} <= set(movies.columns):
            raise LlmrecError("the movies frame needs item_id and display_title columns; "
                              "load it with llmrec.data.movielens.load_movielens")
        frame = movies.sort_values("item_id", kind="stable")
        by_title: dict[str, list[int]] = {}
        for item, title in zip(frame["item_id"].tolist(), frame["display_title"].tolist(),
                               strict=True):
            title = str(title).strip()
            if not title or title.casefold() == "unknown":
                continue
            by_title.setdefault(title, []).append(int(item))
        if not by_title:
            raise LlmrecError("the movies frame has no titles to match against")
        titles = list(by_title)
        return cls(
            titles=titles,
            ids=[by_title[t] for t in titles],
            years=[split_year(t)[1] for t in titles],
            norm=[normalize_title(t) for t in titles],
            exact={t: i for i, t in enumerate(titles)},
            item_ids=frozenset(i for ids in by_title.values() for i in ids),
        )

    @classmethod
    def from_titles(cls, titles: dict[int, str]) -> Catalog:
        """From ``item_id -> display title``."""
        return cls.from_movies(pd.DataFrame({"item_id": list(titles),
                                             "display_title": list(titles.values())}))

    def __len__(self) -> int:
        """Number of items (not of distinct titles)."""
        return len(self.item_ids)

    def key(self) -> str:
        """A short hash of the titles, naming cached embeddings."""
        return hashlib.sha1("\n".join(self.titles).encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------- matchers
class Matcher:
    """Base class: ``best`` finds each title's best catalog title and similarity."""

    name = ""
    #: the exact display title is always the unique best: the dict shortcut is safe
    exact_shortcut = True

    def __init__(self, catalog: Catalog, threshold: float | None = None):
        self.catalog = catalog
        self.threshold = DEFAULT_THRESHOLDS[self.name] if threshold is None else float(threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold}, titles={len(self.catalog.titles)})"

    # -- to implement
    def _best_bulk(self, queries: list[str], prune_below: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Best index and similarity per query. With ``prune_below`` a similarity under it may
        be reported as 0 (work is skipped for titles that cannot reach it)."""
        raise NotImplementedError

    def _best_one_reference(self, query: str) -> tuple[int, float]:
        raise NotImplementedError

    # -- shared
    def best(self, titles: Sequence[str], prune_below: float | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Per title: index into ``catalog.titles`` (-1 for an empty title) and similarity.

        With ``prune_below`` (what :meth:`match` passes: the threshold) a title whose best
        similarity is under it may come back with similarity 0: the answer to "match or not"
        is unchanged, and the edit-distance matchers skip most of the catalog."""
        clean = [str(t).strip() for t in titles]
        uniq = list(dict.fromkeys(t for t in clean if t))
        found: dict[str, tuple[int, float]] = {}
        rest = []
        for t in uniq:
            if self.exact_shortcut and t in self.catalog.exact:
                found[t] = (self.catalog.exact[t], 1.0)
            else:
                rest.append(t)
        if rest:
            idx, sim = self._best_bulk(rest, prune_below)
            found.update({t: (int(i), float(s)) for t, i, s in zip(rest, idx, sim, strict=True)})
        out_i = np.array([found[t][0] if t else -1 for t in clean], dtype=np.int64)
        out_s = np.array([found[t][1] if t else 0.0 for t in clean], dtype=float)
        return out_i, out_s

    def _decide(self, idx: np.ndarray, sim: np.ndarray, threshold: float | None = None):
        thr = self.threshold if threshold is None else threshold
        return [list(self.catalog.ids[i]) if i >= 0 and s >= thr - 1e-12 else None
                for i, s in zip(idx.tolist(), sim.tolist(), strict=True)]

    def match(self, titles: Sequence[str]) -> list[list[int] | None]:
        """Per title, the matched catalog title's item ids, or None (no title close enough)."""
        return self._decide(*self.best(titles, prune_below=self.threshold))

    def match_reference(self, titles: Sequence[str]) -> list[list[int] | None]:
        """The same answer by the plain loop: every title against every catalog title."""
        idx, sim = [], []
        for t in titles:
            t = str(t).strip()
            i, s = self._best_one_reference(t) if t else (-1, 0.0)
            idx.append(i)
            sim.append(s)
        return self._decide(np.array(idx, dtype=np.int64), np.array(sim, dtype=float))


def max_distance(length: int, threshold: float | None) -> int | None:
    """The largest edit distance that can still reach ``threshold`` for a string of ``length``.

    Similarity is 1 - d / max(len(a), len(b)) and len(b) <= len(a) + d, so
    1 - d / max >= t implies d <= (1 - t) * len(a) / t. None: no bound (t <= 0)."""
    if threshold is None or threshold <= 0:
        return None
    return int(np.floor((1 - threshold + 1e-12) * length / (threshold - 1e-12) + 1e-9))


def nearest(queries: Sequence[str], choices: Sequence[str],
            cutoffs: Sequence[int | None] | None = None) -> list[tuple[int, np.ndarray]]:
    """Per query: the smallest edit distance to ``choices`` and the indices (ascending) of
    every choice at that distance.

    With ``cutoffs`` (one per query, None for none) a query is compared only with choices
    whose length differs by at most its cutoff, with rapidfuzz's ``score_cutoff``; when no
    choice is within the cutoff the answer is ``(cutoff + 1, [])``. Exact otherwise: a choice
    outside the length window is more than the cutoff away."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    lens = np.array([len(c) for c in choices])
    order = np.argsort(lens, kind="stable")
    sorted_lens = lens[order]
    cutoffs = list(cutoffs) if cutoffs is not None else [None] * len(queries)
    groups: dict[tuple[int, int | None], list[int]] = {}
    for q, (text, c) in enumerate(zip(queries, cutoffs, strict=True)):
        groups.setdefault((len(text) if c is not None else -1, c), []).append(q)
    out: list[tuple[int, np.ndarray]] = [(0, np.empty(0, dtype=np.int64))] * len(queries)
    for (length, c), members in groups.items():
        if c is None:
            cand = np.arange(len(choices))
        else:
            lo = np.searchsorted(sorted_lens, length - c, side="left")
            hi = np.searchsorted(sorted_lens, length + c, side="right")
            cand = np.sort(order[lo:hi])
        if len(cand) == 0:
            for q in members:
                out[q] = (c + 1, np.empty(0, dtype=np.int64))
            continue
        cand_texts = [choices[i] for i in cand]
        step = max(1, _CHUNK_CELLS // len(cand))
        for a in range(0, len(members), step):
            part = members[a:a + step]
            d = process.cdist([queries[q] for q in part], cand_texts, scorer=Levenshtein.distance,
                              dtype=np.int32, workers=-1, score_cutoff=c)
            mins = d.min(axis=1)
            for r, q in enumerate(part):
                m = int(mins[r])
                if c is not None and m > c:
                    out[q] = (c + 1, np.empty(0, dtype=np.int64))
                else:
                    out[q] = (m, cand[d[r] == m])
    return out


class CommonChars(Matcher):
    """The blog's first idea: the catalog title sharing most characters (with multiplicity).

    Similarity = shared characters / len(query). A long catalog title holds every character
    of a short query, so it scores 1 as well; the first such title in catalog order wins.
    The exact shortcut is off: the bug is kept as the blog had it."""

    name = "common_chars"
    exact_shortcut = False

    def __init__(self, catalog: Catalog, threshold: float | None = None):
        super().__init__(catalog, threshold)
        counts = [Counter(t) for t in catalog.titles]
        max_count: dict[str, int] = {}
        for c in counts:
            for ch, n in c.items():
                max_count[ch] = max(max_count.get(ch, 0), n)
        # feature (ch, j) is "ch occurs at least j times": the dot product of two such
        # indicator vectors is exactly the multiset intersection size
        self._offset: dict[str, int] = {}
        at = 0
        for ch in sorted(max_count):
            self._offset[ch] = at
            at += max_count[ch]
        self._max = max_count
        self._n_features = at
        self._matrix = self._features(catalog.titles)

    def _features(self, texts: list[str]) -> np.ndarray:
        m = np.zeros((len(texts), self._n_features), dtype=np.float32)
        for r, t in enumerate(texts):
            for ch, n in Counter(t).items():
                if ch in self._offset:
                    o = self._offset[ch]
                    m[r, o:o + min(n, self._max[ch])] = 1.0
        return m

    def _best_bulk(self, queries, prune_below=None):
        idx = np.empty(len(queries), dtype=np.int64)
        sim = np.empty(len(queries), dtype=float)
        step = max(1, _CHUNK_CELLS // len(self.catalog.titles))
        for a in range(0, len(queries), step):
            part = queries[a:a + step]
            common = self._features(part) @ self._matrix.T
            best = common.argmax(axis=1)
            idx[a:a + len(part)] = best
            lens = np.array([len(q) for q in part], dtype=float)
            sim[a:a + len(part)] = common[np.arange(len(part)), best] / lens
        return idx, sim

    def _best_one_reference(self, query):
        q = Counter(query)
        best, best_n = 0, -1
        for i, t in enumerate(self.catalog.titles):
            n = sum((q & Counter(t)).values())
            if n > best_n:
                best, best_n = i, n
        return best, best_n / len(query)


class LevenshteinMatcher(Matcher):
    """The blog's fix: smallest edit distance to the raw display titles (first on ties)."""

    name = "levenshtein"

    def _best_bulk(self, queries, prune_below=None):
        titles = self.catalog.titles
        cutoffs = [max_distance(len(q), prune_below) for q in queries]
        idx = np.zeros(len(queries), dtype=np.int64)
        sim = np.zeros(len(queries), dtype=float)
        for r, (d, cands) in enumerate(nearest(queries, titles, cutoffs)):
            if len(cands):  # empty: nothing within the cutoff, similarity stays 0
                i = int(cands[0])  # the first in catalog order, as the reference
                idx[r], sim[r] = i, 1.0 - d / max(len(queries[r]), len(titles[i]))
        return idx, sim

    def _best_one_reference(self, query):
        import jellyfish

        best, best_d = 0, None
        for i, t in enumerate(self.catalog.titles):
            d = jellyfish.levenshtein_distance(query, t)
            if best_d is None or d < best_d:
                best, best_d = i, d
        return best, 1.0 - best_d / max(len(query), len(self.catalog.titles[best]))


class NormalizedMatcher(Matcher):
    """Edit distance between normalised titles (:func:`normalize_title`); year breaks ties.

    A query is also tried in the forms a stripped title takes (:func:`query_variants`: a bare
    trailing year, a trailing "the" without its comma); the closest form wins."""

    name = "normalized"

    def _pick(self, candidates: np.ndarray, year: int | None) -> int:
        if year is None or len(candidates) == 1:
            return int(candidates[0])
        years = self.catalog.years
        gap = [abs(years[c] - year) if years[c] is not None else 10_000 for c in candidates]
        return int(candidates[int(np.argmin(gap))])

    def _sim(self, qn: str, i: int, d: int) -> float:
        longest = max(len(qn), len(self.catalog.norm[i]))
        return 1.0 - d / longest if longest else 0.0

    def _best_bulk(self, queries, prune_below=None):
        flat: list[tuple[int, str, int | None]] = [
            (q, norm, year) for q, text in enumerate(queries) for norm, year in query_variants(text)]
        # one cutoff per query (the largest of its forms'), so that forms compare fairly
        per_query: dict[int, int | None] = {}
        for q, norm, _ in flat:
            c = max_distance(len(norm), prune_below)
            per_query[q] = None if c is None else max(c, per_query.get(q) or 0)
        found = nearest([f[1] for f in flat], self.catalog.norm, [per_query[f[0]] for f in flat])
        best: dict[int, tuple[int, int, float]] = {}  # query -> (distance, index, similarity)
        for (q, norm, year), (d, cands) in zip(flat, found, strict=True):
            if q in best and best[q][0] <= d:
                continue  # an earlier form is at least as close
            if len(cands):
                i = self._pick(cands, year)
                best[q] = (d, i, self._sim(norm, i, d))
            else:
                best[q] = (d, 0, 0.0)  # nothing within the cutoff
        idx = np.array([best[q][1] for q in range(len(queries))], dtype=np.int64)
        sim = np.array([best[q][2] for q in range(len(queries))], dtype=float)
        return idx, sim

    def _best_one_reference(self, query):
        import jellyfish

        result = None
        for qn, year in query_variants(query):
            best_d, cands = None, []
            for i, cn in enumerate(self.catalog.norm):
                d = jellyfish.levenshtein_distance(qn, cn)
                if best_d is None or d < best_d:
                    best_d, cands = d, [i]
                elif d == best_d:
                    cands.append(i)
            if result is None or best_d < result[0]:
                i = self._pick(np.array(cands), year)
                result = (best_d, i, self._sim(qn, i, best_d))
        return result[1], result[2]


class EmbeddingMatcher(Matcher):
    """Cosine similarity of all-MiniLM-L6-v2 embeddings of the display titles."""

    name = "embedding"

    def __init__(self, catalog: Catalog, threshold: float | None = None):
        super().__init__(catalog, threshold)
        self._matrix = embed_texts(catalog.titles, cache=True)

    def _best_bulk(self, queries, prune_below=None):
        q = embed_texts(queries, cache=False)
        idx = np.empty(len(queries), dtype=np.int64)
        sim = np.empty(len(queries), dtype=float)
        step = max(1, _CHUNK_CELLS // len(self.catalog.titles))
        for a in range(0, len(queries), step):
            cos = q[a:a + step] @ self._matrix.T
            best = cos.argmax(axis=1)
            idx[a:a + len(best)] = best
            sim[a:a + len(best)] = cos[np.arange(len(best)), best]
        return idx, np.clip(sim, -1.0, 1.0)

    def _best_one_reference(self, query):
        q = embed_texts([query], cache=False)[0]
        cos = [float(np.dot(q, row)) for row in self._matrix]
        best = int(np.argmax(cos))
        return best, min(1.0, cos[best])


_CLASSES = {c.name: c for c in (CommonChars, LevenshteinMatcher, NormalizedMatcher,
                                 EmbeddingMatcher)}


def get_matcher(name: str, catalog: Catalog, threshold: float | None = None) -> Matcher:
    """The matcher ``name`` (one of :data:`MATCHERS`) over ``catalog``."""
    if name not in _CLASSES:
        raise LlmrecError(f"unknown matcher {name!r}; use one of {', '.join(MATCHERS)}")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise LlmrecError(f"threshold {threshold} is outside [0, 1]; similarities are in [0, 1]")
    return _CLASSES[name](catalog, threshold)


# ----------------------------------------------------------------------------- embeddings
@lru_cache(maxsize=1)
def _sentence_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # sentence-transformers loads torch and transformers: only when embeddings are needed
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir()), device="cpu")


def _cached_embeddings(path: Path, n: int) -> np.ndarray | None:
    """The matrix cached at ``path`` when it is whole, else None (with a notice when a file
    was there). Whole: its bytes have the sha256 in ``path.sha256`` (written beside it), or,
    for a file cached before those were written, it reads as ``n`` finite unit rows of 384
    float32 (then its sha256 is recorded)."""
    if not path.is_file():
        return None
    sidecar = path.with_name(path.name + ".sha256")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    recorded = sidecar.read_text().strip() if sidecar.is_file() else None
    why = None
    if recorded is not None and recorded != digest:
        why = "differs from the sha256 recorded when it was written"
    else:
        try:
            emb = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            emb, why = None, f"cannot be read ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
        if emb is not None and (emb.dtype != np.float32 or emb.shape != (n, 384)
                                or not np.isfinite(emb).all()
                                or not np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)):
            why = f"is not {n} unit rows of 384 float32"
        if why is None:
            if recorded is None:
                atomic_write_bytes(sidecar, (digest + "\n").encode())
            return emb
    notice(f"{path} {why}; embedding the titles again")
    return None


def embed_texts(texts: Sequence[str], cache: bool = True, batch_size: int = 128) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings (float32, 384 columns), one row per text.

    With ``cache`` the matrix is kept in ``<cache>/embeddings/`` under a hash of the texts,
    its sha256 beside it (``.npy.sha256``); a cached matrix is used only when its bytes have
    that sha256 (hashed at every use: 2.6 MB for ml-100k's titles, a few ms), else it is
    embedded again and replaced, with one notice line. A matrix cached before sha256s were
    recorded is used when it reads as one finite unit row of 384 float32 per text, and its
    sha256 is recorded then."""
    texts = [str(t) for t in texts]
    path: Path | None = None
    if cache:
        key = hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()[:20]
        path = cache_dir() / "embeddings" / f"minilm-{key}.npy"
        cached = _cached_embeddings(path, len(texts))
        if cached is not None:
            return cached
    model = _sentence_model()
    emb = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=len(texts) > 2000)
    emb = np.asarray(emb, dtype=np.float32)
    if path is not None:
        buf = io.BytesIO()
        np.save(buf, emb)
        data = buf.getvalue()
        atomic_write_bytes(path, data)
        atomic_write_bytes(path.with_name(path.name + ".sha256"),
                           (hashlib.sha256(data).hexdigest() + "\n").encode())
    return emb


# ----------------------------------------------------------------------------- thresholds
def outcomes(pred: list[list[int] | None], truth: Sequence[Sequence[int] | None]) -> pd.DataFrame:
    """Per title: ``correct`` (right ids, or no match for a film outside the catalog),
    ``false_match`` (ids returned but wrong) and ``missed`` (no match for a catalog film)."""
    rows = []
    for p, t in zip(pred, truth, strict=True):
        t = None if t is None or len(t) == 0 else set(int(i) for i in t)
        correct = (p is None and t is None) or (p is not None and t is not None and bool(set(p) & t))
        rows.append({"correct": correct, "false_match": p is not None and not correct,
                     "missed": p is None and t is not None})
    return pd.DataFrame(rows)


def matcher_accuracy(matcher: Matcher, titles: Sequence[str],
                     truth: Sequence[Sequence[int] | None]) -> dict[str, float]:
    """``accuracy`` (right ids, or no match for a film outside the catalog), ``false_match_rate``
    (ids returned but wrong, including any match for a film not in the catalog) and
    ``miss_rate`` (no match for a film that is in the catalog), at the matcher's threshold."""
    o = outcomes(matcher.match(titles), truth)
    return {"n": len(o), "accuracy": float(o["correct"].mean()),
            "false_match_rate": float(o["false_match"].mean()),
            "miss_rate": float(o["missed"].mean())}


def choose_threshold(
    matcher: Matcher,
    titles: Sequence[str],
    truth: Sequence[Sequence[int] | None],
    candidates: Sequence[float] | None = None,
) -> tuple[float, pd.DataFrame]:
    """Pick the threshold with the best accuracy on labelled (validation) titles.

    ``truth`` gives each title's right ids, or None for a film not in the catalog. Returns
    the chosen threshold (the highest among equally accurate ones: fewer false matches) and
    the table of candidates (``threshold, accuracy, false_match_rate, miss_rate, chosen``).
    """
    if len(titles) != len(truth) or not titles:
        raise LlmrecError("choose_threshold needs as many labels as titles, and at least one")
    cands = (np.round(np.arange(0.30, 1.0001, 0.025), 3) if candidates is None
             else np.asarray(candidates, dtype=float))
    idx, sim = matcher.best(titles)
    table = []
    for thr in cands:
        o = outcomes(matcher._decide(idx, sim, float(thr)), truth)
        table.append({"threshold": float(thr), "accuracy": float(o["correct"].mean()),
                      "false_match_rate": float(o["false_match"].mean()),
                      "miss_rate": float(o["missed"].mean())})
    df = pd.DataFrame(table)
    best = df["accuracy"].max()
    chosen = float(df.loc[df["accuracy"] == best, "threshold"].max())
    df["chosen"] = df["threshold"] == chosen
    return chosen, df


def load_messy_titles() -> pd.DataFrame:
    """The labelled messy titles shipped with the package (``data_files/messy_titles.json``):
    ``title, kind, truth`` where ``truth`` is the ml-100k display title meant, or None for a
    film that is not in ml-100k."""
    path = Path(__file__).resolve().parent / "data_files" / "messy_titles.json"
    return pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))


def truth_ids(catalog: Catalog, truth_titles: Sequence[str | None]) -> list[list[int] | None]:
    """Display titles -> their ids in ``catalog`` (None stays None)."""
    out = []
    for t in truth_titles:
        if t is None or (isinstance(t, float) and np.isnan(t)):
            out.append(None)
        elif t not in catalog.exact:
            raise LlmrecError(f"labelled title {t!r} is not a catalog display title; fix the label")
        else:
            out.append(list(catalog.ids[catalog.exact[t]]))
    return out


# ----------------------------------------------------------------------------- command line
def _cmd_match(args: Any) -> int:
    catalog = Catalog.from_movies(load_movielens(args.dataset).movies)
    matcher = get_matcher(args.matcher, catalog, args.threshold)
    for title, ids in zip(args.titles, matcher.match(args.titles), strict=True):
        print(json.dumps({"title": title, "ids": ids}))
    return 0


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser("match", help="match titles to catalog item ids (one JSON line each)")
    p.add_argument("--matcher", default="normalized", choices=MATCHERS)
    p.add_argument("--threshold", type=float, default=None,
                   help="similarity needed for a match (default: the matcher's chosen one)")
    p.add_argument("--dataset", default=None, help="MovieLens folder (default: embedded ml-100k)")
    p.add_argument("titles", nargs="+", metavar="TITLE")
    p.set_defaults(func=_cmd_match)
