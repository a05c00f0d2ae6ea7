"""Nothing a user runs loses the report.

A partial rerun merges into the committed ``reports/`` (tried on a copy of it) and keeps every
row, predictions file, figure and executed chapter it did not remake; a chapter that fails
leaves its previous result in place; a run folder in use by another report is refused; a
parameter file that needs a GPU is skipped where there is none; Ctrl-C ends the kernels and
exits with one line.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from llmrec.artifacts import read_json, read_jsonl, save_system_run, write_json
from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import score
from llmrec.report.results import aggregate, verify_table
from llmrec.report.runner import (
    INTERRUPTED,
    LOCK,
    REPORT_PROFILES,
    needs_gpu,
    run_report,
    runnable,
    take_lock,
)

ROOT = Path(__file__).resolve().parent.parent

# A stand-in chapter: six records scored by the real metrics, written the one way.
WRITE = '''
from llmrec.artifacts import save_system_run
from llmrec.evaluation.metrics import score
rows = [{"record_id": f"{u}-0", "target_ids": [1, 2, 3, 4], "predicted_ids": [__SHIFT__ + u, 2, 7, 8]}
        for u in range(6)]
save_system_run(P["run_dir"], P["name"], "zero-shot/greedy", "temporal", rows,
                score(rows, k_values=(4,), catalog_size=50))
'''


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('name = "x"\nrun_dir = "runs/dev"\nprofile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("from llmrec.report.params import collect\n"
                                                  "P = collect(globals())"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _params_file(folder: Path, name: str, extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nmodel: tiny-llama\nprofile: smoke\nsplits: [temporal]\n{extra}")
    return path


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- a partial rerun merges into the committed report -------------------------------------

def _fake_run(out_root: Path, run: str, chapter: str, systems: list[tuple[str, str]]) -> Path:
    """A run folder with one completed chapter that wrote ``systems`` (system, setting) on six
    of the temporal split's records, and its executed notebook; as a report run leaves it."""
    run_dir = out_root / run
    (run_dir / "notebooks").mkdir(parents=True)
    write_json(run_dir / "run.json", {"params": {"name": run, "profile": "cpu", "model": run}})
    metrics = []
    committed = ROOT / "reports/predictions/common-ml-100k-cpu/popularity__baseline/temporal"
    for system, setting in systems:  # six real test records, with lists of their own
        rows = [{**r, "predicted_ids": list(reversed(r["predicted_ids"]))}
                for r in read_jsonl(committed / "predictions.jsonl.gz")[:6]]
        save_system_run(run_dir, system, setting, "temporal", rows,
                        score(rows, k_values=(4, 10), catalog_size=50), extra={"catalog_size": 50})
        metrics += [str(p.relative_to(run_dir)) for p in run_dir.glob("*/temporal/metrics.json")]
    _notebook(run_dir / "notebooks" / f"{chapter}.ipynb", 'print("rerun")')
    write_json(run_dir / "notebooks" / f".{chapter}.done.json",
               {"hash": "x", "seconds": 6.0, "metrics": sorted(set(metrics)), "figures": [],
                "finished_utc": "2030-01-01T00:00:00Z", "git_commit": "feedbeef00"})
    return run_dir


def test_a_partial_rerun_merges_into_the_committed_report_and_loses_nothing(tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "reports", reports)
    before = _files(reports)
    old = pd.read_csv(reports / "results.csv")
    assert len(old) > 20 and "smollm2-135m-long" in set(old["run"])  # a run not in runs/
    # a rerun of chapter 05 alone, in a clone whose runs/ holds nothing else
    runs = tmp_path / "runs"
    _fake_run(runs, "common-ml-100k-cpu", "05_baselines", [("popularity", "baseline")])
    res = aggregate(runs, reports, profiles=REPORT_PROFILES)
    assert res["n_new"] == 1 and res["n_rows"] == len(old)
    new = pd.read_csv(reports / "results.csv")
    key = ["system", "setting", "split"]
    assert set(map(tuple, new[key].to_numpy())) == set(map(tuple, old[key].to_numpy()))
    merged = new.set_index(key)
    untouched = old.set_index(key).drop(("popularity", "baseline", "temporal"))
    pd.testing.assert_frame_equal(merged.loc[untouched.index, untouched.columns], untouched,
                                  check_dtype=False)
    fresh = new[(new["system"] == "popularity") & (new["split"] == "temporal")]
    assert fresh["n_records"].tolist() == [6] and str(tmp_path) in fresh["predictions"].iloc[0]
    assert (verify_table(fresh)["mismatches"] == "").all()
    after = _files(reports)
    # every file stays; only the table, its summaries, the timings, the summary figures, and
    # the rerun chapter's own notebook and predictions file changed
    assert set(before) <= set(after)
    changed = {f for f in before if before[f] != after[f]}
    own = {"notebooks/common-ml-100k-cpu/05_baselines.ipynb",
           "predictions/common-ml-100k-cpu/popularity__baseline/temporal/predictions.jsonl.gz"}
    assert own <= changed <= own | {"results.csv", "results.md", "headline.md", "timings.md",
                                    "figures/summary_blog_vs_ours.png", "figures/size_trend.png"}
    timings = (reports / "timings.md").read_text()
    assert "| common-ml-100k-cpu | 05_baselines | 0.1 | 2030-01-01T00:00:00Z | feedbeef00 |" in timings
    assert "| smollm2-135m | 08_llm_with_cf |" in timings  # other runs' lines stay
    assert not [p for p in reports.rglob("*") if p.name.endswith(".tmp")]

    # a rerun of chapter 01 (no rows) changes no row and deletes nothing
    again = tmp_path / "runs-01"
    _fake_run(again, "common-ml-100k-cpu", "01_data", [])
    res = aggregate(again, reports, profiles=REPORT_PROFILES)
    assert res["n_new"] == 0 and res["n_rows"] == len(old)
    assert set(_files(reports)) >= set(after)
    pd.testing.assert_frame_equal(pd.read_csv(reports / "results.csv"), new)


def test_aggregating_nothing_leaves_the_reports_folder_as_it_was(tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "reports", reports)
    before = _files(reports)
    assert aggregate(tmp_path / "no-runs", reports, profiles=REPORT_PROFILES) is None
    assert _files(reports) == before


# --- a failing rerun keeps the previous result ----------------------------------------------

def test_a_failing_rerun_keeps_the_previous_notebook_marker_and_row(tmp_path, capsys, monkeypatch):
    from llmrec.cli import main
    from llmrec.report import runner

    folder = tmp_path / "notebooks"
    folder.mkdir()
    chapter = _notebook(folder / "02_zero_shot.ipynb", WRITE.replace("__SHIFT__", "0"))
    files = [_params_file(tmp_path, "a")]
    out, reports = tmp_path / "runs", tmp_path / "reports"
    first = run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder)
    assert [c["status"] for c in first["chapters"]] == ["ok"]
    nbs = out / "a" / "notebooks"
    kept = {p: p.read_bytes() for p in (nbs / "02_zero_shot.ipynb", nbs / ".02_zero_shot.done.json")}
    table = pd.read_csv(reports / "results.csv")

    # the chapter changes, rewrites its system with other numbers, then fails
    _notebook(chapter, WRITE.replace("__SHIFT__", "10") + 'raise ValueError("boom")\n')
    with monkeypatch.context() as m:
        m.setattr(runner, "run_report",
                  lambda *a, **k: run_report(*a, **{**k, "notebooks_dir": folder}))
        code = main(["report", str(files[0]), "--out", str(out), "--reports", str(reports)])
    printed = capsys.readouterr()
    assert code == 1, printed
    assert re.search(r"^FAILED a/02_zero_shot: ValueError: boom \(cell \d+\); previous result kept$",
                     printed.out, re.M), printed.out
    assert re.search(r"^a/02_zero_shot: failed in .* \(previous result kept\)$", printed.out, re.M)
    assert {p: p.read_bytes() for p in kept} == kept  # notebook and marker as they were
    assert "ValueError" in (nbs / "02_zero_shot.failed.ipynb").read_text()
    assert not (nbs / "02_zero_shot.running.ipynb").exists()
    pd.testing.assert_frame_equal(pd.read_csv(reports / "results.csv"), table)
    assert (verify_table(table[table["setting"] != "published"])["mismatches"] == "").all()
    # merging again from the runs: the failed rerun's files are not vouched for by the marker
    res = aggregate(out, reports, profiles=["smoke"])
    assert res["n_new"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(reports / "results.csv"), table)

    # fixed: the rerun completes, replaces the row and the notebook, the failed copy goes
    _notebook(chapter, WRITE.replace("__SHIFT__", "10"))
    fixed = run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder)
    assert [c["status"] for c in fixed["chapters"]] == ["ok"]
    assert not (nbs / "02_zero_shot.failed.ipynb").exists()
    now = pd.read_csv(reports / "results.csv")
    row = now[now["system"] == "a"]
    assert len(row) == 1 and row["map_at_4"].iloc[0] != table.loc[table["system"] == "a", "map_at_4"].iloc[0]
    assert (verify_table(row)["mismatches"] == "").all()


# --- one report per run folder ----------------------------------------------------------------

def test_a_run_folder_in_use_is_refused_before_any_work_and_a_dead_holder_is_taken_over(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "02_zero_shot.ipynb", WRITE.replace("__SHIFT__", "0"))
    files = [_params_file(tmp_path, "a")]
    out, reports = tmp_path / "runs", tmp_path / "reports"
    (out / "a").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_json(out / "a" / LOCK, {"pid": holder.pid, "host": socket.gethostname(),
                                      "started_utc": "2030-01-01T00:00:00Z"})
        with pytest.raises(LlmrecError, match=rf"{out / 'a'} is in use by process {holder.pid}"):
            run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder)
        assert not (out / "a" / "run.json").exists() and not reports.exists()  # nothing ran
    finally:
        holder.kill()
        holder.wait()
    # its process has ended: the lock is stale, taken over, and released after the run
    summary = run_report(files, out_root=out, reports_out=reports, notebooks_dir=folder)
    assert [c["status"] for c in summary["chapters"]] == ["ok"]
    assert not (out / "a" / LOCK).exists()
    # within one process, the same folder twice: the second is refused
    lock = take_lock(out / "a")
    try:
        assert read_json(lock)["pid"] == os.getpid()
        with pytest.raises(LlmrecError, match=f"in use by process {os.getpid()}"):
            take_lock(out / "a")
    finally:
        lock.unlink()


# --- hardware -----------------------------------------------------------------------------

def test_a_file_that_needs_a_gpu_is_skipped_where_there_is_none(tmp_path):
    cpu = {"name": "a", "device": "auto", "quantization": None, "hardware": "CPU, 2 cores"}
    gpu = {"name": "big", "device": "cuda", "quantization": None, "hardware": "1 GPU with 40 GB"}
    nf4 = {**cpu, "name": "nf4", "quantization": "4bit"}
    assert [needs_gpu(p) for p in (cpu, gpu, nf4)] == [False, True, True]
    kept, skipped = runnable([cpu, gpu, nf4], has_gpu=lambda: False)
    assert kept == [cpu] and skipped == [
        "skipped: big needs a GPU (1 GPU with 40 GB) and torch sees none",
        "skipped: nf4 needs a GPU (CPU, 2 cores) and torch sees none"]
    assert runnable([cpu, gpu], has_gpu=lambda: True) == ([cpu, gpu], [])
    asked = []
    assert runnable([cpu], has_gpu=lambda: asked.append(1) or False) == ([cpu], [])
    assert not asked  # torch is not imported when no file needs a GPU
    only_gpu = _params_file(tmp_path, "big", "device: cuda\n")
    with pytest.raises(LlmrecError, match="needs a GPU and torch sees none"):
        run_report([only_gpu], out_root=tmp_path / "runs", has_gpu=lambda: False)
    assert not (tmp_path / "runs").exists()


def test_report_help_says_what_it_writes(capsys):
    from llmrec.cli import main

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("into runs/<name>/", "merge the completed runs into reports/",
                   "generated blocks of README.md", "<out>/smoke-reports/",
                   "skipped, with one line, where torch sees no CUDA device"):
        assert phrase in text, phrase


# --- Ctrl-C ---------------------------------------------------------------------------------

# The report as a terminal runs it: with Python's own Ctrl-C handler. A process started in
# the background by a shell without job control (`make test &`, some CI runners) inherits
# SIGINT ignored, and Python then installs no handler: Ctrl-C could not reach it there.
DRIVER = """
import signal
import sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from llmrec.cli import main
from llmrec.report import runner
real = runner.run_report
runner.run_report = lambda *a, **k: real(*a, **{**k, "notebooks_dir": sys.argv[1]})
sys.exit(main(["report", sys.argv[2], "--out", sys.argv[3], "--reports", sys.argv[4]]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_ends_the_kernel_keeps_completed_chapters_and_prints_one_line(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_data.ipynb", 'print("quick")')
    pid_file = tmp_path / "kernel.pid"
    _notebook(folder / "02_zero_shot.ipynb",
              f'import os, time\nopen({str(pid_file)!r}, "w").write(str(os.getpid()))\n'
              'time.sleep(120)')
    params, out = _params_file(tmp_path, "a"), tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(folder), str(params), str(out),
                             str(tmp_path / "reports")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        kernel = int(pid_file.read_text())
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Kernel died" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == INTERRUPTED
    assert "a/02_zero_shot: interrupted" in stdout
    deadline = time.monotonic() + 10
    while _alive(kernel) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(kernel)  # the kernel was shut down
    common = out / "common-ml-100k-smoke" / "notebooks"
    assert (common / ".01_data.done.json").is_file() and (common / "01_data.ipynb").is_file()
    assert not (out / "a" / "notebooks" / ".02_zero_shot.done.json").exists()
    assert not list(out.rglob(LOCK))  # the locks were released
