"""Running the report: the numbered notebooks with papermill, per parameter file.

``python -m llmrec report params/smollm2-135m.yaml params/gemma3-270m.yaml`` does, in order:

1. validates every parameter file (nothing runs if one is wrong);
2. for each file, executes the chapters ``notebooks/0*.ipynb`` in order with papermill into
   ``runs/<name>/``: executed notebooks in ``notebooks/``, figures in ``figures/``, one
   folder per evaluated system x setting x split (written by the notebooks through
   :func:`llmrec.artifacts.save_system_run`), and ``run.json`` (parameters, versions,
   commit, machine, wall time and status per notebook);
3. hands the completed runs to :func:`llmrec.report.results.aggregate` (the results table, the
   predictions it points to, the figures, the summaries).

Model-independent chapters (:data:`COMMON_CHAPTERS`: the data chapter and the baselines)
run once per dataset and profile, not once per model, into ``runs/common-<dataset>-<profile>/``
(with the dataset, seed, eval_limit and profile of the parameter file that first needs
them, and both splits outside the smoke profile); every model's report shares that run.
With ``--jobs`` > 1 they run at the head of the first file's chain, beside the other
chains' first chapters; a chapter that draws the baselines waits for them (:mod:`llmrec.side_by_side`), and once a chain finishes the
others take its cores in the middle of their current chapter.

Resume: a notebook that completed leaves a marker ``<run>/notebooks/.<chapter>.done.json``
holding a hash of its parameters and of the notebook's cells; a rerun with the same hash
skips it (``--no-resume`` runs everything again). Changes to the library itself are not in
the hash: rerun with ``--no-resume`` after editing ``llmrec/``.

A failing notebook is reported by name with its cell's error; the run's later chapters and
the other runs go on. The results table holds only systems written by notebooks that
completed (a marker lists the ``metrics.json`` files its notebook wrote); which runs are
aggregated: every run under the output folder whose profile is one of this invocation's.
A run of smoke-profile files only writes its table to ``<out>/smoke-reports/`` (unless told
otherwise), never over the committed ``reports/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from llmrec.artifacts import git_commit, read_json, run_info, write_json
from llmrec.errors import LlmrecError
from llmrec.paths import repo_root, runs_dir
from llmrec.report.params import PREVIEW_PROFILES, PROFILES, common_params, load_params
from llmrec.report.results import aggregate
from llmrec.side_by_side import THREADS_FILE_ENV, running, write_share

#: The chapters of the report, in order (a missing one is flagged, not fatal).
EXPECTED_CHAPTERS = ["01_data", "02_zero_shot", "03_few_shot", "04_lora_finetune",
                     "05_baselines", "06_decoding", "07_beyond", "08_llm_with_cf"]
#: The profiles whose runs make the committed report (``reports/``): every one but the previews.
REPORT_PROFILES = set(PROFILES) - set(PREVIEW_PROFILES)
#: Chapters that do not depend on the model (matched on the name after the number).
COMMON_CHAPTERS = {"data", "baselines"}


# --- chapters -------------------------------------------------------------------------------

def notebooks_in(folder: str | Path) -> list[Path]:
    """The numbered notebooks ``0*.ipynb`` of ``folder``, in order."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def _topic(stem: str) -> str:
    return stem.split("_", 1)[1] if "_" in stem else stem


def is_common(stem: str) -> bool:
    """True for a model-independent chapter (run once per dataset, in the common run)."""
    return _topic(stem) in COMMON_CHAPTERS


def _selector_matches(selector: Any, stem: str) -> bool:
    sel = str(selector).strip()
    if sel.isdigit():
        return stem.split("_", 1)[0] == sel.zfill(2)
    return stem == sel or _topic(stem) == sel or stem.startswith(sel)


def select_chapters(
    available: Sequence[Path], chapters: Iterable[Any] | None
) -> tuple[list[Path], list[str]]:
    """``(notebooks to run, selectors/expected chapters that have no notebook)``.

    ``chapters`` holds numbers (``2`` or ``"02"``), stems (``"02_zero_shot"``) or topics
    (``"zero_shot"``); None selects every notebook and flags the expected ones missing.
    """
    if chapters is None:
        stems = {p.stem for p in available}
        return list(available), [c for c in EXPECTED_CHAPTERS if c not in stems]
    chosen: list[Path] = []
    missing: list[str] = []
    for sel in chapters:
        hits = [p for p in available if _selector_matches(sel, p.stem)]
        if not hits:
            expected = [c for c in EXPECTED_CHAPTERS if _selector_matches(sel, c)]
            missing.append(expected[0] if expected else str(sel))
        chosen += [p for p in hits if p not in chosen]
    return sorted(chosen), missing


# --- runs -----------------------------------------------------------------------------------

def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _notebook_hash(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return _hash([(c.get("cell_type"), "".join(c.get("source", ""))) for c in nb.get("cells", [])])


def _products(run_dir: Path) -> dict[str, int]:
    """The run's ``metrics.json`` files and figures, with their modification times."""
    files = [*run_dir.glob("*/*/metrics.json"), *run_dir.glob("figures/*.png")]
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in files}


def _marker(run_dir: Path, stem: str) -> Path:
    return run_dir / "notebooks" / f".{stem}.done.json"


def _first_line(text: Any) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


class _QuietUnknownParameters:
    """Drop papermill's "Passed unknown parameter" warnings: every chapter gets the whole file
    on purpose (``collect`` picks the schema's keys), so they are expected, not news."""

    def filter(self, record) -> bool:
        return "Passed unknown parameter" not in record.getMessage()


def execute_chapter(
    notebook: Path, params: dict[str, Any], run_dir: Path, resume: bool = True
) -> dict[str, Any]:
    """Execute one notebook into ``run_dir`` with papermill; returns its status record.

    ``{"chapter", "status": "ok"|"skipped"|"failed", "seconds", "error", "metrics"}``; on
    failure ``error`` is ``"<ename>: <evalue>"`` of the failing cell. Never raises for a
    notebook's own error.
    """
    # papermill (with nbclient and the jupyter stack) takes seconds to import: only here,
    # not for every `python -m llmrec` command
    import papermill
    from papermill.exceptions import PapermillExecutionError

    pm_logger = logging.getLogger("papermill")
    if not any(isinstance(f, _QuietUnknownParameters) for f in pm_logger.filters):
        pm_logger.addFilter(_QuietUnknownParameters())

    stem = notebook.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "notebooks").mkdir(exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)
    injected = {**params, "run_dir": str(run_dir)}
    key = _hash({"params": injected, "notebook": _notebook_hash(notebook)})
    marker = _marker(run_dir, stem)
    if resume and marker.is_file():
        done = read_json(marker)
        if done.get("hash") == key:
            return {"chapter": stem, "status": "skipped", "seconds": done.get("seconds", 0.0),
                    "error": None, "metrics": done.get("metrics", [])}
    marker.unlink(missing_ok=True)  # a stale marker must not vouch for this run's files
    before = _products(run_dir)
    start = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(notebook), str(run_dir / "notebooks" / notebook.name), parameters=injected,
            kernel_name="python3", cwd=str(repo_root()), progress_bar=False,
        )
    except PapermillExecutionError as err:
        error = f"{err.ename}: {_first_line(err.evalue)} (cell {err.exec_count})"
    except Exception as err:  # kernel died, notebook unreadable...: report, go on
        error = f"{type(err).__name__}: {_first_line(err)}"
    seconds = round(time.perf_counter() - start, 1)
    after = _products(run_dir)
    written = sorted(p for p, t in after.items() if before.get(p) != t)
    metrics = [p for p in written if p.endswith("metrics.json")]
    figures = [p for p in written if p.endswith(".png")]
    if error is None:
        write_json(marker, {"hash": key, "seconds": seconds, "metrics": metrics,
                            "figures": figures, "git_commit": git_commit(),
                            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return {"chapter": stem, "status": "failed" if error else "ok", "seconds": seconds,
            "error": error, "metrics": metrics if error is None else []}


def _update_run_json(run_dir: Path, params: dict[str, Any], record: dict[str, Any]) -> None:
    path = run_dir / "run.json"
    old = read_json(path) if path.is_file() else {}
    chapters = old.get("notebooks", {}) if old.get("params") == params else {}
    chapters[record["chapter"]] = {k: record[k] for k in ("status", "seconds", "error")}
    info = run_info(params, run_name=params["name"], notebooks=chapters,
                    wall_seconds=round(sum(c["seconds"] or 0 for c in chapters.values()), 1))
    if old.get("params") == params and old.get("started_utc"):
        info["started_utc"] = old["started_utc"]  # when the run began, not its last chapter
    write_json(path, info)


def plan(
    param_files: Sequence[str | Path], out_root: Path, chapters: Iterable[Any] | None,
    notebooks_dir: Path,
) -> tuple[list[tuple[str, dict[str, Any], Path, Path]], list[dict[str, Any]]]:
    """Validate every parameter file, then list the (run, params, run_dir, notebook) tasks.

    Returns ``(tasks, missing)``: ``missing`` names chapters asked for (or expected) that
    have no notebook. Raises :class:`LlmrecError` before anything runs if a file is invalid.
    """
    all_params = [load_params(f) for f in param_files]  # fails here, before any work
    names = [p["name"] for p in all_params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LlmrecError(f"two parameter files share the name {dupes[0]!r}; give each its own `name`")
    available = notebooks_in(notebooks_dir)
    if not available:
        raise LlmrecError(f"no numbered notebooks (0*.ipynb) in {notebooks_dir}")
    tasks: list[tuple[str, dict[str, Any], Path, Path]] = []
    missing: list[dict[str, Any]] = []
    seen_common: dict[str, dict[str, Any]] = {}
    for params in all_params:
        wanted = chapters if chapters is not None else params["chapters"]
        chosen, absent = select_chapters(available, wanted)
        missing += [{"run": params["name"], "chapter": c} for c in absent]
        for nb in chosen:
            if is_common(nb.stem):
                cp = common_params(params)
                if cp["name"] in seen_common and seen_common[cp["name"]] != cp:
                    cp["name"] += "-" + _hash(cp)[:6]  # same dataset/profile, other seed/limit
                seen_common.setdefault(cp["name"], cp)
                task = (cp["name"], cp, out_root / cp["name"], nb)
            else:
                task = (params["name"], params, out_root / params["name"], nb)
            if not any(t[0] == task[0] and t[3] == nb for t in tasks):
                tasks.append(task)
    return tasks, missing


def chains_of(tasks):
    """Split planned tasks into the common ones and one ordered chain per model run."""
    common = [t for t in tasks if is_common(t[3].stem)]
    chains: dict[str, list] = {}
    for t in tasks:
        if not is_common(t[3].stem):
            chains.setdefault(t[0], []).append(t)
    return common, list(chains.values())


def share_of_cores(cores: int, running: int) -> int:
    """Torch threads for each of ``running`` chains side by side on ``cores`` (at least 1)."""
    return max(1, cores // max(1, running))


def run_report(
    param_files: Sequence[str | Path],
    out_root: str | Path | None = None,
    chapters: Iterable[Any] | None = None,
    resume: bool = True,
    reports_out: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run the report for ``param_files``; aggregate; return a summary.

    ``jobs`` > 1 runs that many parameter files' chapter chains side by side, each kernel
    with ``cores // jobs`` torch threads (``$LLMREC_THREADS`` wins if set): on a 2-core CPU
    two single-thread runs finish sooner than two runs one after the other with two threads
    each. The common chapters head the first chain, and the other chains' chapters wait for
    them only where they draw the baselines' rows. When a chain finishes,
    the running ones get its cores at their next batch (``$LLMREC_THREADS_FILE``,
    :func:`llmrec.side_by_side.follow_share`). Keep 1 on a single GPU.

    ``out_root`` defaults to ``runs/``, ``reports_out`` to ``reports/`` (for smoke-only runs:
    ``<out_root>/smoke-reports/``, so the committed report is never replaced by meaningless
    numbers), ``notebooks_dir`` to ``notebooks/``. ``chapters`` overrides every file's ``chapters`` key. The summary:
    ``{"chapters": [{run, chapter, status, seconds, error}], "missing": [...],
    "failed": [...], "results": {...} or None, "wall_seconds": float}``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the kernels inherit it: no hub calls
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out_root = Path(out_root).resolve() if out_root is not None else runs_dir()
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else repo_root() / "notebooks"
    tasks, missing = plan(param_files, out_root, chapters, notebooks_dir)
    start = time.perf_counter()
    for m in missing:
        tqdm.write(f"missing: {m['run']}: chapter {m['chapter']} has no notebook; skipped")
    if jobs < 1:
        raise LlmrecError(f"--jobs must be >= 1, got {jobs}")
    done: list[dict[str, Any]] = []
    bar = tqdm(total=len(tasks), desc="report", unit="notebook")

    def run_chain(chain):
        for run, params, run_dir, nb in chain:
            bar.set_postfix_str(f"{run}/{nb.stem}")
            record = execute_chapter(nb, params, run_dir, resume=resume)
            _update_run_json(run_dir, params, record)
            done.append({"run": run, **{k: v for k, v in record.items() if k != "metrics"}})
            line = f"{run}/{nb.stem}: {record['status']} in {record['seconds']:.1f} s"
            if record["error"]:
                line += f" -- {record['error']}"
            tqdm.write(line)
            bar.update(1)

    common, chains = chains_of(tasks)
    if jobs == 1 or len(chains) < 2:
        run_chain(common)  # the model runs read the baselines' results: these go first
        for chain in chains:
            run_chain(chain)
    else:
        # each kernel gets its share of the cores: torch threads that outnumber free cores
        # spin-wait (see llmrec.llm.models.pick_threads); a kernel inherits the variable when it
        # starts and follows the share file while it runs, so once a chain finishes, the
        # others get its cores at their next batch
        cores = os.cpu_count() or 1
        fixed = os.environ.get("LLMREC_THREADS")  # the user's choice wins
        lock, left = threading.Lock(), [min(jobs, len(chains))]
        share_file = out_root / ".threads"

        def share(n_running: int) -> None:
            if fixed is None:
                os.environ["LLMREC_THREADS"] = str(share_of_cores(cores, n_running))  # new kernels
                write_share(share_file, share_of_cores(cores, n_running))  # running kernels

        if fixed is None:
            out_root.mkdir(parents=True, exist_ok=True)
            os.environ[THREADS_FILE_ENV] = str(share_file)
        share(left[0])
        # the common run is marked from now until its chapters end: the other chains'
        # chapters wait for its baselines before drawing them (llmrec.side_by_side)
        marks = contextlib.ExitStack()
        for run_dir in dict.fromkeys(t[2] for t in common):
            marks.enter_context(running(run_dir))

        def run_and_hand_over(chain):
            try:
                run_chain(chain)
            finally:
                with lock:
                    left[0] -= 1
                    if fixed is None and left[0] > 0:
                        share(left[0])
                        tqdm.write(f"a chain finished: the others get {os.environ['LLMREC_THREADS']} "
                                   "thread(s), from their next batch on")

        def common_then(chain):
            try:
                run_chain(common)
            finally:
                marks.close()
            run_and_hand_over(chain)

        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(common_then, chains[0])]
                futures += [pool.submit(run_and_hand_over, c) for c in chains[1:]]
                for f in futures:
                    f.result()
        finally:
            marks.close()
            if fixed is None:
                os.environ.pop("LLMREC_THREADS", None)
                os.environ.pop(THREADS_FILE_ENV, None)
                share_file.unlink(missing_ok=True)
    bar.close()
    profiles = {p["profile"] for p in (load_params(f) for f in param_files)}
    if reports_out is None and profiles <= set(PREVIEW_PROFILES):  # never over the committed report
        reports_out = out_root / f"{'-'.join(sorted(profiles))}-reports"
    elif reports_out is None:  # the committed report holds every report run, not only these files'
        profiles = REPORT_PROFILES
    results = aggregate(out_root, reports_out, profiles=profiles)
    summary = {"chapters": done, "missing": missing,
               "failed": [d for d in done if d["status"] == "failed"],
               "results": results, "wall_seconds": round(time.perf_counter() - start, 1)}
    return summary


# --- command line ---------------------------------------------------------------------------

def _print_summary(summary: dict[str, Any]) -> None:
    print(f"report: {len(summary['chapters'])} notebooks in {summary['wall_seconds']:.0f} s")
    for c in summary["failed"]:
        print(f"FAILED {c['run']}/{c['chapter']}: {c['error']}")
    for m in summary["missing"]:
        print(f"missing {m['run']}/{m['chapter']}: no notebook")
    res = summary["results"]
    if res:
        print(f"results: {res['n_rows']} rows in {res['csv']} and {res['md']}")
    else:
        print("results: no completed run to aggregate")


def _cli(args) -> int:
    chapters = [c for c in args.chapters.split(",") if c] if args.chapters else None
    if args.aggregate_only:
        profiles = ({load_params(f)["profile"] for f in args.params} if args.params
                    else REPORT_PROFILES if args.reports is None else None)
        res = aggregate(args.out, args.reports, profiles=profiles)
        print(json.dumps(res, indent=2) if res else "results: no completed run to aggregate")
        return 0
    if not args.params:
        raise LlmrecError("name at least one parameter file, e.g. params/smollm2-135m.yaml")
    summary = run_report(args.params, out_root=args.out, chapters=chapters,
                         resume=not args.no_resume, reports_out=args.reports, jobs=args.jobs)
    _print_summary(summary)
    return 1 if summary["failed"] else 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="run the notebooks per parameter file, then build reports/results.*",
        description="Execute the numbered notebooks with papermill for each parameter file "
        "into runs/<name>/, then aggregate every completed run into reports/.",
    )
    p.add_argument("params", nargs="*", help="parameter files, e.g. params/smollm2-135m.yaml")
    p.add_argument("--chapters", help="comma-separated chapters to run, e.g. 02,04 (default: all)")
    p.add_argument("--out", default=None, help="run folders go here (default: runs/)")
    p.add_argument("--reports", default=None, help="results table and figures (default: reports/)")
    p.add_argument("--no-resume", action="store_true", help="rerun notebooks that completed")
    p.add_argument("--jobs", type=int, default=1,
                   help="parameter files run side by side, each with cores/jobs torch threads "
                        "(default 1; 2 suits two models on a 2-core CPU, keep 1 on one GPU)")
    p.add_argument("--aggregate-only", action="store_true",
                   help="run nothing; rebuild reports/ from the completed runs")
    p.set_defaults(func=_cli)
