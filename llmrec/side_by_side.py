"""What the report's runner and the kernels it starts tell each other while chains run side by side.

``python -m llmrec report --jobs 2`` runs each model's chapters in its own chain, one kernel
at a time per chain, each with its share of the cores (:mod:`llmrec.report.runner`). Two things
cross from the runner to a kernel that is already running, through files, since a
kernel's environment is fixed when it starts:

- **The common chapters still running.** The baselines chapter runs at the head of the
  first chain, beside the other chains' first chapters instead of before them; a model
  chapter that draws the baselines as reference lines waits for it
  (:func:`wait_for_common`, called by :meth:`llmrec.report.chapter.Chapter.references`). The
  runner marks the common run's folder while its chapters run (:func:`running`); the mark
  names the runner's process, so one left behind by a killed run is ignored.
- **Its share of the cores.** When a chain finishes, the runner writes the new share to the
  file ``$LLMREC_THREADS_FILE`` names (:func:`write_share`), and the long loops of the
  package (generation, scoring, training) call :func:`follow_share` between batches: the
  chain left running takes the idle core in the middle of a pass, not only at its next
  chapter. Results do not depend on the thread count (:func:`llmrec.llm.models.pick_threads`).

Why by hand: no library passes a changing value into a running Jupyter kernel without a
channel of its own; a file the kernel reads is the smallest one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: The mark of a run folder whose chapters a report process is running now.
RUNNING = ".running.json"
#: The variable naming the file that holds a chain's current share of the cores.
THREADS_FILE_ENV = "LLMREC_THREADS_FILE"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


@contextmanager
def running(run_dir: str | Path) -> Iterator[Path]:
    """Mark ``run_dir`` as being run by this process until the block ends (even on error)."""
    mark = Path(run_dir) / RUNNING
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(json.dumps({"pid": os.getpid(),
                                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    try:
        yield mark
    finally:
        mark.unlink(missing_ok=True)


def is_running(run_dir: str | Path) -> bool:
    """True while a live process has ``run_dir`` marked (:func:`running`)."""
    mark = Path(run_dir) / RUNNING
    try:
        pid = int(json.loads(mark.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return _alive(pid)


def wait_for_common(run_dir: str | Path, poll: float = 2.0,
                    say: Callable[[str], None] = print) -> float:
    """Wait while ``run_dir``'s chapters are being run beside this one; returns the seconds
    waited (0 when nothing runs there, as for a notebook run on its own)."""
    if not is_running(run_dir):
        return 0.0
    start = time.perf_counter()
    say(f"waiting for the baselines of {Path(run_dir).name}, running beside this chapter")
    while is_running(run_dir):
        time.sleep(poll)
    return time.perf_counter() - start


def write_share(path: str | Path, threads: int) -> None:
    """Write a chain's share of the cores for :func:`follow_share` (atomically: a reader
    never sees half a number)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(int(threads)))
    os.replace(tmp, path)


_seen: dict[str, int] = {}  # the share file's last modification time read, per path


def follow_share() -> int | None:
    """Take this kernel's current share of the cores, if the runner wrote a new one
    (:func:`write_share`); returns the thread count set, or None when nothing changed or no
    runner shares cores. Cheap (one ``stat``), so loops call it between batches."""
    path = os.environ.get(THREADS_FILE_ENV)
    if not path:
        return None
    try:
        mtime = os.stat(path).st_mtime_ns
        if _seen.get(path) == mtime:
            return None
        threads = int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
    _seen[path] = mtime
    import torch

    if threads >= 1 and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        return threads
    return None
