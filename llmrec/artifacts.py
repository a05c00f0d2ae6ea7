"""The one place where run artefacts are written and read (PROTOCOL.md section 7).

A *run folder* holds, per evaluated system and split, ``predictions.jsonl.gz`` (one JSON
object a line: ``record_id``, ``target_ids``, ``predicted_ids`` in rank order, each entry
an item id, a list of ids or null; plus ``completion`` and ``titles`` where a model
produced them) and ``metrics.json``; and once per run ``run.json`` (parameters, seed,
package versions, git commit, wall times). Every write is atomic (temporary file, then
rename), so an interrupted run never leaves half a file that looks whole.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from llmrec.paths import repo_root, slug

#: Packages whose versions every run records.
TRACKED_PACKAGES = [
    "llmrec", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "pandas",
    "numpy", "jellyfish", "sentence-transformers", "papermill", "seaborn",
]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _jsonable(obj: Any) -> Any:
    """JSON fallback for numpy scalars/arrays, paths and sets."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object a line; gzip when ``path`` ends in ``.gz``. Atomic."""
    path = Path(path)
    text = "".join(json.dumps(dict(r), default=_jsonable) + "\n" for r in rows)
    data = text.encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_predictions(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write a predictions file after checking every row has the fields PROTOCOL.md fixes."""
    rows = list(rows)
    for i, row in enumerate(rows):
        missing = {"record_id", "target_ids", "predicted_ids"} - set(row)
        if missing:
            raise ValueError(f"prediction row {i} lacks {sorted(missing)}")
    return write_jsonl(path, rows)


def git_commit() -> str | None:
    """The repository's HEAD commit (with ``-dirty`` when the tree has changes), or None."""
    try:
        root = repo_root()
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_info(params: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """What every run records beside its results: parameters, versions, commit, machine, time."""
    return {
        "params": dict(params or {}),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def system_dir(run_dir: str | Path, system: str, setting: str, split: str) -> Path:
    """``<run_dir>/<system>__<setting>/<split>/``: where one evaluated system's files go."""
    return Path(run_dir) / f"{slug(system)}__{slug(setting)}" / slug(split)


def save_system_run(
    run_dir: str | Path,
    system: str,
    setting: str,
    split: str,
    rows: Iterable[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``predictions.jsonl.gz`` and ``metrics.json`` for one system x setting x split.

    ``metrics`` is what :func:`llmrec.evaluation.metrics.score` returned. The saved ``metrics.json`` adds
    the identity columns (``system``, ``setting``, ``split``) and ``predictions``: the
    predictions file's path relative to the repository root when it lies inside it (else
    absolute). Returns that dict: one row of ``reports/results.csv``.
    """
    folder = system_dir(run_dir, system, setting, split)
    pred_path = write_predictions(folder / "predictions.jsonl.gz", rows)
    try:
        rel = pred_path.resolve().relative_to(repo_root())
    except ValueError:
        rel = pred_path.resolve()
    row = {"system": system, "setting": setting, "split": split, **dict(metrics),
           "predictions": str(rel), **dict(extra or {})}
    write_json(folder / "metrics.json", row)
    return row


def load_rows(run_dir: str | Path, system: str, setting: str, split: str) -> list[dict[str, Any]] | None:
    """The prediction rows saved for ``system x setting x split`` under ``run_dir``, or None."""
    path = system_dir(run_dir, system, setting, split) / "predictions.jsonl.gz"
    return read_jsonl(path) if path.is_file() else None


def saved_rows(run_dir: str | Path, system: str, split: str) -> dict[str, list[dict[str, Any]]]:
    """Every setting saved under ``run_dir`` for ``system`` and ``split``: setting -> rows."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(run_dir).glob(f"*/{split}/metrics.json")):
        meta = read_json(path)
        pred = path.parent / "predictions.jsonl.gz"
        if meta.get("system") == system and meta.get("split") == split and pred.is_file():
            out[meta["setting"]] = read_jsonl(pred)
    return out
