"""Notebooks 02 (zero-shot) and 03 (few-shot), as the smoke report ran them on the tiny model
(the session's ``smoke_report``), wrote what PROTOCOL.md section 7 fixes: predictions and
metrics per setting, figures, examples."""

from __future__ import annotations

import pytest

from llmrec.artifacts import read_json, read_jsonl
from llmrec.paths import repo_root
from llmrec.report.params import load_params

SMOKE = load_params(repo_root() / "params" / "smoke.yaml")


@pytest.mark.parametrize("stem,setting", [("02_zero_shot", "zero-shot-greedy"),
                                          ("03_few_shot", f"few-shot-{SMOKE['n_shots']}-greedy")])
def test_notebook_writes_scored_predictions(smoke_report, stem, setting):
    run_dir = smoke_report.model
    folder = run_dir / f"{smoke_report.name}__{setting}" / "temporal"
    metrics = read_json(folder / "metrics.json")
    rows = read_jsonl(folder / "predictions.jsonl.gz")
    n = SMOKE["eval_limit"]
    assert metrics["n_records"] == n and len(rows) == n
    assert metrics["system"] == smoke_report.name and metrics["split"] == "temporal"
    assert 0.0 <= metrics["map_at_4_low"] <= metrics["map_at_4"] <= metrics["map_at_4_high"] <= 1.0
    assert 0.0 <= metrics["validity"] <= 1.0 and metrics["prompts_per_second"] > 0
    assert "looks_like_code_rate" in metrics and "copied_example_rate" in metrics
    for row in rows:
        assert {"record_id", "target_ids", "predicted_ids", "titles", "completion"} <= set(row)
        assert len(row["predicted_ids"]) == len(row["titles"]) <= 4
    chapter = stem[:2]
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert {f"{chapter}_map.png", f"{chapter}_failures.png"} <= figures
    examples = read_jsonl(run_dir / "examples" / f"{stem}.jsonl")
    assert len(examples) >= 3 and all(e["model"] == smoke_report.name for e in examples)
