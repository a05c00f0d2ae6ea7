"""A collaborative prior in catalog-constrained decoding (D3-style), on the tiny random model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llmrec.data.records import build_records, split_records
from llmrec.errors import LlmrecError
from llmrec.evaluation.matching import Catalog
from llmrec.evaluation.spine import Task
from llmrec.evaluation.weights import choose_weight
from llmrec.llm.prompts import alpaca_prompt
from llmrec.llm.tokens import continuation_ids
from llmrec.recommenders.baselines import fit_baseline
from llmrec.recommenders.constrained import (
    CatalogLogitsProcessor,
    CatalogTrie,
    ConstrainedGeneration,
    catalog_prior,
    choose_prior_weight,
    constrained_generate,
)

BEAM2 = {"do_sample": False, "num_beams": 2}
NAMED = ["Toy Story (1995)", "Fargo (1996)", "Star Wars (1977)"]


@pytest.fixture(scope="module")
def movies(ml100k):
    """Every 8th ml-100k movie plus the ones the prompts name (about 210 titles)."""
    frame = ml100k.movies
    keep = frame.index[::8].union(frame.index[frame["display_title"].isin(NAMED)])
    return frame.loc[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def catalog(movies):
    return Catalog.from_movies(movies)


@pytest.fixture(scope="module")
def trie(tiny, catalog):
    return CatalogTrie.from_titles(tiny[1], catalog.titles)


@pytest.fixture(scope="module")
def parts(ml100k):
    return split_records(build_records(ml100k.ratings), "blog")


@pytest.fixture(scope="module")
def baselines(parts, movies):
    return {name: fit_baseline(name, parts["train"], movies) for name in ("popularity", "item_knn")}


def _inputs(catalog, n):
    """``n`` input lists of 3 catalog items each (distinct across lists)."""
    items = sorted(catalog.item_ids)
    return [items[3 * i + 5:3 * i + 8] for i in range(n)]


def _prompts(catalog, inputs):
    names = {i: t for t, ids in zip(catalog.titles, catalog.ids, strict=True) for i in ids}
    return [alpaca_prompt([names[i] for i in items]) for items in inputs]


def _exclude(catalog, inputs):
    names = {i: t for t, ids in zip(catalog.titles, catalog.ids, strict=True) for i in ids}
    return [[names[i] for i in items] for items in inputs]


def _random_prior(trie, n, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(len(trie.titles)), size=n)


# ----------------------------------------------------------------------------- the prior
@pytest.mark.parametrize("name", ["popularity", "item_knn"])
def test_catalog_prior_is_a_distribution_without_the_inputs(baselines, trie, catalog, name):
    inputs = _inputs(catalog, 3)
    probs = catalog_prior(baselines[name], trie, catalog, inputs)
    assert probs.shape == (3, len(trie.titles))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    index = trie.index
    for row, items in zip(probs, inputs, strict=True):
        own = {index[t] for t, ids in zip(catalog.titles, catalog.ids, strict=True)
               if set(ids) & set(items)}
        assert own and all(row[t] == 0 for t in own)  # the inputs get no mass
        assert (np.delete(row, list(own)) > 0).all()  # every other title keeps some
    b = baselines[name]
    top = b.recommend(inputs[0], 1)[0]  # the baseline's own top item is the prior's top title
    top_title = next(t for t, ids in zip(catalog.titles, catalog.ids, strict=True) if top in ids)
    assert int(np.argmax(probs[0])) == index[top_title]


def test_masses_sum_over_the_tree(trie):
    probs = _random_prior(trie, 3)
    mass = trie.masses(probs)
    index = trie.tree_index()
    assert mass.shape == (3, len(index.nodes))
    np.testing.assert_allclose(mass[:, trie.first.row], 1.0)
    np.testing.assert_allclose(mass[:, trie.next.row], 1.0)
    for node in index.nodes:  # a node's mass: its own title's, plus its children's
        own = probs[:, node.title] if node.title is not None else 0.0
        kids = mass[:, node.child_rows].sum(axis=1)
        np.testing.assert_allclose(mass[:, node.row], own + kids, rtol=1e-9, atol=1e-12)


def _bonus_sum(proc, b, tokens, n_titles):
    """Sum of the bonuses of ``tokens`` then the end token, walked through the processor."""
    total = 0.0
    for i in range(len(tokens) + 1):
        state = proc._state(b, tuple(tokens[:i]))
        allowed = proc._allowed(b, state)
        tok = tokens[i] if i < len(tokens) else proc.trie.eos_token_id
        assert tok in allowed
        total += proc.bonus(b, state, allowed)[allowed.index(tok)]
    return total


def test_bonus_telescopes_to_the_titles_log_prior(tiny, trie):
    _, tok = tiny
    probs = _random_prior(trie, 2, seed=1)
    a, b, c = trie.titles[7], trie.titles[40], trie.titles[99]
    ids_a = continuation_ids(tok, a, "\n")
    later = continuation_ids(tok, " => " + b, ")") + continuation_ids(tok, " => " + c, ")")
    i = trie.index
    weight = 0.7
    # one title: weight * log p(title), for each row's own prior
    proc = CatalogLogitsProcessor(trie, 0, 1, [frozenset()] * 2, prior=probs, prior_weight=weight)
    for row in range(2):
        assert _bonus_sum(proc, row, ids_a, 1) == pytest.approx(weight * math.log(probs[row, i[a]]))
    # three titles: the prior's probability of drawing the list in order without replacement
    proc = CatalogLogitsProcessor(trie, 0, 3, [frozenset()] * 2, prior=probs, prior_weight=weight)
    for row in range(2):
        pa, pb, pc = probs[row, [i[a], i[b], i[c]]]
        want = weight * (math.log(pa) + math.log(pb / (1 - pa)) + math.log(pc / (1 - pa - pb)))
        assert _bonus_sum(proc, row, ids_a + later, 3) == pytest.approx(want)
    # an excluded title's mass is taken out: the first title is then p / (1 - p(excluded))
    proc = CatalogLogitsProcessor(trie, 0, 1, [frozenset({i[c]})], prior=probs[:1],
                                  prior_weight=1.0)
    want = math.log(probs[0, i[a]] / (1 - probs[0, i[c]]))
    assert _bonus_sum(proc, 0, ids_a, 1) == pytest.approx(want)


def test_bonus_inside_a_title_is_the_mass_ratio(tiny, trie):
    _, tok = tiny
    probs = _random_prior(trie, 1, seed=2)
    mass = trie.masses(probs)[0]
    title = trie.titles[12]
    ids = continuation_ids(tok, title, "\n")
    proc = CatalogLogitsProcessor(trie, 0, 4, [frozenset()], prior=probs, prior_weight=2.0)
    node = trie.first
    for n, t in enumerate(ids):
        state = proc._state(0, tuple(ids[:n]))
        allowed = proc._allowed(0, state)
        got = proc.bonus(0, state, allowed)[allowed.index(t)]
        child = node.children[t]
        assert got == pytest.approx(2.0 * (math.log(mass[child.row]) - math.log(mass[node.row])))
        node = child


# ----------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("preset,head", [("greedy", "catalog"), ("greedy", "full"),
                                         (BEAM2, "full"), (BEAM2, "catalog")])
def test_weight_zero_is_plain_constrained_decoding(tiny, trie, catalog, preset, head):
    model, tok = tiny
    inputs = _inputs(catalog, 3)
    prompts, exclude = _prompts(catalog, inputs), _exclude(catalog, inputs)
    probs = _random_prior(trie, 3, seed=3)
    kw = dict(preset=preset, n_titles=3, batch_size=2, exclude=exclude, progress=False, head=head)
    plain = constrained_generate(model, tok, prompts, trie, **kw)
    zero = constrained_generate(model, tok, prompts, trie, prior=probs, prior_weight=0.0, **kw)
    assert zero == plain
    assert all(len(t.split(" => ")) == 3 for t in plain)
    # and a weight > 0 does change what is decoded (the prior is used at all)
    strong = constrained_generate(model, tok, prompts, trie, prior=probs, prior_weight=50.0, **kw)
    assert strong != plain


def _peaked(trie, tops, n_rows=1, seed=0):
    """A prior with half its mass on tops[0], a quarter on tops[1] ... the rest spread."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(trie.titles)), size=n_rows) * 2.0 ** -8
    for r in range(n_rows):
        for k, t in enumerate(tops[r]):
            probs[r, t] = 2.0 ** -(k + 1)
        probs[r] /= probs[r].sum()
    return probs


@pytest.mark.parametrize("preset,head", [("greedy", "auto"),
                                         ({**BEAM2, "length_penalty": 0.0}, "full")])
def test_huge_weight_follows_the_prior_row_by_row(tiny, trie, catalog, preset, head):
    """Each batch row decodes its own prior's top titles, in order, inputs excluded."""
    model, tok = tiny
    inputs = _inputs(catalog, 3)
    prompts, exclude = _prompts(catalog, inputs), _exclude(catalog, inputs)
    i = trie.index
    tops = [[17, 3, 150, 88], [60, 61, 5, 140], [101, 9, 33, 170]]
    assert all(not {i[t] for t in exclude[r]} & set(tops[r]) for r in range(3))
    probs = _peaked(trie, [[i[exclude[r][0]]] + tops[r] for r in range(3)], n_rows=3)
    out = constrained_generate(model, tok, prompts, trie, preset=preset, head=head, n_titles=4,
                               batch_size=3, exclude=exclude, prior=probs, prior_weight=1e4,
                               progress=False)
    for r in range(3):  # the excluded input had the largest mass: it is skipped
        assert out[r].split(" => ") == [trie.titles[t] for t in tops[r]]


def _heaviest_path(trie, probs_row):
    """The title reached by always taking the heaviest branch by prior mass (the end of a
    title weighs its own probability): what greedy decoding does when the prior dominates."""
    mass = trie.masses(probs_row)[0]
    node = trie.first
    while True:
        options = {t: mass[c.row] for t, c in node.children.items() if mass[c.row] > 0}
        if node.title is not None and probs_row[node.title] > 0:
            options[None] = probs_row[node.title]
        choice = max(options, key=options.get)
        if choice is None:
            return trie.titles[node.title]
        node = node.children[choice]


@pytest.mark.parametrize("name", ["popularity", "item_knn"])
def test_huge_weight_with_a_baseline_takes_the_heaviest_branch(tiny, trie, catalog, baselines,
                                                                name):
    model, tok = tiny
    inputs = _inputs(catalog, 3)
    b = baselines[name]
    probs = catalog_prior(b, trie, catalog, inputs)
    out = constrained_generate(model, tok, _prompts(catalog, inputs), trie, preset="greedy",
                               n_titles=1, exclude=_exclude(catalog, inputs), prior=probs,
                               prior_weight=1e4, progress=False)
    assert out == [_heaviest_path(trie, probs[r]) for r in range(3)]
    assert len(set(out)) > 1 or name == "popularity"  # item-kNN's prior depends on the inputs
    names = {i: t for t, ids in zip(catalog.titles, catalog.ids, strict=True) for i in ids}
    if name == "popularity":  # a peaked prior: the heaviest branch ends in the top item
        assert out == [names[b.recommend(items, 1)[0]] for items in inputs]


def test_prior_arguments_are_checked(tiny, trie):
    model, tok = tiny
    with pytest.raises(LlmrecError):
        constrained_generate(model, tok, ["a\n"], trie, prior=np.ones((2, 3)), prior_weight=1.0,
                             progress=False)
    with pytest.raises(LlmrecError):
        constrained_generate(model, tok, ["a\n"], trie, prior=_random_prior(trie, 1),
                             prior_weight=-1.0, progress=False)


# ----------------------------------------------------------------------------- the recommender
def test_recommender_with_a_prior(tiny, trie, catalog, movies, baselines, parts):
    model, tok = tiny
    b = baselines["popularity"]
    inputs = _inputs(catalog, 4)
    # records over the subset's movies; the first two like the prior's top 4
    targets = [b.recommend(items, 4) for items in inputs[:2]] + [inputs[0], inputs[1] + [1]]
    records = pd.DataFrame({"record_id": [f"u{r}-0" for r in range(4)], "user_id": range(4),
                            "input_ids": inputs, "target_ids": targets})
    task = Task.of(movies, parts["train"], catalog=catalog)

    def build(weight):
        return ConstrainedGeneration(model, tok, movies, catalog, trie, system="tiny",
                                     setting="lora/constrained-greedy", preset="greedy",
                                     prior=b, prior_weight=weight, progress=False)

    system = build(1e4)
    assert system.setting == "lora/constrained-greedy+popularity-prior"
    preds = system.predict(records)
    settings = system.settings()
    assert settings["prior"] == "popularity" and settings["prior_weight"] == 1e4
    for pred, items in zip(preds, inputs, strict=True):
        want = b.recommend(items, 4)  # the prior's top items (inputs excluded)
        flat = [i for p in pred["predicted_ids"] for i in (p if isinstance(p, list) else [p])]
        assert flat[0] == want[0] and len(set(flat) & set(want)) >= 2
        assert not set(flat) & set(items)
    plain = ConstrainedGeneration(model, tok, movies, catalog, trie, system="tiny",
                                  setting="lora/constrained-greedy", preset="greedy",
                                  progress=False)
    assert build(0.0).predict(records) == plain.predict(records)
    with pytest.raises(LlmrecError):
        ConstrainedGeneration(model, tok, movies, catalog, trie, system="tiny", setting="x",
                              prior_weight=1.0)

    best, frame = choose_prior_weight(build, records, task, grid=(0, 1e4))
    assert list(frame["weight"]) == [0.0, 1e4]
    assert frame["seconds"].gt(0).all()
    assert best == 1e4  # two records' targets are the prior's top 4
    assert frame.loc[frame["weight"] == 1e4, "map_at_4"].item() > frame["map_at_4"].iloc[0]
    assert frame["chosen"].tolist() == [False, True]


# ----------------------------------------------------------------------------- the weight choice
def test_choose_weight_picks_the_best_ties_to_the_smaller():
    calls = []

    def score_at(w):
        calls.append(w)
        return {0.0: 0.10, 0.25: 0.12, 0.5: 0.15, 1.0: 0.15, 2.0: 0.11}[w]

    best, frame = choose_weight(score_at, (2, 0, 1, 0.5, 0.25))
    assert best == 0.5  # 0.5 and 1 tie: the smaller
    assert sorted(calls) == calls == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert isinstance(frame, pd.DataFrame) and frame["chosen"].sum() == 1
    assert frame.loc[frame["chosen"], "weight"].item() == 0.5


def test_choose_weight_never_below_weight_zero():
    best, frame = choose_weight(lambda w: 0.2 - w, (0, 0.25, 0.5, 1, 2))
    assert best == 0.0 and frame["score"].max() == frame.loc[frame["weight"] == 0, "score"].item()
    with pytest.raises(LlmrecError):
        choose_weight(lambda w: 1.0, ())
    with pytest.raises(LlmrecError):
        choose_weight(lambda w: float("nan"), (0, 1))
