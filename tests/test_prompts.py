"""Prompts: exact strings for a fixed record, the variants, shots, Alpaca split, chat, length."""

from __future__ import annotations

import pandas as pd
import pytest

from llmrec.errors import LlmrecError
from llmrec.llm.prompts import (
    STYLES,
    alpaca_instruction,
    alpaca_parts,
    alpaca_prompt,
    blog_examples,
    blog_shots,
    build_prompts,
    chat_prompt,
    check_lengths,
    disliked_ids,
    few_shot_prompt,
    shots_from_records,
    split_alpaca,
    titles_for,
    zero_shot_prompt,
)

LIKED_1_0 = ("Monty Python and the Holy Grail (1974) => Empire Strikes Back, The (1980) => "
             "Jean de Florette (1986) => Reservoir Dogs (1992) => "
             "Manon of the Spring (Manon des sources) (1986) => Dead Poets Society (1989)")


@pytest.fixture(scope="module")
def records(ml100k):
    from llmrec.data.records import build_records

    return build_records(ml100k.ratings)


@pytest.fixture(scope="module")
def rec_1_0(records):
    return records[records.record_id == "1-0"]


def test_zero_shot_exact(rec_1_0, ml100k):
    [prompt] = build_prompts("zero-shot", rec_1_0, ml100k.movies)
    assert prompt == (f"Movies I liked: {LIKED_1_0}\n"
                      "Recommend 4 similar movies, separated by =>:\n")


def test_without_years_exact(rec_1_0, ml100k):
    [prompt] = build_prompts("zero-shot", rec_1_0, ml100k.movies, with_year=False, n=2)
    assert prompt == (
        "Movies I liked: Monty Python and the Holy Grail => Empire Strikes Back, The => "
        "Jean de Florette => Reservoir Dogs => Manon of the Spring (Manon des sources) => "
        "Dead Poets Society\nRecommend 2 similar movies, separated by =>:\n")


def test_alpaca_exact_and_split(rec_1_0, ml100k):
    from llmrec.data.records import DEFAULT_INSTRUCTION, to_alpaca

    [prompt] = build_prompts("alpaca", rec_1_0, ml100k.movies)
    assert prompt == (
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nGiven the 6 movies a user liked, in the order they watched them, "
        "recommend 4 more movies the user will like.\n\n"
        f"### Input:\n{LIKED_1_0}\n\n### Response:\n")
    # the prompt a tuned model sees carries the instruction and input it was trained on
    [example] = to_alpaca(rec_1_0, ml100k.movies)
    assert alpaca_instruction(4) == DEFAULT_INSTRUCTION == example["instruction"]
    liked = titles_for(rec_1_0.iloc[0].input_ids, ml100k.movies)
    target = titles_for(rec_1_0.iloc[0].target_ids, ml100k.movies)
    head, answer = alpaca_parts(liked, target)
    assert head == prompt and answer == example["output"]
    assert split_alpaca(alpaca_prompt(liked, target)) == (head, answer)
    with pytest.raises(LlmrecError):
        split_alpaca("no marker here")


def test_dislikes_come_from_the_past(records, ml100k):
    ratings = ml100k.ratings
    some = records.iloc[::50]
    found = 0
    for r, ids in zip(some.itertuples(), disliked_ids(some, ratings, max_items=6), strict=True):
        mine = ratings[(ratings.user_id == r.user_id) & ratings.item_id.isin(ids)]
        assert (mine.rating <= 2).all() and (mine.timestamp <= r.input_end_ts).all()
        assert len(ids) <= 6
        found += bool(ids)
    assert found > 0  # some users do dislike things


def test_dislike_variant_exact():
    movies = pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 6, 7, 8],
                           "title": list("ABCDEFGH"), "year": [1990] * 8,
                           "display_title": [f"{c} (1990)" for c in "ABCDEFGH"]})
    recs = pd.DataFrame({"record_id": ["9-0"], "user_id": [9], "input_ids": [[1, 2, 3, 4, 5, 6]],
                         "target_ids": [[1, 2, 3, 4]], "input_end_ts": [100]})
    ratings = pd.DataFrame({"user_id": [9, 9, 9], "item_id": [7, 8, 2],
                            "rating": [1.0, 2.0, 5.0], "timestamp": [50, 150, 60]})
    [prompt] = build_prompts("zero-shot", recs, movies, dislikes=True, ratings=ratings)
    assert prompt == ("Movies I liked: A (1990) => B (1990) => C (1990) => D (1990) => E (1990) => "
                      "F (1990)\nMovies I disliked: G (1990)\n"
                      "Recommend 4 similar movies I would like, separated by =>:\n")
    assert "(none)" in zero_shot_prompt(["A (1990)"], disliked=[])


def test_few_shot_from_training_records(records, ml100k):
    from llmrec.data.records import split_records

    parts = split_records(records, "temporal")
    shots = shots_from_records(parts["train"], ml100k.movies, k=2, seed=0)
    assert shots == shots_from_records(parts["train"], ml100k.movies, k=2, seed=0)
    assert {s["record_id"] for s in shots} <= set(parts["train"].record_id)
    prompts = build_prompts("few-shot", parts["test"].head(3), ml100k.movies, n_shots=2,
                            train_records=parts["train"])
    for p in prompts:
        assert p.count("Movies I liked:") == 3 and p.endswith("separated by =>:\n")
        assert " => ".join(shots[0]["answer"]) + "\n\n" in p


def test_few_shot_hand_written_exact():
    shot = blog_shots(1)[0]
    assert shot["name"] == "studio-ghibli" and len(shot["liked"]) == 6 and len(shot["answer"]) == 4
    text = few_shot_prompt(["Heat (1995)"], [shot], n=4)
    assert text == ("Movies I liked: " + " => ".join(shot["liked"]) +
                    "\nRecommend 4 similar movies, separated by =>:\n" + " => ".join(shot["answer"]) +
                    "\n\nMovies I liked: Heat (1995)\nRecommend 4 similar movies, separated by =>:\n")
    assert len(blog_examples()["queries"]) >= 3
    with pytest.raises(LlmrecError, match="hand-written"):
        blog_shots(99)


def test_chat_prompt(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(LlmrecError, match="chat template"):
        chat_prompt(tok, ["Heat (1995)"])
    tok.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert chat_prompt(tok, ["Heat (1995)", "Alien (1979)"], n=2) == (
        "<user>Here are movies I liked: Heat (1995) => Alien (1979).\nWhich 2 other movies "
        "would I like? List 2 movie titles with their years, one per line.\n<assistant>")


def test_bad_style_and_long_prompt(rec_1_0, ml100k, tiny_model_dir):
    from transformers import AutoTokenizer

    with pytest.raises(LlmrecError, match="unknown prompt style"):
        build_prompts("poetry", rec_1_0, ml100k.movies)
    assert set(STYLES) == {"zero-shot", "few-shot", "chat", "alpaca", "compact"}
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    [ok] = build_prompts("zero-shot", rec_1_0, ml100k.movies)
    [length] = check_lengths([ok], tok, context=1024, reserve=48)
    assert 0 < length < 1024
    with pytest.raises(LlmrecError, match=f"prompt 0 is {length} tokens"):
        check_lengths([ok], tok, context=length + 10, reserve=48)
