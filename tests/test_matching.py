"""Title matching: the four matchers, thresholds, fast path against the reference, the CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from llmrec.data.formats import split_year
from llmrec.errors import LlmrecError
from llmrec.evaluation.matching import (
    MATCHERS,
    Catalog,
    choose_threshold,
    get_matcher,
    load_messy_titles,
    matcher_accuracy,
    normalize_title,
    query_variants,
    truth_ids,
)

STRING_MATCHERS = ["common_chars", "levenshtein", "normalized"]


@pytest.fixture(scope="module")
def small():
    movies = pd.DataFrame({
        "item_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "display_title": ["Usual Suspects, The (1995)",
                          "Horseman on the Roof, The (Hussard sur le toit, Le) (1995)",
                          "Sabrina (1954)", "Sabrina (1995)", "Chasing Amy (1997)",
                          "Chasing Amy (1997)", "Heat (1995)", "unknown"],
    })
    return Catalog.from_movies(movies)


@pytest.fixture(scope="module")
def catalog(ml100k):
    return Catalog.from_movies(ml100k.movies)


def test_normalize_and_split_year():
    assert split_year("Heat (1995)") == ("Heat", 1995)
    assert split_year("Heat") == ("Heat", None)
    assert normalize_title("Usual Suspects, The (1995)") == "the usual suspects"
    assert normalize_title("the usual suspects!") == "the usual suspects"
    assert normalize_title("Misérables, Les (1995)") == "les miserables"
    assert normalize_title("Seven (Se7en) (1995)") == "seven"
    assert query_variants("usual suspects the 1995")[-1] == ("the usual suspects", 1995)
    assert query_variants("Heat (1995)") == [("heat", 1995)]


def test_catalog_shared_titles_and_unknown(small):
    assert small.ids[small.exact["Chasing Amy (1997)"]] == [5, 6]
    assert "unknown" not in small.exact and 8 not in small.item_ids
    assert len(small) == 7


def test_ml100k_catalog(catalog):
    # 1,682 items, one "unknown", 18 titles shared by two ids
    assert len(catalog) == 1681
    assert sum(len(ids) == 2 for ids in catalog.ids) == 18
    assert len(catalog.titles) == 1681 - 18


@pytest.mark.parametrize("name", STRING_MATCHERS)
def test_exact_and_shared_titles(small, name):
    m = get_matcher(name, small, threshold=0.9)
    assert m.match(["Chasing Amy (1997)", "Usual Suspects, The (1995)", "", "  "]) == [
        [5, 6], [1], None, None]


def test_normalized_handles_article_year_and_case(small):
    m = get_matcher("normalized", small)
    assert m.match(["The Usual Suspects", "usual suspects, the", "Sabrina (1953)",
                    "Sabrina (1996)", "Heat"]) == [[1], [1], [3], [4], [7]]
    # punctuation stripped by the writer: bare year, article without its comma
    assert m.match(["usual suspects the 1995", "sabrina 1954"]) == [[1], [3]]
    # an unrelated film stays unmatched (hallucinated), never forced onto the nearest
    assert m.match(["Inception (2010)"]) == [None]


def test_common_chars_long_title_bias(small):
    """The blog's first idea: a long title holds every character of a short one, so even
    the exact title "Heat (1995)" goes to the long title listed first (as in ml-100k)."""
    m = get_matcher("common_chars", small, threshold=0.9)
    assert m.match(["Heat (1995)"]) == [[2]]
    assert get_matcher("levenshtein", small).match(["Heat (1995)"]) == [[7]]


def test_threshold_turns_far_titles_into_none(small):
    lev = get_matcher("levenshtein", small, threshold=0.7)
    assert lev.match(["Heat (1996)", "Totally Unrelated Film (2003)"]) == [[7], None]
    loose = get_matcher("levenshtein", small, threshold=0.0)
    assert loose.match(["Totally Unrelated Film (2003)"])[0] is not None


def test_bad_names_and_thresholds(small):
    with pytest.raises(LlmrecError, match="unknown matcher"):
        get_matcher("fuzzy", small)
    with pytest.raises(LlmrecError, match="outside"):
        get_matcher("levenshtein", small, threshold=1.5)


def _messy_variants(titles, n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = list(rng.choice(titles))
        for _ in range(rng.randint(0, 4)):
            i = rng.randrange(len(t))
            op = rng.random()
            if op < 0.3:
                del t[i]
            elif op < 0.6:
                t.insert(i, rng.choice("abcxyz ,:"))
            else:
                t[i] = rng.choice("eaoTHS1 ")
        out.append("".join(t) if t else "x")
    return out + ["Inception (2010)", "The Dark Knight (2008)", "Zzzz"]


@pytest.mark.parametrize("name", STRING_MATCHERS)
def test_fast_path_agrees_with_reference(catalog, name):
    queries = _messy_variants(catalog.titles, 60, seed=1) + catalog.titles[:5]
    m = get_matcher(name, catalog)
    idx_fast, sim_fast = m.best(queries)
    ref = [m._best_one_reference(q.strip()) for q in queries]
    assert idx_fast.tolist() == [i for i, _ in ref]
    assert sim_fast.tolist() == pytest.approx([s for _, s in ref])
    # the pruned path (a length window and a distance cutoff from the threshold) agrees too
    ref_idx, ref_sim = np.array([i for i, _ in ref]), np.array([s for _, s in ref])
    assert m.match(queries) == m.match_reference(queries)
    for thr in (0.0, 0.5, 0.7, 0.95):
        m.threshold = thr
        assert m.match(queries) == m._decide(ref_idx, ref_sim, thr), thr


def test_embedding_matcher(small):
    """MiniLM embeddings (the embedded asset): exact titles, rewording, fast == reference."""
    m = get_matcher("embedding", small, threshold=0.75)
    queries = ["Chasing Amy (1997)", "Usual Suspects (1995)", "Sabrina (1954)",
               "A quantum physics lecture recording"]
    got = m.match(queries)
    assert got[:3] == [[5, 6], [1], [3]] and got[3] is None
    assert got == m.match_reference(queries)


def test_choose_threshold_and_accuracy_on_messy_titles(catalog):
    df = load_messy_titles()
    assert {"typo", "no_year", "wrong_year", "article_front", "not_in_catalog",
            "sequel_not_in_catalog"} <= set(df["kind"])
    valid, test = df[df["part"] == "valid"], df[df["part"] == "test"]
    m = get_matcher("normalized", catalog)
    thr, table = choose_threshold(m, valid["title"].tolist(), truth_ids(catalog, valid["truth"]))
    assert table["chosen"].sum() == 1
    assert table.loc[table["chosen"], "accuracy"].item() == table["accuracy"].max()
    assert thr == table.loc[table["chosen"], "threshold"].item()
    m.threshold = thr
    acc = matcher_accuracy(m, test["title"].tolist(), truth_ids(catalog, test["truth"]))
    assert acc["accuracy"] + acc["false_match_rate"] + acc["miss_rate"] == pytest.approx(1.0)
    assert acc["accuracy"] > 0.7 and acc["false_match_rate"] < 0.1
    # the raw edit distance does worse than the normalised one on the same titles
    lev = get_matcher("levenshtein", catalog)
    all_truth = truth_ids(catalog, df["truth"])
    assert (matcher_accuracy(lev, df["title"].tolist(), all_truth)["accuracy"]
            < matcher_accuracy(get_matcher("normalized", catalog), df["title"].tolist(),
                               all_truth)["accuracy"])


def test_max_distance_bound():
    from llmrec.evaluation.matching import max_distance

    assert max_distance(20, None) is None and max_distance(20, 0.0) is None
    assert max_distance(20, 0.8) == 5  # d <= 0.2 * 20 / 0.8
    # the bound is tight: a string 5 edits away (appended) still reaches 0.8
    assert 1 - 5 / 25 >= 0.8


def test_matchers_list():
    assert MATCHERS == ["common_chars", "levenshtein", "normalized", "embedding"]


def test_cli_prints_one_json_line_per_title(ml100k):
    out = subprocess.run(
        [sys.executable, "-m", "llmrec", "match", "--matcher", "normalized",
         "The Usual Suspects", "Chasing Amy (1997)", "Inception (2010)"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip().splitlines()
    rows = [json.loads(line) for line in out]
    assert [r["title"] for r in rows] == ["The Usual Suspects", "Chasing Amy (1997)",
                                         "Inception (2010)"]
    assert rows[0]["ids"] == [12] and len(rows[1]["ids"]) == 2 and rows[2]["ids"] is None
