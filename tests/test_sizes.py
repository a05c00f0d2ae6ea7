"""The size axis (llmrec.report.sizes): which rows become points, that every point shares its
records, the baseline band re-scored on those records, and the figure's panels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from llmrec.artifacts import write_jsonl
from llmrec.evaluation.metrics import score
from llmrec.report import plots
from llmrec.report.sizes import (
    PANELS,
    baseline_band,
    question_of,
    size_points,
    trend_sentences,
    tuning_sentences,
)


@pytest.mark.parametrize("setting, question", [
    ("size/zero-shot-chat/greedy", "zero-shot"),
    ("size/zero-shot/greedy", "zero-shot"),
    ("size/few-shot-2/greedy", "few-shot"),
    ("size/likelihood-sasrec20", "scorer of SASRec's top 20"),
    ("size/similarity-title", "encoder (similarity search)"),
    ("lora/greedy", "tuned (LoRA)"),
    ("lora-compact-all/greedy", "tuned (LoRA)"),
    ("lora-compact-128/greedy", "tuned (LoRA)"),  # a learning-curve point: one model's may be its best
    ("lora-compact-128/beam4", None),
    ("lora/beam4", None),
    ("zero-shot-chat/greedy", None),  # chapter 2's row: another sample in the cpu profile
])
def test_question_of(setting, question):
    assert question_of(setting) == question


def _rows(ids, hits):
    """Prediction rows of records ``ids``: a hit (one of the 4 targets first: AP@4 0.25)
    where ``hits`` says."""
    return [{"record_id": i, "target_ids": [1, 2, 3, 4], "predicted_ids": [1 if h else 99, 98, 97, 96],
             } for i, h in zip(ids, hits, strict=True)]


def _row(tmp_path, run, model, setting, ids, hits, **extra):
    path = tmp_path / f"{run}-{extra.get('system', '')}-{setting.replace('/', '_')}.jsonl.gz"
    rows = _rows(ids, hits)
    write_jsonl(path, rows)
    metrics = score(rows, k_values=(4,))
    return {"run": run, "system": extra.pop("system", run), "model": model, "setting": setting, "split": "temporal",
            "predictions": str(path), **{k: metrics[k] for k in
                                         ("map_at_4", "map_at_4_low", "map_at_4_high")},
            "n_records": len(ids), **extra}


def test_points_share_their_records_and_the_band_is_rescored_on_them(tmp_path):
    sample = [f"u{i}" for i in range(40)]
    other = sample[:10]
    rows = [
        _row(tmp_path, "smollm2-135m-paper", "smollm2-135m", "size/zero-shot-chat/greedy", sample, [0] * 40),
        _row(tmp_path, "gemma3-270m-paper", "gemma3-270m", "size/zero-shot/greedy", sample, [1] + [0] * 39),
        _row(tmp_path, "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b", "size/likelihood-sasrec20", sample,
             [1] * 4 + [0] * 36),
        # a preview run's size row on 10 records: another sample, covering fewer models
        _row(tmp_path, "smollm2-135m", "smollm2-135m", "size/zero-shot-chat/greedy", other, [1] * 10),
        # two tuned rows of one model on the sample: the one trained on more records wins
        _row(tmp_path, "smollm2-135m-long", "smollm2-135m", "lora-compact-all/greedy", sample,
             [1] * 2 + [0] * 38, train_records=3511),
        _row(tmp_path, "smollm2-135m-x", "smollm2-135m", "lora/greedy", sample, [0] * 40, train_records=32),
        # a larger model's point of the learning curve is its tuned point
        _row(tmp_path, "qwen2.5-coder-0.5b-lora", "qwen2.5-coder-0.5b", "lora-compact-1024/greedy", sample,
             [1] + [0] * 39, train_records=1024),
        # a model without a known size is no point
        _row(tmp_path, "tiny", "tiny-llama", "size/zero-shot/greedy", sample, [1] * 40),
        # the common run's baselines on every record (the sample and more)
        _row(tmp_path, "common-ml-100k-cpu", None, "baseline", sample + ["x1", "x2"], [1] * 8 + [0] * 34,
             system="popularity"),
        _row(tmp_path, "common-ml-100k-cpu", None, "baseline", sample + ["x1", "x2"], [1] * 12 + [0] * 30,
             system="sasrec"),
    ]
    table = pd.DataFrame(rows)
    points = size_points(table)
    assert set(points["n_records"]) == {40}  # the preview's 10-record row is left out
    assert sorted(points["model"].unique()) == ["gemma3-270m", "qwen2.5-coder-0.5b", "smollm2-135m"]
    tuned = points[points["question"] == "tuned (LoRA)"]
    assert list(tuned["train_records"]) == [3511, 1024]
    assert tuned["map_at_4"].iloc[0] == pytest.approx(2 * 0.25 / 40)
    assert set(points["n_params"]) == {134.5e6, 268e6, 494e6}
    band = baseline_band(table, points)
    assert band["system"] == "sasrec" and band["n_records"] == 40  # re-scored on the 40, not 42
    assert band["map_at_4"] == pytest.approx(12 * 0.25 / 40)
    lines = trend_sentences(points, band)
    zero = next(line for line in lines if line.startswith("**zero-shot**"))
    assert "(n=40)" in zero and "smollm2-135m 0 hits in 40 (< 0.0750)" in zero and f"gemma3-270m {0.25 / 40:.4f}" in zero
    assert "2 of 2 sizes below it" in zero
    tuned_line = next(line for line in lines if line.startswith("**tuned (LoRA)**"))
    assert "smollm2-135m 0.0125 [" in tuned_line and "(trained on 3,511 records)" in tuned_line
    assert "(trained on 1,024 records)" in tuned_line and "trained on" not in zero
    # what tuning adds, paired with the same model's untuned lists: smollm2 has a zero-shot
    # point (2 hits more in 40: +0.0125), no few-shot one; qwen 0.5B has neither untuned list
    # to pair with but its scorer, which is another question
    gains = tuning_sentences(points)
    # (an interval whose low end is 0 is not above: a resample without the 2 hits is likely)
    assert gains == ["smollm2-135m, tuned on 3,511 records: +0.0125 [+0.0000, +0.0312] against its "
                     "zero-shot (not distinguishable at 95%)"]


def test_figure_has_a_panel_per_question_and_says_where_none_ran(tmp_path):
    sample = [f"u{i}" for i in range(20)]
    table = pd.DataFrame([_row(tmp_path, "smollm2-135m-paper", "smollm2-135m", "size/zero-shot-chat/greedy",
                               sample, [1] + [0] * 19)])
    points = size_points(table)
    fig = plots.size_trend(points, {"system": "sasrec", "map_at_4": 0.05, "map_at_4_low": 0.03,
                                    "map_at_4_high": 0.07, "n_records": 20})
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [f"{PANELS[0]} (n=20)", *PANELS[1:]]  # n where a point is
    assert all(ax.get_xscale() == "log" and ax.get_xlabel() for ax in axes)
    assert axes[0].get_ylabel()
    assert "20 seeded test records" in fig._suptitle.get_text()
    empty = [ax for ax in axes if any("no model of ours" in t.get_text() for t in ax.texts)]
    assert len(empty) == len(PANELS) - 1  # every panel but zero-shot
    tuned = axes[PANELS.index("tuned (LoRA)")]
    assert any("GPT-J" in t.get_text() for t in tuned.texts)  # the blog's points: tuned panel only
    assert not any("GPT-J" in t.get_text() for t in axes[0].texts)
    assert plots.size_trend(size_points(table.iloc[0:0]), None).axes  # an empty table draws
