"""The evaluation spine: any recommender -> rows + metrics; a generator's failures kept, never
dropped; a new system is one class plus its registration."""

from __future__ import annotations

import pytest

import llmrec.recommenders.generation as G
from llmrec.artifacts import read_json, read_jsonl
from llmrec.data.records import build_records, split_records
from llmrec.errors import LlmrecError
from llmrec.evaluation import failures as F
from llmrec.evaluation.matching import Catalog, get_matcher
from llmrec.evaluation.spine import Task, evaluate, evaluate_and_save
from llmrec.llm.models import load_model
from llmrec.recommenders.base import REGISTRY, Recommender, build, register


@pytest.fixture(scope="module")
def setup(ml100k):
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
    monkeypatch.setattr(G, "generate", lambda *a, **kw: list(COMPLETIONS))
    system = G.FreeGeneration(None, None, ml100k.movies, matcher, system="fixed",
                              setting="zero-shot/greedy", batch_size=2, max_new_tokens=8)
    rows, metrics = evaluate(system, recs, Task.of(ml100k.movies, parts["train"], catalog=catalog))
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
    flags = F.failure_flags("1. The (1995)\n2. Heat (1995)", ["The (1995)", "Heat (1995)"],
                            F.YearIndex(ml100k.movies), frozenset({"Heat (1995)"}))
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
    table = F.failure_table(rows)
    assert len(table) == 5 and set(F.FAILURE_COLUMNS) <= set(table.columns)


def test_free_generation_on_tiny_model(setup, ml100k, tiny_model_dir, tmp_path):
    parts, catalog, matcher = setup
    model, tok = load_model(tiny_model_dir)
    recs = parts["test"].head(6)
    task = Task.of(ml100k.movies, parts["train"], catalog=catalog)
    for style in ("zero-shot", "few-shot"):
        system = G.FreeGeneration(model, tok, ml100k.movies, matcher, system="tiny",
                                  setting=f"{style}/greedy", style=style,
                                  train_records=parts["train"], n_shots=1, batch_size=4,
                                  max_new_tokens=12, progress=False)
        rows, saved = evaluate_and_save(system, recs, task, tmp_path, "temporal")
        metrics = saved
        assert len(rows) == 6 and metrics["n_records"] == 6
        assert 0.0 <= metrics["map_at_4"] <= 1.0 and metrics["prompts_per_second"] > 0
        assert metrics["style"] == style
        for r in rows:
            assert len(r["titles"]) <= 4 and len(r["predicted_ids"]) == len(r["titles"])
        back = read_jsonl(tmp_path / f"tiny__{style}-greedy" / "temporal" / "predictions.jsonl.gz")
        assert [b["record_id"] for b in back] == recs.record_id.tolist()
        assert read_json(tmp_path / f"tiny__{style}-greedy" / "temporal" / "metrics.json")[
            "map_at_4"] == saved["map_at_4"]


def test_example_outputs(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    df = G.example_outputs(model, tok, "few-shot", "greedy", n_shots=1, max_new_tokens=6)
    assert len(df) >= 3 and {"example", "completion", "titles"} <= set(df.columns)


def test_a_new_recommender_is_one_class_and_its_registration(setup, ml100k, tmp_path):
    """A toy system (the four smallest item ids the user did not give) goes through the same
    spine as every other."""

    @register("toy_next_ids")
    class NextIds(Recommender):
        system, setting = "toy", "baseline"

        def predict(self, records):
            return [{"predicted_ids": sorted(set(range(1, 11)) - set(ids))[:4]}
                    for ids in records["input_ids"]]

    try:
        parts, catalog, _ = setup
        recs = parts["test"].head(20)
        rows, saved = evaluate_and_save(build("toy_next_ids"), recs, Task.of(ml100k.movies, parts["train"]),
                                        tmp_path, "temporal")
        assert saved["system"] == "toy" and saved["n_records"] == 20
        assert saved["validity"] == 1.0 and saved["hallucination_rate"] == 0.0
        assert [r["predicted_ids"] for r in rows] == [sorted(set(range(1, 11)) - set(r.input_ids))[:4]
                                                      for r in recs.itertuples()]
        back = read_jsonl(tmp_path / "toy__baseline" / "temporal" / "predictions.jsonl.gz")
        assert back == rows and read_json(tmp_path / "toy__baseline" / "temporal" / "metrics.json")[
            "map_at_4"] == saved["map_at_4"]
        with pytest.raises(LlmrecError, match="toy_next_ids"):
            register("toy_next_ids")(type("Other", (Recommender,), {}))
    finally:
        REGISTRY.pop("toy_next_ids", None)
    with pytest.raises(LlmrecError, match="unknown recommender"):
        build("toy_next_ids")


def test_a_system_that_loses_records_is_refused(setup, ml100k):
    class Short(Recommender):
        def predict(self, records):
            return [{"predicted_ids": [1]}]

    parts, catalog, _ = setup
    with pytest.raises(LlmrecError, match="1 predictions for 3 records"):
        evaluate(Short(), parts["test"].head(3), Task.of(ml100k.movies, parts["train"]))
