"""The report command: papermill runs per parameter file, failures, resume, aggregation.

Two parts. Small stand-in chapters (built here, each a few lines) check the machinery fast:
a model-independent chapter runs once for two parameter files, a chapter that raises is
reported by name with its error while the others go on and none of its rows reach the
table, and a rerun skips what completed. Then the real report runs end to end on
``params/smoke.yaml`` (the tiny random model) with whatever chapters ``notebooks/`` holds,
and every number of its results table must recompute from its predictions file.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from llmrec.errors import LlmrecError
from llmrec.recommenders.ranker import setting_suffix
from llmrec.report.params import CHAPTERS, RANKING
from llmrec.report.runner import notebooks_in, plan, run_report, select_chapters

ROOT = Path(__file__).resolve().parent.parent
SECTION7 = ["system", "split", "n_records", "map_at_4", "map_at_4_low", "map_at_4_high",
            "hallucination_rate", "predictions"]

# A stand-in chapter body: a few records scored by the real metrics and written the one way.
WRITE_SYSTEM = '''
from pathlib import Path
from llmrec.artifacts import save_system_run
from llmrec.evaluation.metrics import score
rows = [{"record_id": f"{u}-0", "target_ids": [1, 2, 3, 4],
         "predicted_ids": [__SHIFT__ + u, 2, None, [3, 9]], "titles": ["a", "b", "c", "d"]}
        for u in range(6)]
metrics = score(rows, k_values=(4,), catalog_size=50, item_popularity=None, n_titles_expected=4)
save_system_run(P["run_dir"], __SYSTEM__, "__SETTING__", "temporal", rows, metrics)
(Path(P["run_dir"]) / "figures" / "__STEM__.png").write_bytes(b"not really a png")
'''


def _writer(shift: int, system: str, setting: str, stem: str) -> str:
    return (WRITE_SYSTEM.replace("__SHIFT__", str(shift)).replace("__SYSTEM__", system)
            .replace("__SETTING__", setting).replace("__STEM__", stem))


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('name = "x"\nrun_dir = "runs/dev"\nprofile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("A stand-in chapter."), params,
                nbformat.v4.new_code_cell("from llmrec.report.params import collect\nP = collect(globals())"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def fake_chapters(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_data.ipynb", 'print("data chapter for", P["name"])')
    _notebook(folder / "02_zero_shot.ipynb",
              _writer(0, 'P["name"]', "zero-shot/greedy", "02"))
    _notebook(folder / "03_few_shot.ipynb",
              _writer(1, 'P["name"]', "boom/greedy", "03")
              + '\nraise ValueError("boom on purpose")\n')
    _notebook(folder / "05_baselines.ipynb",
              _writer(2, '"popularity"', "baseline", "05"))
    files = []
    for name in ("a", "b"):
        f = tmp_path / f"{name}.yaml"
        f.write_text(f"name: {name}\nmodel: tiny-llama\nprofile: smoke\nsplits: [temporal]\n")
        files.append(f)
    return folder, files


def _assert_recomputes(table: pd.DataFrame) -> None:
    """Every metric of every row equals what llmrec.report.results.recompute gets from its file."""
    from llmrec.report.results import verify_table

    table = table[table["setting"] != "published"]  # quoted from the blog: nothing to recompute
    for row in table.to_dict("records"):
        assert (ROOT / row["predictions"]).is_file() or Path(row["predictions"]).is_file()
    checked = verify_table(table)
    assert (checked["mismatches"] == "").all(), checked[checked["mismatches"] != ""]
    assert (checked["compared"] >= 5).all()


def test_chapter_selection():
    paths = [Path(f"{s}.ipynb") for s in ("01_data", "02_zero_shot", "04_lora_finetune")]
    chosen, missing = select_chapters(paths, ["02", 4, "zero_shot", "07", "08"])
    assert [p.stem for p in chosen] == ["02_zero_shot", "04_lora_finetune"]
    assert missing == ["07_beyond", "08_llm_with_cf"]
    chosen, missing = select_chapters(paths, None)
    assert len(chosen) == 3 and "01_data" not in missing
    assert {"05_baselines", "08_llm_with_cf"} <= set(missing)


@pytest.mark.parametrize("wrong", ["99", "zero_shto", "11"])
def test_a_chapter_that_does_not_exist_is_an_error_before_any_work(tmp_path, fake_chapters, wrong):
    folder, files = fake_chapters
    with pytest.raises(LlmrecError, match=f"no chapter '{wrong}'.*01_data"):
        run_report(files, out_root=tmp_path / "runs", reports_out=tmp_path / "reports",
                   notebooks_dir=folder, chapters=["02", wrong])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "reports").exists()


def test_a_stray_numbered_notebook_is_not_a_chapter(tmp_path, fake_chapters, capsys):
    """A scratch copy ``02_try.ipynb`` beside the chapters is neither run, nor published, nor
    selected by ``--chapters 02``; one line says it is ignored."""
    folder, files = fake_chapters
    _notebook(folder / "02_try.ipynb", _writer(3, 'P["name"]', "zero-shot/greedy", "02"))
    assert [p.stem for p in notebooks_in(folder)] == ["01_data", "02_zero_shot", "03_few_shot",
                                                      "05_baselines"]
    summary = run_report(files[:1], out_root=tmp_path / "runs", reports_out=tmp_path / "reports",
                         notebooks_dir=folder, chapters=["02"])
    assert [(c["run"], c["chapter"], c["status"]) for c in summary["chapters"]] == [
        ("a", "02_zero_shot", "ok")]
    assert "ignored: 02_try.ipynb is not a chapter" in capsys.readouterr().out
    assert not list((tmp_path / "runs").rglob("02_try*"))
    assert not list((tmp_path / "reports").rglob("02_try*"))
    table = pd.read_csv(tmp_path / "reports" / "results.csv")
    row = table[(table["system"] == "a") & (table["setting"] == "zero-shot/greedy")]
    assert len(row) == 1
    _assert_recomputes(row)  # chapter 02's own predictions (shift 0), not the stray's


def test_the_expected_chapters_are_the_notebooks():
    assert CHAPTERS[-1] == "10_model_size"
    assert [p.stem for p in notebooks_in(ROOT / "notebooks")] == CHAPTERS


def test_every_file_is_validated_before_anything_runs(tmp_path, fake_chapters):
    folder, files = fake_chapters
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbatch_sise: 4\n")
    with pytest.raises(LlmrecError, match="batch_sise"):
        run_report([*files, bad], out_root=tmp_path / "runs", reports_out=tmp_path / "reports",
                   notebooks_dir=folder)
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_common_chapters_run_once(tmp_path, fake_chapters):
    folder, files = fake_chapters
    tasks, missing = plan(files, tmp_path / "runs", None, folder)
    runs = [(t[0], t[3].stem) for t in tasks]
    assert runs.count(("common-ml-100k-smoke", "01_data")) == 1
    assert runs.count(("common-ml-100k-smoke", "05_baselines")) == 1
    assert ("a", "02_zero_shot") in runs and ("b", "02_zero_shot") in runs
    assert {m["chapter"] for m in missing} >= {"04_lora_finetune", "06_decoding", "07_beyond",
                                               "08_llm_with_cf"}


def test_failure_is_reported_others_go_on_and_rerun_resumes(tmp_path, fake_chapters):
    folder, files = fake_chapters
    out, reports = tmp_path / "runs", tmp_path / "reports"
    summary = run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder)
    status = {(c["run"], c["chapter"]): c for c in summary["chapters"]}
    assert len(status) == 6  # 2 common + 2 x 2 per model
    failed = {(c["run"], c["chapter"]) for c in summary["failed"]}
    assert failed == {("a", "03_few_shot"), ("b", "03_few_shot")}
    assert "ValueError: boom on purpose" in status[("a", "03_few_shot")]["error"]
    assert all(c["status"] == "ok" for k, c in status.items() if k not in failed)
    # run folders: executed notebooks, figures, run.json with per-notebook wall time
    assert (out / "a" / "notebooks" / "02_zero_shot.ipynb").is_file()
    # the failed chapter's notebook is kept, with the error in it, under a name of its own
    assert (out / "a" / "notebooks" / "03_few_shot.failed.ipynb").is_file()
    assert not (out / "a" / "notebooks" / "03_few_shot.ipynb").exists()
    assert not (out / "a" / "notebooks" / ".03_few_shot.done.json").exists()
    from llmrec.artifacts import read_json

    info = read_json(out / "a" / "run.json")
    assert info["notebooks"]["02_zero_shot"]["status"] == "ok"
    assert info["notebooks"]["02_zero_shot"]["seconds"] > 0
    assert info["notebooks"]["03_few_shot"]["status"] == "failed"
    assert info["params"]["name"] == "a" and info["versions"]["papermill"]
    # the table: completed chapters only (boom wrote a system before raising: not in it), and
    # the blog's published rows, quoted
    table = pd.read_csv(reports / "results.csv")
    table = table[table["setting"] != "published"]
    assert set(zip(table["system"], table["setting"], strict=True)) == {
        ("a", "zero-shot/greedy"), ("b", "zero-shot/greedy"), ("popularity", "baseline")}
    assert all(c in table.columns for c in SECTION7)
    assert (table["n_records"] == 6).all()
    assert "popularity" in (reports / "results.md").read_text()
    for rel in table["predictions"]:  # copied beside the table, not pointing into runs/
        assert Path(rel).is_absolute() or (ROOT / rel).is_file()
        assert str(reports) in str(Path(rel) if Path(rel).is_absolute() else ROOT / rel)
    _assert_recomputes(table)
    assert (reports / "figures" / "summary_blog_vs_ours.png").stat().st_size > 10_000
    assert (reports / "figures" / "size_trend.png").is_file()
    assert (reports / "figures" / "a" / "02.png").is_file()
    assert not (reports / "figures" / "a" / "03.png").exists()  # from the failed chapter

    # rerun: completed notebooks are skipped, the failing one is tried again
    again = run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder)
    st = {(c["run"], c["chapter"]): c["status"] for c in again["chapters"]}
    assert st[("a", "02_zero_shot")] == st[("common-ml-100k-smoke", "01_data")] == "skipped"
    assert st[("a", "03_few_shot")] == "failed"
    assert len(pd.read_csv(reports / "results.csv")) == 3 + 5  # and the blog's five
    # a changed parameter reruns what depends on it
    files[0].write_text(files[0].read_text() + "seed: 1\n")
    third = run_report(files[:1], out_root=out, reports_out=reports, notebooks_dir=folder,
                       chapters=["02"])
    assert [c["status"] for c in third["chapters"]] == ["ok"]


def test_jobs_run_models_side_by_side_with_the_common_chapters(tmp_path, fake_chapters, monkeypatch):
    """``jobs=2``: the common chapters head the first chain while the second chain starts,
    each kernel told its share of the cores through $LLMREC_THREADS; a chapter that waits
    for the baselines (as reference lines do) finds them written; same table as one at a time."""
    import os

    folder, files = fake_chapters
    # chain a's last chapter waits (reading the share file, as running kernels do) until
    # chain b has ended: the order is fixed, not left to which chain happens to be faster
    _notebook(folder / "04_lora_finetune.ipynb",
              'import os, time\nfrom pathlib import Path\nfrom llmrec.side_by_side import wait_for_common\n'
              'common = Path(P["run_dir"]).parent / "common-ml-100k-smoke"\n'
              'wait_for_common(common, poll=0.05)\n'
              'from llmrec.artifacts import system_dir\n'
              'found = (system_dir(common, "popularity", "baseline", "temporal") / "metrics.json").is_file()\n'
              '(Path(P["run_dir"]) / "baselines.txt").write_text(str(found))\n'
              'threads = os.environ.get("LLMREC_THREADS", "unset")\n'
              'if P["name"] == "a":\n'
              '    share, cores = Path(os.environ["LLMREC_THREADS_FILE"]), str(os.cpu_count() or 1)\n'
              '    deadline = time.monotonic() + 120\n'
              '    while share.read_text().strip() != cores and time.monotonic() < deadline:\n'
              '        time.sleep(0.05)\n'
              '    threads = share.read_text().strip()\n'
              '(Path(P["run_dir"]) / "threads.txt").write_text(threads)')
    monkeypatch.delenv("LLMREC_THREADS", raising=False)
    out, reports = tmp_path / "runs", tmp_path / "reports"
    summary = run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder, jobs=2)
    order = [(c["run"], c["chapter"]) for c in summary["chapters"]]
    assert len(order) == 8
    first_chain = [c for r, c in order if r in ("common-ml-100k-smoke", "a")]
    assert first_chain[:2] == ["01_data", "05_baselines"]  # the common chapters head chain a
    assert (out / "a" / "baselines.txt").read_text() == "True" == (out / "b" / "baselines.txt").read_text()
    assert not (out / "common-ml-100k-smoke" / ".running.json").exists()  # the mark is gone
    assert not (out / ".threads").exists() and "LLMREC_THREADS_FILE" not in os.environ
    assert {(c["run"], c["chapter"]) for c in summary["failed"]} == {("a", "03_few_shot"), ("b", "03_few_shot")}
    # b's last kernel started while a still ran (a's last chapter waits for b to end): it
    # inherited half the cores; once b ended, a's running kernel was handed all of them
    assert (out / "b" / "threads.txt").read_text() == str(max(1, (os.cpu_count() or 1) // 2))
    assert (out / "a" / "threads.txt").read_text() == str(os.cpu_count() or 1)
    table = pd.read_csv(reports / "results.csv")
    ours = table[table["setting"] != "published"]  # the blog's rows are quoted, not run
    assert set(zip(ours["system"], ours["setting"], strict=True)) == {
        ("a", "zero-shot/greedy"), ("b", "zero-shot/greedy"), ("popularity", "baseline")}
    assert (table["setting"] == "published").sum() == 5 and table.loc[
        table["setting"] == "published", "predictions"].isna().all()
    _assert_recomputes(ours)
    # the headline table, grouped by records, and where the time went
    head = (reports / "headline.md").read_text()
    assert "**On every test record (6)**" in head and "| popularity | baseline |" in head
    assert "| LLaMA 30B | 32.5 B | 0.021 |" in head
    timings = (reports / "timings.md").read_text()
    assert "| a | 02_zero_shot |" in timings and "03_few_shot" not in timings  # completed chapters only
    # `python -m llmrec results verify`: every number agrees; a tampered one is named
    from llmrec.report.results import verify

    checked = verify(reports / "results.csv")
    assert (checked["mismatches"] == "").all() and (checked["compared"] >= 5).all()
    table.loc[0, "map_at_4"] += 0.5
    table.to_csv(reports / "tampered.csv", index=False)
    assert verify(reports / "tampered.csv").loc[0, "mismatches"].startswith("map_at_4")
    with pytest.raises(LlmrecError, match="jobs"):
        run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder, jobs=0)


def test_cli_reports_failure_with_exit_code(tmp_path, fake_chapters, capsys, monkeypatch):
    """``python -m llmrec report`` prints the failing chapter with its error and exits 1."""
    from llmrec.cli import main
    from llmrec.report import runner as report

    folder, files = fake_chapters
    real = report.run_report
    monkeypatch.setattr(report, "run_report",
                        lambda *a, **k: real(*a, **{**k, "notebooks_dir": folder}))
    code = main(["report", str(files[0]), "--chapters", "03", "--out", str(tmp_path / "r"),
                 "--reports", str(tmp_path / "rep")])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED a/03_few_shot: ValueError: boom on purpose" in out


REAL = notebooks_in(ROOT / "notebooks")


@pytest.mark.skipif(not REAL, reason="no chapter notebooks yet")
def test_smoke_report_end_to_end(smoke_report):
    """The whole report on params/smoke.yaml, with every chapter notebooks/ holds (run once
    for the session: the chapter tests read its outputs too)."""
    out, reports, summary = smoke_report.runs, smoke_report.reports, smoke_report.summary
    assert not summary["failed"], summary["failed"]
    ran = {c["chapter"] for c in summary["chapters"]}
    assert ran == {p.stem for p in REAL}
    table = pd.read_csv(reports / "results.csv")
    assert len(table) and all(c in table.columns for c in SECTION7)
    assert "temporal" in set(table["split"])
    _assert_recomputes(table)
    # chapter 8's rows: the trained ranker and the fusion over one retriever, and chapter 4's
    # tuned model decoding constrained with that retriever's prior
    settings = set(table["setting"])
    suffix = setting_suffix(RANKING["smoke"]["with_year"])
    ranker = [s for s in settings if re.fullmatch(rf"lora-ranker-[a-z_]+/letters{suffix}", s)]
    assert len(ranker) == 1, settings
    retriever = ranker[0].removeprefix("lora-ranker-").removesuffix(f"/letters{suffix}")
    assert {f"lora-ranker-{retriever}/fused{suffix}", f"lora/constrained-greedy+{retriever}-prior"} <= settings
    assert "lora-seed1/greedy" in settings  # chapter 4's adapter trained with the file's other seed
    # every executed chapter published beside the table, figures inline, small enough to browse
    published = sorted((reports / "notebooks").glob("*/*.ipynb"))
    assert {p.stem for p in published} == {p.stem for p in REAL}
    for path in published:
        assert path.stat().st_size < 2_000_000, path
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert outputs and not any("\r" in o.get("text", "") for o in outputs)  # no progress redraws
        assert all(len(o.get("text", "").splitlines()) <= 60 for o in outputs)
    zero = nbformat.read(reports / "notebooks" / "smoke" / "02_zero_shot.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for c in zero.cells if c.cell_type == "code"
               for o in c.outputs)
    # resume: nothing runs the second time
    again = run_report([ROOT / "params" / "smoke.yaml"], out_root=out, reports_out=reports)
    assert {c["status"] for c in again["chapters"]} == {"skipped"}



def test_a_row_several_runs_made_alike_is_kept_once():
    from llmrec.report.results import drop_repeats

    row = {"system": "item_knn", "setting": "baseline/first-200", "split": "temporal",
           "n_records": 200, "map_at_4": 0.036, "map_at_4_low": 0.024, "map_at_4_high": 0.048,
           "hallucination_rate": 0.0, "validity": 1.0}
    table = pd.DataFrame([
        {**row, "predictions": "a/item_knn/predictions.jsonl.gz"},
        {**row, "predictions": "b/item_knn/predictions.jsonl.gz"},
        {**row, "system": "popularity", "setting": "baseline", "map_at_4": 0.02,
         "predictions": "c/popularity/predictions.jsonl.gz"},
        {**row, "split": "blog", "predictions": "d/item_knn/predictions.jsonl.gz"},
        {**row, "map_at_4": 0.05, "predictions": "e/item_knn/predictions.jsonl.gz"},
    ])
    kept = drop_repeats(table)
    assert list(kept["predictions"].str[0]) == ["a", "c", "d", "e"]  # a conflict stays visible


def test_a_chain_that_finishes_hands_its_cores_to_the_others(tmp_path, fake_chapters, monkeypatch):
    """Two chains on a 2-core machine get 1 thread each; once the short one finishes, the
    long one's next chapters start with both cores (the kernels read $LLMREC_THREADS)."""
    import os
    import threading
    import time

    from llmrec.report import runner

    folder, files = fake_chapters
    files[0].write_text(files[0].read_text() + 'chapters: ["02"]\n')
    files[1].write_text(files[1].read_text() + 'chapters: ["02", "03"]\n')
    monkeypatch.delenv("LLMREC_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    seen, lock, b_started = {}, threading.Lock(), threading.Event()

    def fake_execute(notebook, params, run_dir, resume=True):
        with lock:
            seen[(params["name"], notebook.stem)] = os.environ.get("LLMREC_THREADS")
            share = Path(os.environ["LLMREC_THREADS_FILE"])  # what running kernels follow
            seen[(params["name"], notebook.stem, "file")] = share.read_text()
        if params["name"] == "a":
            b_started.wait(10)  # both chains are running before a finishes
        if params["name"] == "b" and notebook.stem == "02_zero_shot":
            b_started.set()
            deadline = time.monotonic() + 10  # b's first chapter outlasts chain a
            while os.environ.get("LLMREC_THREADS") != "2" and time.monotonic() < deadline:
                time.sleep(0.01)
        return {"chapter": notebook.stem, "status": "ok", "seconds": 0.0, "error": None, "metrics": []}

    monkeypatch.setattr(runner, "execute_chapter", fake_execute)
    monkeypatch.setattr(runner, "aggregate", lambda *a, **k: None)
    run_report(files, out_root=tmp_path / "runs", reports_out=tmp_path / "reports",
               notebooks_dir=folder, jobs=2)
    assert seen[("a", "02_zero_shot")] == seen[("b", "02_zero_shot")] == "1"  # side by side
    assert seen[("b", "03_few_shot")] == "2"  # then b alone, with both cores
    assert seen[("b", "02_zero_shot", "file")] == "1" and seen[("b", "03_few_shot", "file")] == "2"
    assert "LLMREC_THREADS" not in os.environ  # nothing leaks past the report
