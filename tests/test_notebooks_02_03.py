"""Notebooks 02 (zero-shot) and 03 (few-shot) run under papermill on the tiny model and
write what PROTOCOL.md section 7 fixes: predictions and metrics per setting, figures."""

from __future__ import annotations

import papermill
import pytest

from llmrec.artifacts import read_json, read_jsonl
from llmrec.paths import repo_root

NOTEBOOKS = repo_root() / "notebooks"


def _run(tmp_path, stem, **extra):
    run_dir = tmp_path / "runs" / "tiny"
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{stem}.ipynb"), str(tmp_path / f"{stem}.ipynb"),
        parameters=dict(name="tiny", model="tiny-llama", run_dir=str(run_dir), eval_limit=8,
                        splits=["temporal"], batch_size=8, max_new_tokens=12, presets=["greedy"],
                        seed=0, **extra),
        kernel_name="python3", cwd=str(repo_root()), progress_bar=False,
    )
    return run_dir


@pytest.mark.parametrize("stem,setting,n_shots", [("02_zero_shot", "zero-shot-greedy", 2),
                                                  ("03_few_shot", "few-shot-1-greedy", 1)])
def test_notebook_writes_scored_predictions(tmp_path, stem, setting, n_shots):
    run_dir = _run(tmp_path, stem, n_shots=n_shots)
    folder = run_dir / f"tiny__{setting}" / "temporal"
    metrics = read_json(folder / "metrics.json")
    rows = read_jsonl(folder / "predictions.jsonl.gz")
    assert metrics["n_records"] == 8 and len(rows) == 8
    assert metrics["system"] == "tiny" and metrics["split"] == "temporal"
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
    assert len(examples) >= 3 and all(e["model"] == "tiny" for e in examples)
