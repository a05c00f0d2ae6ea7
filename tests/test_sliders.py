"""The decoding chapter's sliders (llmrec.report.sliders) without a browser: settings, the HTML they
show, the adapter lookup, and the worker on the tiny model (the browser suite drives the
same widgets from JupyterLab: tests/test_browser.py)."""

from __future__ import annotations

import html
import re
import threading

import pandas as pd
import pytest

from llmrec.data.records import build_records, split_records
from llmrec.evaluation.matching import Catalog, get_matcher
from llmrec.llm.prompts import title_map
from llmrec.report import sliders


@pytest.fixture(scope="module")
def valid(ml100k):
    return split_records(build_records(ml100k.ratings), "temporal")["valid"].head(3).reset_index(drop=True)


@pytest.fixture(scope="module")
def matcher(ml100k):
    return get_matcher("normalized", Catalog.from_movies(ml100k.movies))


def test_generation_settings_temperature_zero_is_greedy_or_beam():
    assert sliders.generation_settings(0.0, 0.9, 50, 1, 1.1) == {
        "do_sample": False, "num_beams": 1, "repetition_penalty": 1.1}
    beam = sliders.generation_settings(0.0, 0.5, 10, 4, 1.0)
    assert beam["num_beams"] == 4 and "temperature" not in beam and "top_p" not in beam
    assert sliders.describe_settings(beam) == "beam search, 4 beams, repetition penalty 1.00"
    sample = sliders.generation_settings(0.85, 0.8, 0, 1, 1.3)
    assert sample == {"do_sample": True, "num_beams": 1, "repetition_penalty": 1.3,
                      "temperature": 0.85, "top_p": 0.8, "top_k": 0}
    assert "top-k off" in sliders.describe_settings(sample)


def test_record_html_lists_six_liked_and_four_held_out(valid, ml100k):
    names = title_map(ml100k.movies)
    record = valid.iloc[0].to_dict()
    page = sliders.record_html(record, names)
    liked = re.search(r'class="llmrec-liked"[^>]*>(.*?)</ol>', page).group(1)
    held = re.search(r'class="llmrec-held-out"[^>]*>(.*?)</ol>', page).group(1)
    assert [html.unescape(t) for t in re.findall(r"<li[^>]*>(.*?)</li>", liked)] == [
        names[i] for i in record["input_ids"]]
    assert [html.unescape(t) for t in re.findall(r"<li[^>]*>(.*?)</li>", held)] == [
        names[i] for i in record["target_ids"]]
    assert len(record["input_ids"]) == 6 and len(record["target_ids"]) == 4


def test_result_html_marks_matches_hallucinations_and_held_out(ml100k):
    names = title_map(ml100k.movies)
    result = {"completion": "Toy Story (1995) => Not A Film <b>", "titles": ["Toy Story (1995)", "Not A Film <b>"],
              "entries": [1, None], "seconds": 0.25}
    page = sliders.result_html(result, [1, 2, 3, 4], names, "generation 1: x")
    assert "1: Toy Story (1995)" in page and "hallucinated" in page
    assert "2 parsed title(s), 1 of them held out" in page
    assert "<b>" not in page.split("</b>", 1)[1]  # the completion is escaped
    empty = sliders.result_html({**result, "titles": [], "entries": []}, [1], names, "h")
    assert "no title could be parsed" in empty


def test_find_adapter_prefers_the_run_then_runs_name(tmp_path, monkeypatch):
    monkeypatch.setattr(sliders, "runs_dir", lambda: tmp_path / "runs")
    run = tmp_path / "dev"
    assert sliders.find_adapter(run, "m") is None
    report_run = tmp_path / "runs" / "m" / "adapter"
    report_run.mkdir(parents=True)
    (report_run / "adapter_config.json").write_text("{}")
    assert sliders.find_adapter(run, "m") == report_run
    own = run / "adapter"
    own.mkdir(parents=True)
    (own / "adapter_config.json").write_text("{}")
    assert sliders.find_adapter(run, "m") == own
    # another split's adapter sits in lora-<split>/
    assert sliders.find_adapter(run, "m", split="blog") is None


def test_sliders_generate_cancel_and_follow_the_controls(tiny, valid, matcher, ml100k):
    model, tokenizer = tiny
    choice = sliders.ModelChoice("tiny, untuned", "zero-shot", lambda: tiny, None, tiny)
    ui = sliders.DecodingSliders(valid, ml100k.movies, matcher, {"untuned": choice},
                                 max_new_tokens=8, seed=0)
    assert ui.wait(60)
    assert ui.generations == 1 and "generation 1:" in ui.result.value
    assert 'data-state="ready"' in ui.status.value
    assert "temperature 0.70" in ui.result.value
    first_record = ui.record_view.value
    ui.controls["temperature"].value = 1.5
    assert ui.wait(60) and "generation 2:" in ui.result.value and "temperature 1.50" in ui.result.value
    ui.controls["record_id"].value = valid["record_id"].iloc[1]
    assert ui.record_view.value != first_record
    assert ui.wait(60) and f"record {valid['record_id'].iloc[1]}" in ui.result.value
    # labels are whole words
    assert [c.description for c in ui.controls.values()] == list(sliders.LABELS.values())


def test_a_newer_change_cancels_the_running_generation(tiny, valid, matcher, ml100k):
    """A generation that is still running when the controls move is cancelled: only the
    latest settings produce a result."""
    started, release = threading.Event(), threading.Event()

    def slow_load():
        started.set()
        release.wait(30)
        return tiny

    choice = sliders.ModelChoice("tiny", "zero-shot", slow_load)
    ui = sliders.DecodingSliders(valid, ml100k.movies, matcher, {"untuned": choice},
                                 max_new_tokens=8, seed=0)
    assert started.wait(30)
    assert 'data-state="busy"' in ui.status.value
    for t in (0.2, 0.4, 0.6):  # three changes while the first request is still loading
        ui.controls["temperature"].value = t
    release.set()
    assert ui.wait(60)
    assert ui.generations == 1 and "temperature 0.60" in ui.result.value

    with pytest.raises(sliders.Cancelled):
        sliders.recommend(tiny[0], tiny[1], "Movies I liked: Toy Story (1995)", {"do_sample": False},
                          matcher, max_new_tokens=4, stale=lambda: True)
    counted = []
    out = sliders.recommend(tiny[0], tiny[1], "Movies I liked: Toy Story (1995)",
                            {"do_sample": False}, matcher, max_new_tokens=4, on_token=counted.append)
    assert counted == list(range(len(counted))) and 1 <= len(counted) <= 4
    assert set(out) == {"completion", "titles", "entries", "seconds"}


def test_decoding_sliders_offers_the_tuned_model_only_with_an_adapter(tmp_path, tiny, valid,
                                                                      matcher, ml100k, monkeypatch):
    monkeypatch.setattr(sliders, "runs_dir", lambda: tmp_path / "runs")
    params = {"name": "tiny", "model": "tiny-llama", "run_dir": str(tmp_path / "run"),
              "splits": ["temporal"], "n_shots": 1, "seed": 0, "dtype": "float32",
              "quantization": None, "device": "cpu", "max_new_tokens": 8}
    ui = sliders.decoding_sliders(params, tiny[0], tiny[1], "few-shot", valid, ml100k.movies,
                                  matcher, pd.DataFrame(valid))
    assert [k for _, k in ui.controls["model"].options] == ["untuned"]
    assert ui.wait(60)
    adapter = tmp_path / "run" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    ui = sliders.decoding_sliders(params, tiny[0], tiny[1], "few-shot", valid, ml100k.movies,
                                  matcher, pd.DataFrame(valid))
    assert [k for _, k in ui.controls["model"].options] == ["untuned", "tuned"]
    assert ui.wait(60)
