"""evaluate_llm: completions -> titles -> ids -> rows + metrics; failures kept, never dropped."""

from __future__ import annotations

import pytest

import llmrec.llm_eval as E
from llmrec.matching import Catalog, get_matcher


@pytest.fixture(scope="module")
def setup(ml100k):
    from llmrec.records import build_records, split_records

    parts = split_records(build_records(ml100k.ratings), "temporal")
    catalog = Catalog.from_movies(ml100k.movies)
    return parts, catalog, get_matcher("normalized", catalog)


COMPLETIONS = [
    " Toy Story (1995) => GoldenEye (1995) => Usual Suspects, The (1995) => Star Wars (1977)",
    "",
    "```python\ndef recommend(movies):\n    return movies\n```",
    " Star Wars (2031) => Toy Story (1994) => Zzyzx Qwerty Blorp (1990) => Toy Story (1995)",
    "El laberinto del fauno es una película que los niños y las familias aman",
]


def test_rows_and_metrics_from_fixed_completions(setup, ml100k, monkeypatch):
    parts, catalog, matcher = setup
    recs = parts["test"].head(len(COMPLETIONS))
    monkeypatch.setattr(E, "generate", lambda *a, **kw: list(COMPLETIONS))
    pop = E.training_popularity(parts["train"])
    rows, metrics = E.evaluate_llm(None, None, recs, ml100k.movies, ["p"] * len(recs), "greedy",
                                   matcher, catalog, pop, batch_size=2, max_new_tokens=8, seed=0)
    assert [r["record_id"] for r in rows] == recs.record_id.tolist()  # none dropped
    assert [r["completion"] for r in rows] == COMPLETIONS
    assert rows[0]["predicted_ids"] == [1, 2, 12, 50]  # Toy Story, GoldenEye, Usual Suspects, Star Wars
    assert rows[1]["predicted_ids"] == [] and rows[2]["predicted_ids"] == []
    assert rows[3]["predicted_ids"][2] is None  # an invented title stays a miss at its rank
    assert rows[0]["failures"]["empty"] is False and rows[1]["failures"]["empty"] is True
    assert rows[2]["failures"]["looks_like_code"] and rows[4]["failures"]["non_english"]
    assert rows[3]["failures"]["future_year"] and rows[3]["failures"]["year_after_catalog"]
    assert rows[3]["failures"]["wrong_year"]  # Toy Story is 1995 in the catalog
    assert not rows[0]["failures"]["wrong_year"]
    assert not any(r["failures"]["article_only"] for r in rows)
    flags = E.failure_flags("1. The (1995)\n2. Heat (1995)", ["The (1995)", "Heat (1995)"],
                            E.YearIndex(ml100k.movies), frozenset({"Heat (1995)"}))
    assert flags["article_only"] and flags["copied_example"] and not flags["wrong_year"]
    assert metrics["n_records"] == 5
    assert metrics["validity"] == pytest.approx(2 / 5)  # rows 0 and 3 hold 4 titles
    assert metrics["empty_rate"] == pytest.approx(2 / 5)  # the Spanish sentence parses as a title
    assert metrics["looks_like_code_rate"] == pytest.approx(1 / 5)
    assert metrics["future_year_rate"] == pytest.approx(1 / 5)
    # the year is optional to the normalized matcher: Star Wars (2031) is Star Wars; misses are
    # Zzyzx and the Spanish sentence, out of 4 + 4 + 1 parsed titles
    assert rows[3]["predicted_ids"][:2] == [50, 1]
    assert metrics["hallucination_rate"] == pytest.approx(2 / 9)
    for key in ("map_at_4", "map_at_4_low", "map_at_4_high", "seconds", "prompts_per_second",
                "seconds_per_record"):
        assert key in metrics
    table = E.failure_table(rows)
    assert len(table) == 5 and set(E.FAILURE_COLUMNS) <= set(table.columns)


def test_evaluate_style_on_tiny_model(setup, ml100k, tiny_model_dir, tmp_path):
    from llmrec.artifacts import read_json, read_jsonl, save_system_run
    from llmrec.models import load_model

    parts, catalog, matcher = setup
    model, tok = load_model(tiny_model_dir)
    recs = parts["test"].head(6)
    for style in ("zero-shot", "few-shot"):
        rows, metrics = E.evaluate_style(
            model, tok, style, recs, ml100k.movies, "greedy", matcher, catalog,
            E.training_popularity(parts["train"]), train_records=parts["train"], n_shots=1,
            batch_size=4, max_new_tokens=12, seed=0, progress=False)
        assert len(rows) == 6 and metrics["n_records"] == 6
        assert 0.0 <= metrics["map_at_4"] <= 1.0 and metrics["prompts_per_second"] > 0
        assert metrics["style"] == style
        for r in rows:
            assert len(r["titles"]) <= 4 and len(r["predicted_ids"]) == len(r["titles"])
        saved = save_system_run(tmp_path, "tiny", f"{style}/greedy", "temporal", rows, metrics)
        back = read_jsonl(tmp_path / f"tiny__{style}-greedy" / "temporal" / "predictions.jsonl.gz")
        assert [b["record_id"] for b in back] == recs.record_id.tolist()
        assert read_json(tmp_path / f"tiny__{style}-greedy" / "temporal" / "metrics.json")[
            "map_at_4"] == saved["map_at_4"]


def test_example_outputs(tiny_model_dir):
    from llmrec.models import load_model

    model, tok = load_model(tiny_model_dir)
    df = E.example_outputs(model, tok, "few-shot", "greedy", n_shots=1, max_new_tokens=6)
    assert len(df) >= 3 and {"example", "completion", "titles"} <= set(df.columns)
