"""Every chapter runs with its own parameters cell (the quick preview, params/quick.yaml), as
Run All in JupyterLab or papermill without -f does; here on the tiny model, in order, so
chapter 7 finds chapter 4's adapter and every chapter the baselines of chapter 5."""

from __future__ import annotations

import time

import nbformat
import papermill
import pytest

from llmrec.artifacts import read_json
from llmrec.params import load_params
from llmrec.paths import repo_root

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COMMON = ("01_data", "05_baselines")


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("quick")
    order = sorted(NOTEBOOKS, key=lambda p: (p.stem not in COMMON, p.stem))  # 01, 05 first
    seconds = {}
    for nb in order:
        run_dir = root / ("common" if nb.stem in COMMON else "model")
        start = time.perf_counter()
        papermill.execute_notebook(
            str(nb), str(root / nb.name), kernel_name="python3", cwd=str(repo_root()),
            parameters={"model": "tiny-llama", "run_dir": str(run_dir),
                        "common_dir": str(root / "common")}, progress_bar=False)
        seconds[nb.stem] = time.perf_counter() - start
    return root, seconds


def test_every_chapter_runs_with_its_own_parameters(quick_runs):
    root, seconds = quick_runs
    assert set(seconds) == {p.stem for p in NOTEBOOKS}
    quick = load_params(repo_root() / "params" / "quick.yaml")
    assert quick["profile"] == "quick" and quick["eval_limit"] == 24
    for stem in ("02_zero_shot", "04_lora_finetune", "07_beyond"):
        nb = nbformat.read(root / f"{stem}.ipynb", as_version=4)
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.get("outputs", []))
        assert "Quick preview" in text and "make report" in text  # the chapter says so first
    scored = [read_json(p) for p in (root / "model").glob("*/temporal/metrics.json")]
    assert scored and all(m["n_records"] <= quick["eval_limit"] for m in scored)
    assert {m["setting"] for m in scored} >= {"zero-shot/greedy", "few-shot-2/greedy",
                                               "lora/greedy", "lora/beam4"}
    beams = [m for m in scored if "beam" in m["setting"]]
    assert beams and all(m["n_records"] <= quick["beam_limit"] for m in beams)
