"""Every model chapter runs with its own parameters cell (the quick preview, params/quick.yaml),
as Run All in JupyterLab or papermill without -f does; here on the tiny model, in order, so
chapters 7 and 8 find chapter 4's adapter. The baselines they compare with are the smoke
report's model-independent run (chapters 1 and 5, the session's ``smoke_report``): the same
code with the same baseline options (a test below keeps the two profiles' options alike), so
the suite runs those two chapters once."""

from __future__ import annotations

import re
import time

import nbformat
import papermill
import pytest

from llmrec.artifacts import read_json, read_jsonl
from llmrec.llm.learning_curve import CURVES
from llmrec.paths import in_repo, repo_root
from llmrec.recommenders.fusion import GRID
from llmrec.recommenders.ranker import setting_suffix
from llmrec.report.params import BASELINE_OPTIONS, RANKING, common_params, load_params

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COMMON = ("01_data", "05_baselines")  # model-independent: the smoke report's run serves


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory, smoke_report):
    root = tmp_path_factory.mktemp("quick")
    seconds = {}
    for nb in (p for p in NOTEBOOKS if p.stem not in COMMON):
        start = time.perf_counter()
        papermill.execute_notebook(
            str(nb), str(root / nb.name), kernel_name="python3", cwd=str(repo_root()),
            parameters={"model": "tiny-llama", "run_dir": str(root / "model"),
                        "common_dir": str(smoke_report.common)}, progress_bar=False)
        seconds[nb.stem] = time.perf_counter() - start
    return root, seconds


def test_the_smoke_reports_baselines_are_the_quick_previews():
    """The quick chapters above compare with the smoke report's baselines: the two profiles
    fit them alike, on the same split."""
    smoke = load_params(repo_root() / "params" / "smoke.yaml")
    quick = load_params(repo_root() / "params" / "quick.yaml")
    assert BASELINE_OPTIONS["smoke"] == BASELINE_OPTIONS["quick"]
    assert common_params(smoke)["splits"] == common_params(quick)["splits"]
    assert smoke["dataset"] == quick["dataset"] and smoke["seed"] == quick["seed"]


def test_every_chapter_runs_with_its_own_parameters(quick_runs):
    root, seconds = quick_runs
    assert set(seconds) == {p.stem for p in NOTEBOOKS if p.stem not in COMMON}
    quick = load_params(repo_root() / "params" / "quick.yaml")
    assert quick["profile"] == "quick" and quick["eval_limit"] == 24
    for stem in ("02_zero_shot", "04_lora_finetune", "07_beyond", "08_llm_with_cf"):
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
    by_setting = {m["setting"]: m for m in scored}
    # chapter 4's learning curve: a greedy row per point of the quick profile
    for n in CURVES["quick"]:
        assert by_setting[f"lora-compact-{n}/greedy"]["n_records"] == quick["eval_limit"]
    # chapter 8: the trained ranker and the fusion over one retriever, on the preview's test
    # records, and chapter 4's tuned model decoding with that retriever's prior on its sample
    # (the quick profile lists the ranker's titles without years: settings "-no-year")
    suffix = setting_suffix(RANKING["quick"]["with_year"])
    ranker = [s for s in by_setting if re.fullmatch(rf"lora-ranker-[a-z_]+/letters{suffix}", s)]
    assert len(ranker) == 1
    retriever = ranker[0].removeprefix("lora-ranker-").removesuffix(f"/letters{suffix}")
    letters, fused = by_setting[ranker[0]], by_setting[f"lora-ranker-{retriever}/fused{suffix}"]
    assert letters["with_year"] is RANKING["quick"]["with_year"]
    assert letters["n_records"] == fused["n_records"] == quick["eval_limit"]
    assert letters["retriever"] == fused["retriever"] == retriever and fused["weight"] in GRID
    assert letters["first_letter"] in "ABCDEFGHIJKLMNOPQRST" and 0 < letters["first_letter_share"] <= 1
    chance = [m for m in scored if m["setting"] == "top20-letter-order"]  # the ranker's chance level
    assert len(chance) == 1 and chance[0]["system"] == retriever
    assert chance[0]["n_records"] == quick["eval_limit"]
    prior = by_setting[f"lora/constrained-greedy+{retriever}-prior"]
    assert prior["n_records"] == RANKING["quick"]["generation_test"]
    assert prior["prior_valid_records"] == RANKING["quick"]["prior_valid"]
    figures = {p.name for p in (root / "model" / "figures").glob("08_*.png")}
    assert {"08_changes.png", "08_first_picks.png", f"08_paired_{retriever}.png"} <= figures


def test_chapter_9_scores_the_encoder_systems_on_the_preview_records(quick_runs):
    root, _ = quick_runs
    quick = load_params(repo_root() / "params" / "quick.yaml")
    scored = {(m["system"], m["setting"]): m
              for m in (read_json(p) for p in (root / "model").glob("*/temporal/metrics.json"))}
    name = quick["name"]
    for setting in ("encoder/similarity", "encoder/fused-ease", "encoder/fused-sasrec",
                    "encoder/sasrec-init", "encoder/sasrec-init-shuffled"):
        assert scored[(name, setting)]["n_records"] == quick["eval_limit"], setting
    similarity = scored[(name, "encoder/similarity")]
    assert similarity["pooling"] in ("mean", "last") and similarity["layer"] >= 1
    assert similarity["text"] == "title"  # the quick profile encodes titles only
    assert scored[("minilm", "encoder/similarity-title")]["n_records"] == quick["eval_limit"]
    assert scored[(name, "encoder/fused-ease")]["retriever"] == "ease"
    assert scored[(name, "encoder/sasrec-init-shuffled")]["item_init"] == "item vectors, shuffled across items"
    figures = {p.name for p in (root / "model" / "figures").glob("09_*.png")}
    assert {"09_choice.png", "09_map.png", "09_fusion.png", "09_sasrec_init.png",
            "09_slice_items.png", "09_slice_users.png", "09_lists.png"} <= figures


def test_chapter_10_asks_every_size_question_on_the_same_records(quick_runs):
    root, _ = quick_runs
    quick = load_params(repo_root() / "params" / "quick.yaml")
    scored = {m["setting"]: m for m in (read_json(p) for p in (root / "model").glob("*/temporal/metrics.json"))
              if m["setting"].startswith("size/")}
    questions = {m["question"]: m for m in scored.values()}
    assert set(questions) == {"zero-shot", "few-shot", "scorer", "encoder"}
    assert {m["n_records"] for m in questions.values()} == {quick["eval_limit"]}
    assert questions["scorer"]["retriever"] == "sasrec" and questions["scorer"]["n_candidates"] == 20
    assert questions["encoder"]["text"] == "title" and questions["encoder"]["layer"] >= 0
    # the same records for every question (the seeded sample of eval_limit)
    ids = {q: frozenset(r["record_id"] for r in read_jsonl(in_repo(m["predictions"]))) for q, m in questions.items()}
    assert len(set(ids.values())) == 1
    figures = {p.name for p in (root / "model" / "figures").glob("10_*.png")}
    assert {"10_paired.png", "10_size_trend.png"} <= figures
    nb = nbformat.read(root / "10_model_size.ipynb", as_version=4)
    found = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "text/markdown" in o.get("data", {})]
    assert found and "LoRA step" in found[-1]["data"]["text/markdown"]  # the conclusion, computed
