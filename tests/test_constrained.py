"""Catalog-constrained decoding on the tiny random model (random weights: the perfect adversary)."""

from __future__ import annotations

import warnings

import pytest

from llmrec.llm.parsing import parse_completion
from llmrec.llm.prompts import alpaca_prompt
from llmrec.llm.tokens import continuation_ids
from llmrec.recommenders.constrained import CatalogTrie, constrained_generate


@pytest.fixture(scope="module")
def catalog(ml100k):
    """300 real ml-100k titles (every 5th) plus the ones the prompts name."""
    titles = ml100k.movies["display_title"].tolist()
    return titles[::5] + ["Toy Story (1995)", "Fargo (1996)", "Star Wars (1977)"]


def _prompts(n: int) -> list[str]:
    liked = [["Toy Story (1995)", "Fargo (1996)"], ["Star Wars (1977)"], ["Fargo (1996)"] * 3]
    return [alpaca_prompt(liked[i % 3]) for i in range(n)]


def test_every_title_tokenizes_back_to_itself(tiny, ml100k):
    _, tok = tiny
    titles = ml100k.movies["display_title"].tolist()
    trie = CatalogTrie.from_titles(tok, titles)
    assert not trie.skipped
    assert len(trie.titles) == len(set(titles))
    for a, b in zip(titles[:200], titles[1:201], strict=True):
        first = continuation_ids(tok, a, "\n")
        later = continuation_ids(tok, " => " + b, ")")
        assert tok.decode(first) == a
        assert tok.decode(later) == " => " + b
        if a != b:  # the walk over "A => B" finds exactly A then B
            done, end = trie.walk(first + later)
            assert [trie.titles[i] for i in done] == [a, b]
            assert end == len(first + later)


def test_walk_stops_at_whole_titles(tiny):
    _, tok = tiny
    trie = CatalogTrie.from_titles(tok, ["Star Wars (1977)", "Star Wars (1977) Special", "Fargo (1996)"])
    ids = continuation_ids(tok, "Star Wars (1977)", "\n") + continuation_ids(tok, " => Fargo (1996)", ")")
    done, end = trie.walk(ids)
    assert [trie.titles[i] for i in done] == ["Star Wars (1977)", "Fargo (1996)"]
    assert end == len(ids)
    # a half-spelt second title is not a title
    done, end = trie.walk(ids[:-2])
    assert [trie.titles[i] for i in done] == ["Star Wars (1977)"]
    assert tok.decode(ids[:end]) == "Star Wars (1977)"


@pytest.mark.parametrize("preset", ["greedy", "beam4", "sample"])
def test_constrained_output_is_exact_catalog_titles(tiny, catalog, preset):
    model, tok = tiny
    trie = CatalogTrie.from_titles(tok, catalog)
    prompts = _prompts(6)
    exclude = [["Toy Story (1995)", "Fargo (1996)"], ["Star Wars (1977)"], ["Fargo (1996)"]] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the decoded text must equal the catalog titles
        out = constrained_generate(model, tok, prompts, trie, preset=preset, n_titles=4,
                                   batch_size=4, exclude=exclude, progress=False)
    allowed = set(catalog)
    assert len(out) == len(prompts)
    for text, excl in zip(out, exclude, strict=True):
        titles = text.split(" => ")
        assert len(titles) == 4  # the default budget always fits 4 titles
        assert all(t in allowed for t in titles)  # hallucination 0 by construction
        assert len(set(titles)) == 4  # no repeats
        assert not set(titles) & set(excl)  # inputs excluded
        parsed = parse_completion(text)
        assert parsed and all(t in allowed for t in parsed)


def test_batched_beam_matches_one_at_a_time(tiny, catalog):
    model, tok = tiny
    trie = CatalogTrie.from_titles(tok, catalog)
    prompts = _prompts(3)
    batched = constrained_generate(model, tok, prompts, trie, preset="greedy", batch_size=3,
                                   progress=False)
    single = [constrained_generate(model, tok, [p], trie, preset="greedy", batch_size=1,
                                   progress=False)[0] for p in prompts]
    # left padding must not change which titles a row may spell: same number of whole titles
    assert [len(t.split(" => ")) for t in batched] == [len(t.split(" => ")) for t in single] == [4] * 3
    assert all(t in set(catalog) for text in batched + single for t in text.split(" => "))


def test_short_budget_drops_the_cut_title(tiny, catalog):
    model, tok = tiny
    trie = CatalogTrie.from_titles(tok, catalog)
    out = constrained_generate(model, tok, _prompts(4), trie, preset="greedy", max_new_tokens=12,
                               progress=False)
    for text in out:
        titles = [t for t in text.split(" => ") if t]
        assert len(titles) < 4
        assert all(t in set(catalog) for t in titles)


def test_n_titles_and_errors(tiny, catalog):
    from llmrec.errors import LlmrecError

    model, tok = tiny
    trie = CatalogTrie.from_titles(tok, catalog)
    out = constrained_generate(model, tok, _prompts(2), trie, preset="greedy", n_titles=1,
                               progress=False)
    assert all("=>" not in t and t in set(catalog) for t in out)
    with pytest.raises(LlmrecError):
        constrained_generate(model, tok, _prompts(2), trie, exclude=[[]], progress=False)
    with pytest.raises(LlmrecError):
        CatalogTrie.from_titles(tok, [])
