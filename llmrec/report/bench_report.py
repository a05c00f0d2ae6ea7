"""The speed benchmark's results file and the docs' tables drawn from it.

``benchmarks/bench_fast_paths.py`` times each fast path against the naive way it replaced
and hands its rows here: :func:`write_bench` saves them (``fast_paths.csv``) with the run's
date, machine, commit and load (``fast_paths.json``) under ``reports/benchmarks/``, and
:func:`bench_block` renders ``docs/speed.md``'s table from those two files, so every ratio
the docs quote is one a run wrote down (``tests/test_bench_report.py`` checks the page's
copy); :func:`quick_block` renders ``docs/running.md``'s line on the quick preview, and
:func:`sizes_block` the README's table of what each model size costs
(``benchmarks/bench_model_sizes.py``). Written here because it is this project's own file layout; pandas does the work.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.artifacts import atomic_write_text, package_versions, run_info
from llmrec.errors import LlmrecError

#: The columns of ``fast_paths.csv``, one row per (model, pass, way).
COLUMNS = ("model", "pass", "way", "records", "wall_s", "cpu_s", "prompts_per_s", "tokens_per_s",
           "s_per_record", "x_naive", "same", "gflops", "pct_of_matmul")
BLOCK = "benchmarks"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(probe_fp32: float, probe_bf16: float, threads: int) -> dict[str, Any]:
    """What the timings depend on: CPU, cores, threads, the matmul probes, the load and the
    time now (the run's start)."""
    return {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpu": cpu_name(), "cores": os.cpu_count(), "threads": threads,
            "matmul_gflops_fp32": round(probe_fp32, 1), "matmul_gflops_bf16": round(probe_bf16, 1),
            "load_average_start": round(os.getloadavg()[0], 2)}


def write_bench(rows: Iterable[Mapping[str, Any]], meta: Mapping[str, Any], out_dir: str | Path,
                command: str) -> Path:
    """``fast_paths.csv`` (the rows) and ``fast_paths.json`` (date, machine, commit, versions,
    the command, the load at the end) in ``out_dir``; returns the csv's path."""
    frame = pd.DataFrame(list(rows))
    missing = set(COLUMNS) - set(frame.columns)
    if frame.empty or missing:
        raise LlmrecError(f"no benchmark rows to write (or rows lacking {sorted(missing)}); "
                          "run at least one pass")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "fast_paths.csv", frame[list(COLUMNS)].to_csv(index=False))
    info = run_info(command=command.strip(), finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    load_average_end=round(os.getloadavg()[0], 2), **dict(meta))
    info["versions"] = package_versions(["torch", "transformers"])
    atomic_write_text(out / "fast_paths.json", json.dumps(info, indent=2, default=str) + "\n")
    return out / "fast_paths.csv"


def read_bench(out_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows and the run's facts :func:`write_bench` saved in ``out_dir``."""
    out = Path(out_dir)
    if not (out / "fast_paths.csv").exists():
        raise LlmrecError(f"no benchmark results in {out}; run "
                          "`python benchmarks/bench_fast_paths.py` first")
    return pd.read_csv(out / "fast_paths.csv"), json.loads((out / "fast_paths.json").read_text())


def bench_block(out_dir: str | Path) -> str:
    """``docs/speed.md``'s table: each fast path's ratio against its naive way, with the date,
    machine and commit of the run that measured it."""
    frame, info = read_bench(out_dir)
    m = info
    lines = [
        f"Measured {m['finished_utc'][:10]} on {m['cpu']} ({m['cores']} cores, {m['threads']} torch "
        f"thread), commit {str(m['git_commit'])[:10]}, torch {m['versions'].get('torch')}; load average "
        f"{m['load_average_start']:.1f} at the start and {m['load_average_end']:.1f} at the end. "
        f"This CPU's float32 1024x1024 matrix multiply runs at {m['matmul_gflops_fp32']:.0f} GFLOP/s on "
        f"one thread (the rough compute bound; bfloat16 {m['matmul_gflops_bf16']:.0f}). Written by "
        f"`{m['command']}`; the rows are `reports/benchmarks/fast_paths.csv`.",
        "",
        "| model | pass | way | records | s per record | x naive (CPU s) | same outputs | GFLOP/s | % of matmul |",
        "|---|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in frame.to_dict("records"):
        same = "" if pd.isna(r["same"]) else str(r["same"])
        lines.append(f"| {r['model']} | {r['pass']} | {r['way']} | {r['records']} | {r['s_per_record']:.2f} | "
                     f"{r['x_naive']:.2f} | {same} | {r['gflops']:.1f} | {r['pct_of_matmul']:.0f}% |")
    return "\n".join(lines) + "\n"


QUICK_BLOCK = "quick-timings"


def quick_block(reports_dir: str | Path) -> str:
    """``docs/running.md``'s line on the quick preview: each chapter's minutes with its own
    parameters cell, from ``quick_timings.csv``/``.json`` (``benchmarks/time_quick_tier.py``)."""
    out = Path(reports_dir)
    if not (out / "quick_timings.csv").exists():
        raise LlmrecError(f"no quick timings in {out}; run `python benchmarks/time_quick_tier.py` first")
    frame = pd.read_csv(out / "quick_timings.csv")
    info = json.loads((out / "quick_timings.json").read_text())
    cold = "each from an empty cache" if info["mode"] == "cold" else "in order, sharing one cache"
    cells = ", ".join(f"{r['chapter'][:2]} {r['minutes']:.1f}" for r in frame.to_dict("records"))
    within = int(frame["within_budget"].sum())
    threads = "as many as cores are idle" if info["threads"] == "auto" else info["threads"]
    return (f"Measured {info['started_utc'][:10]} on {info['cpu']} ({info['cpu_count']} cores, torch "
            f"threads: {threads}; load average {info['load_average_start']:.1f} at the start), "
            f"commit {str(info['git_commit'])[:10]}, {cold}: minutes per chapter {cells}; "
            f"{within} of {len(frame)} within 3 minutes (`reports/quick_timings.csv`, written by "
            f"`{info['command']}`).\n")


SIZES_BLOCK = "model-sizes"


def sizes_block(out_dir: str | Path) -> str:
    """The README's table of what each embedded model costs on this CPU and which fast path
    helps it: per model, the reference way's load time, resident memory and new tokens/s,
    then each other way's tokens/s with its ratio to the reference and the share of records
    whose completion is the reference's word for word, from ``model_sizes.csv``/``.json``
    (``benchmarks/bench_model_sizes.py``)."""
    out = Path(out_dir)
    if not (out / "model_sizes.csv").exists():
        raise LlmrecError(f"no model-size benchmark in {out}; run "
                          "`python benchmarks/bench_model_sizes.py` first")
    frame = pd.read_csv(out / "model_sizes.csv")
    info = json.loads((out / "model_sizes.json").read_text())
    reference, *others = dict.fromkeys(frame["way"])  # the benchmark writes its reference first
    head = ["model", "load s", "GiB resident (peak)", f"tokens/s, {reference}"]
    head += [f"{w}: tokens/s (x ref, same)" for w in others]
    lines = [
        f"Measured {info['finished_utc'][:10]} on {info['cpu']} ({info['cores']} cores), commit "
        f"{str(info['git_commit'])[:10]}, torch {info['versions'].get('torch')}; load average "
        f"{info['load_average_start']:.1f} at the start and {info['load_average_end']:.1f} at the end. "
        f"Greedy zero-shot (chat template where the model has one) on the same {info['n_records']} "
        f"seeded test records per way, each way in a fresh process; \"same\": the share of records "
        f"whose completion is the reference's word for word. Written by `{info['command']}`; the "
        f"rows (MAP@4 and validity too) are `reports/benchmarks/model_sizes.csv`.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for model, rows in frame.groupby("model", sort=False):
        by_way = {r["way"]: r for r in rows.to_dict("records")}
        ref = by_way.get(reference)
        if ref is None:
            continue
        cells = [model, f"{ref['load_s']:.1f}", f"{ref['resident_gib']:.2f} ({ref['peak_resident_gib']:.2f})",
                 f"{ref['tokens_per_s']:.1f}"]
        for way in others:
            r = by_way.get(way)
            cells.append("not run" if r is None else
                         f"{r['tokens_per_s']:.1f} (x{r['x_ref']:.2f}, {r['same']:.0%})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: the page of the repository each generated block lives in
PAGES = {BLOCK: "docs/speed.md", QUICK_BLOCK: "docs/running.md", SIZES_BLOCK: "README.md"}


def redraw_page(block: str, text: str, page: str | Path | None = None) -> Path:
    """The page of ``block`` (:data:`PAGES`, or ``page``) with that generated block
    (:data:`BLOCK`, :data:`QUICK_BLOCK`, :data:`SIZES_BLOCK`) replaced by ``text``."""
    from llmrec.paths import repo_root
    from llmrec.report.summary import with_block

    path = Path(page) if page is not None else repo_root() / PAGES[block]
    return atomic_write_text(path, with_block(path.read_text(encoding="utf-8"), block, text))
