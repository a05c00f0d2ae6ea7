"""parse_completion on a table of messy completions, and the failure-mode flags."""

from __future__ import annotations

import pytest

from llmrec.parsing import classify_completion, looks_non_english, parse_completion

CASES = [
    # (name, completion, expected titles)
    ("arrow list", " Toy Story (1995) => Fargo (1996) => Scream (1996) => Contact (1997)",
     ["Toy Story (1995)", "Fargo (1996)", "Scream (1996)", "Contact (1997)"]),
    ("arrow list then code", " Fargo (1996) => Heat (1995)\ndef recommend(movies):\n    return movies",
     ["Fargo (1996)", "Heat (1995)"]),
    ("code only", "```python\nmovies = ['Toy Story']\nprint(movies)\n```", []),
    ("import first", "import pandas as pd\ndf = pd.read_csv('movies.csv')", []),
    ("numbered list", "1. Toy Story (1995)\n2. \"Fargo\" (1996)\n3) Heat (1995).\n4. Emma (1996)",
     ["Toy Story (1995)", "Fargo (1996)", "Heat (1995)", "Emma (1996)"]),
    ("bullets after chatter", "Sure! Here are 4 movies you might like:\n- Star Wars (1977)\n* Alien (1979)",
     ["Star Wars (1977)", "Alien (1979)"]),
    ("trailing chatter", "Fargo (1996) - a dark comedy by the Coen brothers => Heat (1995) is great",
     ["Fargo (1996)", "Heat (1995)"]),
    ("repeated titles kept", " Star Wars (1977) => Star Wars (1977) => Star Wars (1977)",
     ["Star Wars (1977)", "Star Wars (1977)", "Star Wars (1977)"]),
    ("leading apostrophe is part of the title", " 'Til There Was You (1997) => 'Heat (1995)' => Heat (1995)'",
     ["'Til There Was You (1997)", "Heat (1995)", "Heat (1995)"]),
    ("empty", "", []),
    ("whitespace", "   \n  ", []),
    ("new prompt", "Alien (1979) => Heat (1995)\n\n### Input:\nToy Story (1995)", ["Alien (1979)", "Heat (1995)"]),
    ("new prompt inline", "Alien (1979) => Movies I liked: Toy Story (1995)", ["Alien (1979)"]),
    ("blank line ends list", "Alien (1979) => Heat (1995)\n\nThese films share a mood.", ["Alien (1979)", "Heat (1995)"]),
    ("numbered after blank", "Here you go:\n\n1. Alien (1979)\n\n2. Heat (1995)", ["Alien (1979)", "Heat (1995)"]),
    ("no years", " Toy Story => L.A. Confidential => Mr. Holland's Opus",
     ["Toy Story", "L.A. Confidential", "Mr. Holland's Opus"]),
    ("article and parentheses", "Usual Suspects, The (1995) => Independence Day (ID4) (1996)",
     ["Usual Suspects, The (1995)", "Independence Day (ID4) (1996)"]),
    ("label", "Title: My Neighbor Totoro (1988)", ["My Neighbor Totoro (1988)"]),
    ("quotes", "'Heat' (1995) => \u201cAlien\u201d (1979)", ["Heat (1995)", "Alien (1979)"]),
    ("long sentence skipped", "I think you would enjoy these movies because they are all about friendship and adventure in space:\nAlien (1979)",
     ["Alien (1979)"]),
]


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_parse_table(name, text, expected):
    assert parse_completion(text) == expected


def test_none_and_max_titles():
    assert parse_completion(None) == []
    text = "A (1990) => B (1991) => C (1992) => D (1993) => E (1994"
    assert parse_completion(text, max_titles=4) == ["A (1990)", "B (1991)", "C (1992)", "D (1993)"]
    assert len(parse_completion(text)) == 5


def test_classify_flags():
    code = classify_completion("def recommend(movies):\n    return [m for m in movies]")
    assert code == {"empty": True, "looks_like_code": True, "non_english": False}
    ok = classify_completion(" Toy Story (1995) => Fargo (1996)")
    assert ok == {"empty": False, "looks_like_code": False, "non_english": False}
    assert classify_completion("")["empty"] is True


@pytest.mark.parametrize("text,expected", [
    ("El laberinto del fauno es una película que los niños y las familias aman", True),
    ("千と千尋の神隠し => となりのトトロ", True),
    ("Die Verurteilten ist ein Film mit Tim Robbins und der Gefängnis", True),
    ("Amélie (2001) => Fargo (1996) => Heat (1995)", False),
    ("Belle de jour (1967) => La Strada (1954)", False),
    ("Star Wars (1977) => The Empire Strikes Back (1980)", False),
])
def test_non_english(text, expected):
    assert looks_non_english(text) is expected


def test_code_words_are_case_sensitive():
    text = "Return of the Jedi (1983) => For Love or Money (1993) => With Honors (1994)"
    assert parse_completion(text) == ["Return of the Jedi (1983)", "For Love or Money (1993)",
                                      "With Honors (1994)"]
    assert parse_completion("Heat (1995) => return movies") == ["Heat (1995)"]
