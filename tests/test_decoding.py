"""Presets, the list-end stopping rule, and batched generation on the tiny model."""

from __future__ import annotations

import pytest

from llmrec.errors import LlmrecError
from llmrec.llm.decoding import PRESETS, ListEnd, generate, list_finished, preset_kwargs
from llmrec.llm.parsing import parse_completion

PROMPTS = [
    "Movies I liked: Toy Story (1995) => Fargo (1996)\nRecommend 4 similar movies, separated by =>:\n",
    "Star Wars (1977) =>",
    "Movies I liked: Contact (1997) => Scream (1996) => Liar Liar (1997) => Titanic (1997)\n",
    "Godfather, The (1972)",
    "### Instruction:\nRecommend\n\n### Response:\n",
]


def test_presets():
    assert PRESETS["beam4"]["num_beams"] == 4 and PRESETS["beam4"]["do_sample"] is False
    assert PRESETS["greedy"] == {"do_sample": False, "num_beams": 1}
    s = PRESETS["sample"]
    assert (s["do_sample"], s["temperature"], s["top_p"], s["top_k"], s["repetition_penalty"]) == (
        True, 0.7, 0.9, 50, 1.1)
    assert preset_kwargs("beam4", num_beams=2)["num_beams"] == 2
    with pytest.raises(LlmrecError, match="beam4"):
        preset_kwargs("nucleus")


@pytest.mark.parametrize("text,n,done", [
    ("", 4, False),
    (" Toy Story (1995) => Fargo", 4, False),
    (" A (1990) => B (1991) => C (1992) => D (1993)", 4, True),
    (" A (1990) => B (1991) => C (1992) => D (1993", 4, False),
    (" A (1990) => B (1991) => C (1992) => D (1993) => E", 4, True),
    (" A (1990) => B (1991)\n", None, True),
    ("\n\n1. A (1990)\n2. B (1991)\n", 4, False),
    ("1. A (1990)\n2. B (1991)\n3. C (1992)\n4. D (1993)\n", 4, True),
    ("A (1990)\n\nThe end", None, True),
    ("Here are 4 movie titles with their years:\n\n", 4, False),
    ("Here is code:\n```python", None, True),
    ("A (1990) => B\nimport os", None, True),
    ("A (1990) ### Input", None, True),
    # a bare list marker, or a title still being written, is not a finished title
    ("Here are four movies:\n\n1", 4, False),
    ("Here are four movies:\n\n1", None, False),
    ("Here are:\n\n* Bra", 4, False),
    ("Here are:\n\n* Bra", None, False),
    ("Here are the 4 movie titles with their respective years:\n\n* 1", 4, False),
    ("1. A (1990)\n2. B (1991)\n3. C (1992)\n4.", 4, False),
    ("1. A (1990)\n2. B (1991)\n3. C (1992)\n4. D (19", 4, False),
    ("1. A (1990)\n2. B (1991)\n3. C (1992)\n4. D\n", 4, True),
    ("1. 2010\n2. 2011\n3. 2012\n4. 2013\n", 4, False),
    # a header line is no title; a blank line after it does not end the list
    ("Here are four movies:\n\n1. A (1990)\n", 4, False),
    ("Here are four movies:\n\n1. A (1990)\n\n2", 4, False),
    ("Here are four movies:\n\n1. A (1990)\n\n2. B (1991)", 4, False),
    ("Here are four movies:\n\n1. A (1990)\n\nThe", 4, True),
    ("The 4 movies I wanted were Braindead (1992)", 1, True),
])
def test_list_finished(text, n, done):
    assert list_finished(text, n) is done


#: Whole completions in the shapes the models write (from the committed predictions).
WHOLE = [
    "Here are four movies:\n\n1. Braindead (1992)\n2. Heat (1995)\n3. Alien (1979)\n4. Fargo (1996)\n5. Big",
    "Here are:\n\n* Brazil (1985)\n* Heat (1995)\n\nThese films share a mood and a look.",
    "Here are the 4 movie titles with their respective years:\n1. Broken Arrow (1996)\n2. Young "
    "Frankenstein (1974)\n3. Under Siege (1992)\n4. Heat (1995)\n",
    " Toy Story (1995) => Fargo (1996) => Scream (1996) => Contact (1997) => Heat (1995)",
    "1. Wings of the Dove, The\n2. Emma\n3. 187 (1997)\n4. Secrets & Lies\n5. Kids (1995)",
    "Here are the movie titles:\n\n1. Alien (1979)\n\n2. Heat (1995)\n\n3. Emma (1996)\n\n4. Big (1988)",
]


@pytest.mark.parametrize("whole", WHOLE)
def test_list_finished_never_changes_the_titles(whole):
    """Where the rule first stops a growing completion, its first 4 titles are final."""
    stop = next((i for i in range(1, len(whole) + 1) if list_finished(whole[:i], 4)), None)
    assert stop is not None
    assert parse_completion(whole[:stop], max_titles=4) == parse_completion(whole, max_titles=4)
    assert len(parse_completion(whole[:stop])) >= min(4, len(parse_completion(whole)))


def test_list_end_is_per_row(tiny):
    _, tok = tiny
    rows = ["P A (1990) => B (1991) => C (1992) => D (1993)", "P A (1990) => B"]
    enc = tok(rows, return_tensors="pt", padding=True)
    prompt_len = 1  # pretend the first token is the prompt
    crit = ListEnd(tok, prompt_len, n_titles=4)
    assert crit(enc["input_ids"], None).tolist() == [True, False]


def test_batched_equals_one_by_one(tiny):
    model, tok = tiny
    one = generate(model, tok, PROMPTS, "greedy", batch_size=1, max_new_tokens=12,
                   early_stop=False, progress=False)
    many = generate(model, tok, PROMPTS, "greedy", batch_size=4, max_new_tokens=12,
                    early_stop=False, progress=False)
    assert len(many) == len(PROMPTS) and all(isinstance(t, str) for t in many)
    assert many == one  # left padding + sorting by length change nothing, order restored
    # continuation only: no prompt text at the front
    assert not any(t.startswith(p) for t, p in zip(many, PROMPTS, strict=True) if t)


def test_early_stop_only_shortens(tiny):
    model, tok = tiny
    full = generate(model, tok, PROMPTS, "greedy", batch_size=8, max_new_tokens=24,
                    early_stop=False, progress=False)
    short = generate(model, tok, PROMPTS, "greedy", batch_size=8, max_new_tokens=24,
                     stop_after_titles=4, progress=False)
    for f, s in zip(full, short, strict=True):
        assert f.startswith(s)
        if len(s) < len(f):  # it stopped early: the rule fired on what it kept
            assert list_finished(s, 4)


def test_sampling_is_seeded(tiny):
    model, tok = tiny
    a = generate(model, tok, PROMPTS, "sample", batch_size=2, max_new_tokens=10, seed=3,
                 early_stop=False, progress=False)
    b = generate(model, tok, PROMPTS, "sample", batch_size=2, max_new_tokens=10, seed=3,
                 early_stop=False, progress=False)
    c = generate(model, tok, PROMPTS, "sample", batch_size=2, max_new_tokens=10, seed=4,
                 early_stop=False, progress=False)
    assert a == b and a != c


def test_beam4_runs(tiny):
    model, tok = tiny
    out = generate(model, tok, PROMPTS[:3], "beam4", batch_size=3, max_new_tokens=8,
                   stop_after_titles=4, progress=False)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)


def test_too_long_and_empty(tiny):
    model, tok = tiny
    assert generate(model, tok, [], progress=False) == []
    with pytest.raises(LlmrecError, match="exceeds the model's context of 1024"):
        generate(model, tok, PROMPTS[:1], max_new_tokens=2000, progress=False)


def _few_shot_prompts():
    from llmrec.llm.prompts import blog_shots, few_shot_prompt

    shots = blog_shots(2)
    queries = [["Toy Story (1995)", "Fargo (1996)"], ["Heat (1995)"],
               ["Star Wars (1977)", "Alien (1979)", "Emma (1996)"], ["Babe (1995)", "Titanic (1997)"]]
    return [few_shot_prompt(q, shots, 4) for q in queries]


def test_prefix_split_is_verified_on_tokens(tiny):
    from llmrec.llm.decoding import common_prefix, prefix_split

    _, tok = tiny
    prompts = _few_shot_prompts()
    prefix_ids, suffixes = prefix_split(tok, prompts)
    for prompt, own in zip(prompts, suffixes, strict=True):  # the same tokens, cut in two
        assert prefix_ids + own == tok(prompt)["input_ids"]
    assert common_prefix(prompts).startswith(tok.decode(prefix_ids))
    assert prefix_split(tok, PROMPTS) is None  # zero-shot prompts share too little
    assert common_prefix([]) == "" and common_prefix(["ab\ncd", "ab\nce"]) == "ab\nc"


@pytest.mark.parametrize("preset", ["greedy", "beam4", "sample"])
def test_prefix_cache_changes_no_completion(tiny, preset):
    """A few-shot batch from the cached examples gives what the full prompts give."""
    model, tok = tiny
    prompts = _few_shot_prompts()
    kw = dict(preset=preset, batch_size=3, max_new_tokens=10, seed=1, early_stop=False, progress=False)
    cached = generate(model, tok, prompts, prefix_cache=True, **kw)
    plain = generate(model, tok, prompts, prefix_cache=False, **kw)
    assert cached == plain and any(cached)
