"""How long each chapter takes with its own parameters cell (the `quick` preview, SmolLM2):
what a reader waits after opening a notebook in JupyterLab and choosing Run All.

    python benchmarks/time_quick_tier.py                 # every chapter, each from a cold cache
    python benchmarks/time_quick_tier.py --warm          # in order 01 ... 08, sharing one cache
    python benchmarks/time_quick_tier.py --chapters 04 08
    python benchmarks/time_quick_tier.py --docs          # + docs/running.md's line from the results

Each chapter runs through papermill without parameters (exactly as Run All: the notebook's
own ``params_file = "params/quick.yaml"``), from the repository root. ``--cold`` (the
default) deletes the preview's caches (``runs/quick`` and ``runs/common-ml-100k-quick``,
nothing else) before each chapter, so every time includes what that chapter trains or
fits for itself (baselines, the one-minute adapter, the ranker). The converted embedded
model (``~/.cache/llmrec``) is set-up, not part of a chapter, and is kept.

Writes ``reports/quick_timings.csv`` (chapter, seconds, minutes, within the 3-minute
budget) and ``reports/quick_timings.json`` (date, machine, commit, threads, load) and
prints the table. Executed copies go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BUDGET_MINUTES = 3.0


def main(argv: list[str] | None = None) -> int:
    import json

    import pandas as pd
    import papermill

    from llmrec.artifacts import atomic_write_text, run_info
    from llmrec.paths import repo_root
    from llmrec.report.bench_report import QUICK_BLOCK, cpu_name, quick_block, redraw_page

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chapters", nargs="+", default=None, help="e.g. 02 04 (default: all)")
    ap.add_argument("--warm", action="store_true",
                    help="run in order sharing one cache (a reader going through the report)")
    ap.add_argument("--out", default=None, help="folder for quick_timings.csv/json (default reports/)")
    ap.add_argument("--docs", "--readme", dest="docs", action="store_true",
                    help="redraw docs/running.md's line on the quick preview")
    args = ap.parse_args(argv)
    root = repo_root()
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        wanted = {c.zfill(2) for c in args.chapters}
        unknown = wanted - {p.stem[:2] for p in notebooks}
        if unknown:
            raise SystemExit(f"no chapter {sorted(unknown)}; chapters are "
                             f"{' '.join(p.stem[:2] for p in notebooks)}")
        notebooks = [p for p in notebooks if p.stem[:2] in wanted]
    caches = [root / "runs" / "quick", root / "runs" / "common-ml-100k-quick"]
    mode = "warm" if args.warm else "cold"
    info = run_info(command=("python benchmarks/time_quick_tier.py "
                             + shlex.join(argv if argv is not None else sys.argv[1:])).strip(),
                    cpu=cpu_name(), mode=mode, threads=os.environ.get("LLMREC_THREADS", "auto"),
                    load_average_start=round(os.getloadavg()[0], 2))
    if args.warm:
        for c in caches:
            shutil.rmtree(c, ignore_errors=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in notebooks:
            if not args.warm:
                for c in caches:
                    shutil.rmtree(c, ignore_errors=True)
            print(f"{nb.stem} ({mode}) ...", flush=True)
            start = time.perf_counter()
            papermill.execute_notebook(str(nb), os.path.join(tmp, nb.name), kernel_name="python3",
                                       cwd=str(root), progress_bar=False)
            seconds = time.perf_counter() - start
            rows.append({"chapter": nb.stem, "mode": mode, "seconds": round(seconds, 1),
                         "minutes": round(seconds / 60, 2), "within_budget": seconds <= BUDGET_MINUTES * 60})
            print(f"{nb.stem}: {seconds / 60:.2f} min", flush=True)
    info["load_average_end"] = round(os.getloadavg()[0], 2)
    info["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    frame = pd.DataFrame(rows)
    out = root / "reports" if args.out is None else root / args.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "quick_timings.csv", frame.to_csv(index=False))
    atomic_write_text(out / "quick_timings.json", json.dumps(info, indent=2, default=str) + "\n")
    print(frame.to_string(index=False))
    if args.docs:
        redraw_page(QUICK_BLOCK, quick_block(out), root / "docs" / "running.md")
    print(f"wrote {out / 'quick_timings.csv'}; budget {BUDGET_MINUTES:g} min a chapter: "
          f"{int(frame['within_budget'].sum())} of {len(frame)} within")
    return 0 if frame["within_budget"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
