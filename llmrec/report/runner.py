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

Chapters are the notebooks :data:`llmrec.report.params.CHAPTERS` declares, in that order; another
``NN_*.ipynb`` in ``notebooks/`` (a scratch copy) is ignored, with one line saying so, and a
``--chapters`` entry that names no declared chapter is an error before anything runs.

Resume: a notebook that completed leaves a marker ``<run>/notebooks/.<chapter>.done.json``
holding a hash of its parameters and of the notebook's cells (and the digests of the files it
wrote); a rerun with the same hash skips it (``--no-resume`` runs everything again). Changes
to the library itself are not in the hash: rerun with ``--no-resume`` after editing ``llmrec/``.

Nothing finished is lost. Papermill writes a chapter's executed notebook aside
(``<chapter>.running.ipynb``) and only a chapter that completes replaces the executed
notebook and the marker; a failing one leaves the previous notebook, marker and rows in
place and its own notebook as ``<chapter>.failed.ipynb``. A failing notebook is reported by
name with its cell's error; the run's later chapters and the other runs go on.
:func:`llmrec.report.results.aggregate` merges into ``reports/``: a run's rows replace only the
rows with their key, and every other row and file stays. Which runs are aggregated: every
run under the output folder whose profile is one of this invocation's. A run of
smoke-profile files only writes its table to ``<out>/smoke-reports/`` (unless told
otherwise), never over the committed ``reports/``.

A run folder is locked while a report runs into it (``<run>/.lock``: process id and host);
a second report into it refuses before any work, naming the holder; a lock whose process
has died is taken over. A parameter file that needs a GPU (``device: cuda``, or 8/4-bit
weights) is skipped, with one line, where torch sees no CUDA device. Ctrl-C stops the
running kernels and exits with code 130; completed chapters are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from llmrec.artifacts import git_commit, read_json, run_info, write_json
from llmrec.errors import LlmrecError
from llmrec.paths import repo_root, reports_dir, runs_dir
from llmrec.report.params import (
    CHAPTERS,
    PREVIEW_PROFILES,
    PROFILES,
    chapter_matches,
    common_params,
    load_params,
)
from llmrec.report.results import aggregate, file_digest
from llmrec.side_by_side import THREADS_FILE_ENV, _alive, running, write_share

#: The profiles whose runs make the committed report (``reports/``): every one but the previews.
REPORT_PROFILES = set(PROFILES) - set(PREVIEW_PROFILES)
#: Chapters that do not depend on the model (matched on the name after the number).
COMMON_CHAPTERS = {"data", "baselines"}
#: The lock file of a run folder (or of a reports folder while it is merged into).
LOCK = ".lock"
#: What Ctrl-C prints (to stderr, with exit code 130).
INTERRUPTED = "interrupted: completed chapters are kept; rerun the same command to resume"


# --- chapters -------------------------------------------------------------------------------

def notebooks_in(folder: str | Path, declared: Sequence[str] = CHAPTERS) -> list[Path]:
    """The declared chapters' notebooks present in ``folder``, in the declared order."""
    return [Path(folder) / f"{stem}.ipynb" for stem in declared
            if (Path(folder) / f"{stem}.ipynb").is_file()]


def stray_notebooks(folder: str | Path, declared: Sequence[str] = CHAPTERS) -> list[Path]:
    """Numbered notebooks ``NN_*.ipynb`` of ``folder`` that are not declared chapters (scratch
    copies): never run, never published."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb") if p.stem not in declared)


def _topic(stem: str) -> str:
    return stem.split("_", 1)[1] if "_" in stem else stem


def is_common(stem: str) -> bool:
    """True for a model-independent chapter (run once per dataset, in the common run)."""
    return _topic(stem) in COMMON_CHAPTERS


def select_chapters(
    available: Sequence[Path], chapters: Iterable[Any] | None,
    declared: Sequence[str] = CHAPTERS,
) -> tuple[list[Path], list[str]]:
    """``(notebooks to run, declared chapters asked for that have no notebook)``.

    ``chapters`` holds numbers (``2`` or ``"02"``), stems (``"02_zero_shot"``) or topics
    (``"zero_shot"``); None selects every notebook and flags the declared ones missing. An
    entry that names no declared chapter raises :class:`LlmrecError` (nothing has run yet).
    """
    if chapters is None:
        stems = {p.stem for p in available}
        return list(available), [c for c in declared if c not in stems]
    chapters = list(chapters)
    unknown = [str(sel) for sel in chapters if not any(chapter_matches(sel, c) for c in declared)]
    if unknown:
        raise LlmrecError(f"no chapter {unknown[0]!r}; name one by number, stem or topic: "
                          f"{', '.join(declared)}")
    chosen: list[Path] = []
    missing: list[str] = []
    for sel in chapters:
        hits = [p for p in available if chapter_matches(sel, p.stem)]
        if not hits:
            missing += [c for c in declared if chapter_matches(sel, c) and c not in missing]
        chosen += [p for p in hits if p not in chosen]
    order = {stem: i for i, stem in enumerate(declared)}
    return sorted(chosen, key=lambda p: order.get(p.stem, len(order))), missing


# --- run folders: locks ---------------------------------------------------------------------

def _lock_holder(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _is_stale(path: Path, holder: dict[str, Any]) -> bool:
    """A lock left by a process of this host that has died, or a lock file that has said
    nothing for a while (one just created is being written)."""
    if not holder.get("pid"):
        try:
            return time.time() - path.stat().st_mtime > 5
        except FileNotFoundError:
            return False  # released meanwhile: try again
    if holder.get("host") != socket.gethostname():
        return False  # another machine's process: its liveness cannot be checked from here
    return not _alive(int(holder["pid"]))


def take_lock(folder: str | Path, wait_s: float = 0.0, poll: float = 0.5) -> Path:
    """Lock ``folder`` for this process (``<folder>/.lock``, created atomically, holding the
    process id and host); a lock whose process has died is taken over. When another live
    process holds it, wait up to ``wait_s`` seconds, then raise :class:`LlmrecError` naming
    the folder and the holder. Returns the lock file (:func:`release_lock` removes it)."""
    path = Path(folder) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if _is_stale(path, holder):
                # moved aside under a name of our own, so two takers cannot both remove it
                aside = path.with_name(f"{LOCK}.stale-{os.getpid()}")
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, aside)
                    aside.unlink()
                continue
            if time.monotonic() >= deadline:
                raise LlmrecError(
                    f"{Path(folder)} is in use by process {holder.get('pid')} on "
                    f"{holder.get('host')} (since {holder.get('started_utc')}); wait for it to "
                    f"end, or delete {path} if that process is gone") from None
            time.sleep(poll)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return path


def release_lock(path: Path) -> None:
    """Remove a lock :func:`take_lock` returned, if it is still this process's."""
    if _lock_holder(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(folders: Iterable[str | Path], wait_s: float = 0.0) -> Iterator[list[Path]]:
    """Hold the locks of ``folders`` (each once, in a fixed order) until the block ends."""
    taken: list[Path] = []
    try:
        for folder in sorted({Path(f).resolve() for f in folders}):
            taken.append(take_lock(folder, wait_s=wait_s))
        yield taken
    finally:
        for path in reversed(taken):
            release_lock(path)


# --- hardware -------------------------------------------------------------------------------

def needs_gpu(params: dict[str, Any]) -> bool:
    """True for a parameter file that runs only on a GPU: ``device: cuda``, or 8/4-bit
    weights (bitsandbytes)."""
    return params.get("device") == "cuda" or params.get("quantization") in ("8bit", "4bit")


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch: asked only when a file needs one)."""
    import torch  # heavy: only when a parameter file needs a GPU

    return bool(torch.cuda.is_available())


def runnable(all_params: Sequence[dict[str, Any]],
             has_gpu: Callable[[], bool] = cuda_available) -> tuple[list[dict[str, Any]], list[str]]:
    """``(the parameter sets this machine can run, one line per set skipped for want of a GPU)``."""
    if not any(needs_gpu(p) for p in all_params) or has_gpu():
        return list(all_params), []
    keep = [p for p in all_params if not needs_gpu(p)]
    skipped = [f"skipped: {p['name']} needs a GPU ({p['hardware']}) and torch sees none"
               for p in all_params if needs_gpu(p)]
    return keep, skipped


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


def _digests(run_dir: Path, written: Iterable[str]) -> dict[str, str]:
    """The sha256 of each file a chapter wrote, and of the predictions beside each metrics file."""
    rels = set(written)
    rels |= {str(Path(r).parent / "predictions.jsonl.gz") for r in written if r.endswith("metrics.json")}
    return {r: file_digest(run_dir / r) for r in sorted(rels) if (run_dir / r).is_file()}


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


# --- kernels: their log, and stopping them on Ctrl-C -----------------------------------------

_STOP = threading.Event()  # set on Ctrl-C: no new chapter starts, running kernels are stopped
_KERNELS: dict[int, Any] = {}  # id -> the Popen of each kernel running now
_KERNELS_LOCK = threading.Lock()


def _kill_kernel(process: Any, sig: int = signal.SIGTERM) -> None:
    """End a kernel and whatever it started (the kernel leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _kill_running_kernels(sig: int) -> None:
    with _KERNELS_LOCK:
        for process in list(_KERNELS.values()):
            _kill_kernel(process, sig)


def stop_kernels(grace_s: float = 10.0) -> None:
    """Keep new chapters from starting and end the running kernels (their chapters then
    end as interrupted; what earlier chapters completed stays): SIGTERM, then SIGKILL for a
    kernel still running ``grace_s`` seconds later."""
    _STOP.set()
    _kill_running_kernels(signal.SIGTERM)
    late = threading.Timer(grace_s, _kill_running_kernels, args=(signal.SIGKILL,))
    late.daemon = True
    late.start()


def _kernel_manager_class(log_file: Any) -> type:
    """A kernel manager whose kernel writes its own stderr (start-up warnings, a dying
    kernel's traceback) to ``log_file`` rather than the report's console, and which
    :func:`stop_kernels` can end."""
    # jupyter_client comes with papermill: imported only when a chapter runs
    from jupyter_client.manager import AsyncKernelManager

    class ChapterKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):  # type: ignore[override]
            await super().start_kernel(**{"stderr": log_file, **kw})
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                with _KERNELS_LOCK:
                    _KERNELS[id(self)] = process
                    if _STOP.is_set():
                        _kill_kernel(process)

        async def cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
            with _KERNELS_LOCK:
                _KERNELS.pop(id(self), None)
            await super().cleanup_resources(restart=restart)

    return ChapterKernelManager


class _QuietDeadKernel:
    """After Ctrl-C, drop nbclient's "Kernel died" lines: the runner ended the kernel."""

    def filter(self, record) -> bool:
        return not (_STOP.is_set() and "Kernel died" in record.getMessage())


def _quiet_loggers() -> None:
    pm_logger = logging.getLogger("papermill")
    if not any(isinstance(f, _QuietUnknownParameters) for f in pm_logger.filters):
        pm_logger.addFilter(_QuietUnknownParameters())
    for name in ("papermill", "traitlets", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietDeadKernel) for f in logger.filters):
            logger.addFilter(_QuietDeadKernel())


def execute_chapter(
    notebook: Path, params: dict[str, Any], run_dir: Path, resume: bool = True
) -> dict[str, Any]:
    """Execute one notebook into ``run_dir`` with papermill; returns its status record.

    ``{"chapter", "status": "ok"|"skipped"|"failed"|"interrupted", "seconds", "error",
    "metrics", "kept"}``; on failure ``error`` is ``"<ename>: <evalue>"`` of the failing cell,
    and ``kept`` says whether an earlier completed result of the chapter stays in place.
    Never raises for a notebook's own error. The executed notebook is written aside
    (``<stem>.running.ipynb``); only a chapter that completes replaces ``<stem>.ipynb`` and
    its completion marker, and a failed one is kept as ``<stem>.failed.ipynb``. The kernel's
    own stderr goes to ``notebooks/.<stem>.kernel.log``.
    """
    # papermill (with nbclient and the jupyter stack) takes seconds to import: only here,
    # not for every `python -m llmrec` command
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _quiet_loggers()
    stem = notebook.stem
    folder = run_dir / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)
    injected = {**params, "run_dir": str(run_dir)}
    key = _hash({"params": injected, "notebook": _notebook_hash(notebook)})
    marker = _marker(run_dir, stem)
    previous = marker.is_file()
    if resume and previous:
        done = read_json(marker)
        if done.get("hash") == key:
            return {"chapter": stem, "status": "skipped", "seconds": done.get("seconds", 0.0),
                    "error": None, "metrics": done.get("metrics", []), "kept": False}
    if _STOP.is_set():
        return {"chapter": stem, "status": "interrupted", "seconds": 0.0, "error": "interrupted",
                "metrics": [], "kept": previous}
    executed = folder / f"{stem}.ipynb"
    aside, failed = folder / f"{stem}.running.ipynb", folder / f"{stem}.failed.ipynb"
    before = _products(run_dir)
    start = time.perf_counter()
    error = None
    with open(folder / f".{stem}.kernel.log", "w", encoding="utf-8") as log:
        try:
            papermill.execute_notebook(
                str(notebook), str(aside), parameters=injected, kernel_name="python3",
                cwd=str(repo_root()), progress_bar=False,
                kernel_manager_class=_kernel_manager_class(log),
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
        os.replace(aside, executed)
        write_json(marker, {"hash": key, "seconds": seconds, "metrics": metrics,
                            "figures": figures, "digests": _digests(run_dir, written),
                            "git_commit": git_commit(),
                            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        failed.unlink(missing_ok=True)  # an older failure of this chapter, now superseded
        return {"chapter": stem, "status": "ok", "seconds": seconds, "error": None,
                "metrics": metrics, "kept": False}
    if aside.is_file():
        os.replace(aside, failed)
    status = "interrupted" if _STOP.is_set() else "failed"
    return {"chapter": stem, "status": status, "seconds": seconds,
            "error": "interrupted" if status == "interrupted" else error, "metrics": [],
            "kept": previous}


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
    # fails here, before any work (the device too: a GPU file reaches here only with a GPU)
    all_params = [load_params(f, check_hardware=True) for f in param_files]
    names = [p["name"] for p in all_params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LlmrecError(f"two parameter files share the name {dupes[0]!r}; give each its own `name`")
    available = notebooks_in(notebooks_dir)
    if not available:
        raise LlmrecError(f"no chapter notebooks ({CHAPTERS[0]}.ipynb ...) in "
                          f"{notebooks_dir}; run from the repository or pass its notebooks/")
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


def _run_chain(chain, resume: bool, on_done: Callable[[str, Path, dict[str, Any]], None],
               bar) -> None:
    """Run ``chain``'s chapters in order; after Ctrl-C, start no further one."""
    for run, params, run_dir, nb in chain:
        if _STOP.is_set():
            return
        bar.set_postfix_str(f"{run}/{nb.stem}")
        record = execute_chapter(nb, params, run_dir, resume=resume)
        _update_run_json(run_dir, params, record)
        on_done(run, nb, record)
        bar.update(1)


def _status_line(run: str, record: dict[str, Any]) -> str:
    line = f"{run}/{record['chapter']}: {record['status']} in {record['seconds']:.1f} s"
    if record["error"] and record["status"] != "interrupted":
        line += f" -- {record['error']}"
    if record["status"] in ("failed", "interrupted") and record.get("kept"):
        line += " (previous result kept)"
    return line


def _wait_all(futures) -> None:
    """Wait for ``futures`` in the main thread, where Ctrl-C arrives (as KeyboardInterrupt),
    raising the first worker's exception."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
        for f in done:
            f.result()


def run_report(
    param_files: Sequence[str | Path],
    out_root: str | Path | None = None,
    chapters: Iterable[Any] | None = None,
    resume: bool = True,
    reports_out: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
    jobs: int = 1,
    has_gpu: Callable[[], bool] = cuda_available,
) -> dict[str, Any]:
    """Run the report for ``param_files``; merge into the reports folder; return a summary.

    Before any work: every file is validated, every chapter asked for exists, the files that
    need a GPU are skipped where ``has_gpu()`` is False (one line each), and every run
    folder is locked (:func:`take_lock`; one already in use is an error).

    ``jobs`` > 1 runs that many parameter files' chapter chains side by side, each kernel
    with ``cores // jobs`` torch threads (``$LLMREC_THREADS`` wins if set): on a 2-core CPU
    two single-thread runs finish sooner than two runs one after the other with two threads
    each. The common chapters head the first chain, and the other chains' chapters wait for
    them only where they draw the baselines' rows. When a chain finishes,
    the running ones get its cores at their next batch (``$LLMREC_THREADS_FILE``,
    :func:`llmrec.side_by_side.follow_share`). Keep 1 on a single GPU.

    ``out_root`` defaults to ``runs/``, ``reports_out`` to ``reports/`` (for smoke-only runs:
    ``<out_root>/smoke-reports/``, so the committed report is never replaced by meaningless
    numbers), ``notebooks_dir`` to ``notebooks/``. ``chapters`` overrides every file's
    ``chapters`` key. Ctrl-C ends the running kernels and raises KeyboardInterrupt, with the
    completed chapters kept and nothing merged. The summary:
    ``{"chapters": [{run, chapter, status, seconds, error, kept}], "missing": [...],
    "skipped": [...], "failed": [...], "results": {...} or None, "wall_seconds": float}``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the kernels inherit it: no hub calls
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if jobs < 1:
        raise LlmrecError(f"--jobs must be >= 1, got {jobs}")
    out_root = Path(out_root).resolve() if out_root is not None else runs_dir()
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else repo_root() / "notebooks"
    all_params = [load_params(f) for f in param_files]  # fails here, before any work
    kept, skipped = runnable(all_params, has_gpu)
    if not kept:
        raise LlmrecError("every parameter file given needs a GPU and torch sees none; "
                          "run them on a machine with CUDA (docs/gpu.md)")
    files = [f for f, p in zip(param_files, all_params, strict=True) if p in kept]
    tasks, missing = plan(files, out_root, chapters, notebooks_dir)
    for line in skipped:
        tqdm.write(line)
    for stray in stray_notebooks(notebooks_dir):
        tqdm.write(f"ignored: {stray.name} is not a chapter of the report (llmrec.report.params.CHAPTERS)")
    for p in kept:
        if p["profile"] in ("long", "paper"):
            tqdm.write(f"note: {p['name']} is a long-profile run: hours on {p['hardware'].split(' (')[0]}")
    for m in missing:
        tqdm.write(f"missing: {m['run']}: chapter {m['chapter']} has no notebook; skipped")
    _STOP.clear()
    start = time.perf_counter()
    done: list[dict[str, Any]] = []

    def on_done(run: str, nb: Path, record: dict[str, Any]) -> None:
        done.append({"run": run, **{k: v for k, v in record.items() if k != "metrics"}})
        tqdm.write(_status_line(run, record))

    with locked(t[2] for t in tasks):  # refuses here, before any work, if a run is in use
        bar = tqdm(total=len(tasks), desc="report", unit="notebook")
        try:
            _run_chains(tasks, out_root, jobs, resume, on_done, bar)
        finally:
            bar.close()
    profiles = {p["profile"] for p in kept}
    if reports_out is None and profiles <= set(PREVIEW_PROFILES):  # never over the committed report
        reports_out = out_root / f"{'-'.join(sorted(profiles))}-reports"
    elif reports_out is None:  # the committed report holds every report run, not only these files'
        profiles = REPORT_PROFILES
    results = merge_into_reports(out_root, reports_out, profiles)
    return {"chapters": done, "missing": missing, "skipped": skipped,
            "failed": [d for d in done if d["status"] == "failed"],
            "results": results, "wall_seconds": round(time.perf_counter() - start, 1)}


def merge_into_reports(out_root: Path, reports_out: str | Path | None,
                       profiles: Iterable[str] | None) -> dict[str, Any] | None:
    """:func:`llmrec.report.results.aggregate`, holding the reports folder's lock (waiting up
    to ten minutes for another report's merge to end)."""
    target = Path(reports_out).resolve() if reports_out is not None else reports_dir()
    with locked([target], wait_s=600):
        return aggregate(out_root, reports_out, profiles=profiles)


def _run_chains(tasks, out_root: Path, jobs: int, resume: bool, on_done, bar) -> None:
    """Run the planned tasks in worker threads (one at a time, or ``jobs`` chains side by
    side); the main thread waits, and on Ctrl-C ends the running kernels before it re-raises."""
    common, chains = chains_of(tasks)
    if jobs == 1 or len(chains) < 2:
        # the model runs read the baselines' results: these go first
        sequence = [t for chain in [common, *chains] for t in chain]
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            _wait_all([pool.submit(_run_chain, sequence, resume, on_done, bar)])
        except KeyboardInterrupt:
            stop_kernels()
            raise
        finally:
            pool.shutdown(wait=True)
        return
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
            _run_chain(chain, resume, on_done, bar)
        finally:
            with lock:
                left[0] -= 1
                if fixed is None and left[0] > 0 and not _STOP.is_set():
                    share(left[0])
                    tqdm.write(f"a chain finished: the others get {os.environ['LLMREC_THREADS']} "
                               "thread(s), from their next batch on")

    def common_then(chain):
        try:
            _run_chain(common, resume, on_done, bar)
        finally:
            marks.close()
        run_and_hand_over(chain)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(common_then, chains[0])]
        futures += [pool.submit(run_and_hand_over, c) for c in chains[1:]]
        _wait_all(futures)
    except KeyboardInterrupt:
        stop_kernels()
        raise
    finally:
        pool.shutdown(wait=True)
        marks.close()
        if fixed is None:
            os.environ.pop("LLMREC_THREADS", None)
            os.environ.pop(THREADS_FILE_ENV, None)
            share_file.unlink(missing_ok=True)


# --- command line ---------------------------------------------------------------------------

def _print_summary(summary: dict[str, Any]) -> None:
    print(f"report: {len(summary['chapters'])} notebooks in {summary['wall_seconds']:.0f} s")
    for c in summary["failed"]:
        kept = "; previous result kept" if c.get("kept") else ""
        print(f"FAILED {c['run']}/{c['chapter']}: {c['error']}{kept}")
    for m in summary["missing"]:
        print(f"missing {m['run']}/{m['chapter']}: no notebook")
    for line in summary.get("skipped", []):
        print(line)
    res = summary["results"]
    if res:
        print(f"results: {res['n_new']} rows from these runs merged; {res['n_rows']} rows in "
              f"{res['csv']} and {res['md']}")
    else:
        print("results: no completed row to merge; the results table is as it was")


def _cli(args) -> int:
    chapters = [c for c in args.chapters.split(",") if c] if args.chapters else None
    if args.aggregate_only:
        profiles = ({load_params(f)["profile"] for f in args.params} if args.params
                    else REPORT_PROFILES if args.reports is None else None)
        out = Path(args.out).resolve() if args.out else runs_dir()
        res = merge_into_reports(out, args.reports, profiles)
        print(json.dumps(res, indent=2) if res else
              "results: no completed row to merge; the results table is as it was")
        return 0
    if not args.params:
        raise LlmrecError("name at least one parameter file, e.g. params/smollm2-135m.yaml")
    summary = run_report(args.params, out_root=args.out, chapters=chapters,
                         resume=not args.no_resume, reports_out=args.reports, jobs=args.jobs)
    _print_summary(summary)
    return 1 if summary["failed"] else 0


DESCRIPTION = """\
Execute the report's chapters (notebooks/01_data ... 08_llm_with_cf) with papermill for each
parameter file into runs/<name>/ (executed notebooks, figures, one folder per system), then
merge the completed runs into reports/: results.csv and results.md (a run's rows replace the
rows with their system, setting and split; every other row stays), predictions/, figures/,
notebooks/, headline.md, timings.md, and the generated blocks of README.md and
docs/answer.md. Smoke and quick runs write <out>/smoke-reports/ (or quick-reports/) instead,
never the committed report. Nothing finished is lost: a chapter that fails keeps its
previous result (its notebook kept as <chapter>.failed.ipynb), and Ctrl-C keeps the
completed chapters (rerun the same command to resume). A parameter file that needs a GPU
(device: cuda, or 8/4-bit weights) is skipped, with one line, where torch sees no CUDA
device, so `report params/*.yaml` runs every model there is hardware for. A run folder in
use by another report is refused."""


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="run the chapters per parameter file into runs/, merge into reports/",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("params", nargs="*", help="parameter files, e.g. params/smollm2-135m.yaml")
    p.add_argument("--chapters", help="comma-separated chapters to run, by number, stem or topic, "
                                      "e.g. 02,04 or zero_shot (default: all)")
    p.add_argument("--out", default=None, help="run folders go here (default: runs/)")
    p.add_argument("--reports", default=None,
                   help="the folder merged into (default: reports/; smoke/quick runs: "
                        "<out>/smoke-reports/ or <out>/quick-reports/)")
    p.add_argument("--no-resume", action="store_true", help="rerun notebooks that completed")
    p.add_argument("--jobs", type=int, default=1,
                   help="parameter files run side by side, each with cores/jobs torch threads "
                        "(default 1; 2 suits two models on a 2-core CPU, keep 1 on one GPU)")
    p.add_argument("--aggregate-only", action="store_true",
                   help="run nothing; merge the completed runs of --out into reports/")
    p.set_defaults(func=_cli)
