"""parse_completion on a table of messy completions, and the failure-mode flags."""

from __future__ import annotations

import pytest

from llmrec.llm.parsing import (
    classify_completion,
    complete_titles,
    looks_non_english,
    parse_completion,
)

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


@pytest.mark.parametrize("text,expected", [
    # a bare list marker or number after a header is no title
    ("Here are four movies:\n\n1", []),
    ("Here are the movie titles with their respective years:\n\n* 1", []),
    ("Here are the 4 movies I mentioned:\n\n-", []),
    ("Here are the 4 movie titles with their respective years:\n\n| 1", []),
    ("1. Broken Arrow (1996)\n2. Young Frankenstein (1974)\n3. Under Siege (1992)\n4.",
     ["Broken Arrow (1996)", "Young Frankenstein (1974)", "Under Siege (1992)"]),
    ("1. 2010\n2. 2011\n3. 2012\n4. 2013\n", []),
    ("Men in Black (1997) => 1997\n", ["Men in Black (1997)"]),
    ("1. The (1984) => Heat (1995) => (1984) => (1984)", ["The (1984)", "Heat (1995)"]),
    ("1. 1997: (1997)\n2. 198", []),
    # titles without letters keep their year: they are real ("187", "8 1/2", "1-900")
    ("187 (1997) => 8 1/2 (1963) => 1-900 (1994)", ["187 (1997)", "8 1/2 (1963)", "1-900 (1994)"]),
    # a title still being written is a title of the final text: only the stop rule waits
    ("Here are:\n\n* Bra", ["Bra"]),
    # a prose lead-in is stripped
    ("The 4 movies I wanted were Braindead (1992)", ["Braindead (1992)"]),
    ("Sure! Here are some movies you might like: Fargo (1996)", ["Fargo (1996)"]),
    ("Based on your taste, I would recommend Heat (1995)", ["Heat (1995)"]),
    ("I'd recommend \"Fargo\" (1996) => You might also enjoy Heat (1995)", ["Fargo (1996)", "Heat (1995)"]),
    ("My picks are: Heat (1995)\nMovie I loved: Alien (1979)", ["Heat (1995)", "Alien (1979)"]),
    # ... but not words of a title
    ("Tigrero: A Film That Was Never Made (1994) => Rosencrantz and Guildenstern Are Dead (1990)",
     ["Tigrero: A Film That Was Never Made (1994)", "Rosencrantz and Guildenstern Are Dead (1990)"]),
    ("The 1996 movie, My Fellow Americans", ["The 1996 movie, My Fellow Americans"]),
    # a sentence about the list is no title, nor a lead-in that leaves prose behind
    ("I'm going to give you 4 movies that I think you might enjoy.\n\n", []),
    ("I'm not sure what to recommend, but I'm sure you can find a movie that is a little bit different.", []),
    ("- 4 similar movies\n- 4 similar movies with different titles\n", []),
])
def test_not_titles_and_lead_ins(text, expected):
    assert parse_completion(text) == expected


def test_every_catalog_title_reads_as_itself(ml100k):
    """No rule for headers, prose, markers or chatter eats a real title, in any list form."""
    wrong = []
    for title in ml100k.movies["display_title"]:
        if title == "unknown":  # item 267, MovieLens' placeholder
            continue
        forms = {title: [title], f"1. {title}\n2. Heat (1995)": [title, "Heat (1995)"],
                 f" {title} => Heat (1995)": [title, "Heat (1995)"],
                 f"I would recommend {title}": [title], f"* \"{title}\"\n": [title]}
        wrong += [(text, parse_completion(text)) for text, want in forms.items()
                  if parse_completion(text) != want]
    assert wrong == [], wrong[:5]


#: Completions as they end, to be cut at every character: what a stopping rule sees.
WHOLE = [
    "Here are four movies:\n\n1. Braindead (1992)\n2. Heat (1995)\n3. Alien (1979)\n4. Fargo (1996)\n5.",
    "Here are:\n\n* Brazil (1985)\n* Heat (1995)\n\nThese films share a mood.",
    "Here are the movie titles:\n\n1. Alien (1979)\n\n2. Heat (1995)\n\n3. Emma (1996)\n\nEnjoy!",
    " Toy Story (1995) => Fargo (1996) => Scream (1996) => Contact (1997) => Heat (1995)",
    "The 4 movies I wanted were Braindead (1992)\nHeat (1995)\nAlien\nFargo (1996)\n",
    "Alien (1979) => Heat (1995)\ndef recommend(movies):\n    return movies",
    "1. Wings of the Dove, The\n2. Emma (1996)\n3. 187 (1997)\n4. Secrets & Lies\n5. Kids (1995)",
]


@pytest.mark.parametrize("whole", WHOLE)
def test_complete_titles_on_every_prefix(whole):
    """Closed titles never change as the text grows; an ended list is the final parse."""
    final = parse_completion(whole)
    for i in range(len(whole) + 1):
        titles, ended = complete_titles(whole[:i])
        assert titles == final[:len(titles)], (whole[:i], titles)
        if ended:
            assert titles == final, (whole[:i], titles)


@pytest.mark.parametrize("text,titles,ended", [
    ("Here are four movies:\n\n1", [], False),
    ("Here are:\n\n* Bra", [], False),
    ("Here are:\n\n* Brazil (1985)", ["Brazil (1985)"], False),
    ("A (1990) => B (19", ["A (1990)"], False),
    ("A (1990) => Wings of the Dove, The\n", ["A (1990)", "Wings of the Dove, The"], False),
    ("A (1990)\n\n2", ["A (1990)"], False),
    ("A (1990)\n\n2. B", ["A (1990)"], False),
    ("A (1990)\n\nThe", ["A (1990)"], True),
    ("A (1990)\ndef f():\n", ["A (1990)"], True),
])
def test_complete_titles(text, titles, ended):
    assert complete_titles(text) == (titles, ended)
