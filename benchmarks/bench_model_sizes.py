"""What each embedded model costs on this CPU, and which fast path helps it: one run.

    python benchmarks/bench_model_sizes.py                        # all four sizes, about 25 minutes
    python benchmarks/bench_model_sizes.py --models qwen2.5-coder-0.5b --n-records 8
    python benchmarks/bench_model_sizes.py --readme    # + redraws the README's table of sizes

For every model, each way runs in a fresh process (so its load time and resident memory are
its own) on the same seeded test records (temporal split, llmrec.data.samples) with the
chapter-10 zero-shot prompt (the chat template where the model has one), greedy, the
report's token budget and stopping rule:

- ``float32, 2 threads, batch 16``: the report's way (the reference);
- ``bfloat16``: half the memory; on an AVX2 CPU without bfloat16 instructions, slower;
- ``int8 dynamic``: torch's dynamically quantized int8 linear layers (llmrec.llm.models.dynamic_int8);
- ``1 thread``: what a side-by-side run gives each model;
- ``batch 8``: half the batch.

Columns: load seconds, resident and peak GiB after the pass, seconds, new tokens/s,
prompts/s, x ref (tokens/s over the reference's), MAP@4 and validity on the records, and
"same": the share of records whose completion equals the reference's word for word (a
quality change shows here before it shows in MAP@4 on a few records). Rows go to
``reports/benchmarks/model_sizes.csv``, the run's date, machine, commit and load to
``model_sizes.json`` (``--out``). CPU timings depend on what else runs: the load average
at start and end is written beside them. ``--readme`` redraws the README's table of what each
size costs from those two files (:func:`llmrec.report.bench_report.sizes_block`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WAYS = {  # name: (dtype, int8, threads, batch)
    "float32, 2 threads, batch 16": ("float32", False, 2, 16),
    "bfloat16": ("bfloat16", False, 2, 16),
    "int8 dynamic": ("float32", True, 2, 16),
    "1 thread": ("float32", False, 1, 16),
    "batch 8": ("float32", False, 2, 8),
}
REFERENCE = next(iter(WAYS))
MODELS = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def one(model_name: str, way: str, n_records: int, seed: int) -> dict:
    """Load ``model_name`` the ``way`` says, generate on the seeded records, score them."""
    import torch

    from llmrec.data.movielens import load_movielens
    from llmrec.data.records import build_records, split_records
    from llmrec.data.samples import sample_records
    from llmrec.evaluation.matching import Catalog, get_matcher
    from llmrec.evaluation.spine import Task, evaluate
    from llmrec.llm.models import dynamic_int8, is_instruct, load_model, process_memory
    from llmrec.recommenders.generation import FreeGeneration

    dtype, int8, threads, batch = WAYS[way]
    torch.set_num_threads(threads)
    ml = load_movielens()
    parts = split_records(build_records(ml.ratings), "temporal", seed=seed)
    records = sample_records(parts["test"], n_records)
    start = time.perf_counter()
    model, tokenizer = load_model(model_name, dtype=dtype)
    if int8:
        model = dynamic_int8(model)
    load_s = time.perf_counter() - start
    catalog = Catalog.from_movies(ml.movies)
    style = "chat" if is_instruct(model_name, tokenizer) else "zero-shot"
    system = FreeGeneration(model, tokenizer, ml.movies, get_matcher("normalized", catalog),
                            system=model_name, setting=way, style=style, preset="greedy",
                            batch_size=batch, max_new_tokens=48, seed=seed, progress=False)
    task = Task.of(ml.movies, parts["train"], seed=seed, catalog=catalog)
    rows, metrics = evaluate(system, records, task)
    new_tokens = sum(len(tokenizer(r["completion"], add_special_tokens=False)["input_ids"]) for r in rows)
    seconds = float(metrics["generation_seconds"])
    return {"model": model_name, "way": way, "records": len(rows), "load_s": round(load_s, 1),
            **process_memory(), "seconds": round(seconds, 1),
            "tokens_per_s": round(new_tokens / seconds, 2), "prompts_per_s": round(len(rows) / seconds, 3),
            "map_at_4": round(metrics["map_at_4"], 4), "validity": round(metrics["validity"], 3),
            "completions": [r["completion"] for r in rows]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    ap.add_argument("--n-records", type=int, default=16, help="seeded test records per way")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="reports/benchmarks", help="where model_sizes.csv/.json go")
    ap.add_argument("--readme", action="store_true",
                    help="redraw the README's table of what each size costs from the files written")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "WAY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.n_records, args.seed)))
        return 0

    import pandas as pd
    from tqdm.auto import tqdm

    from llmrec.artifacts import atomic_write_text, package_versions, run_info
    from llmrec.paths import in_repo
    from llmrec.report.bench_report import cpu_name

    ways = [REFERENCE] + [w for w in args.ways if w != REFERENCE]
    meta = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu_name(),
            "cores": os.cpu_count(), "load_average_start": round(os.getloadavg()[0], 2),
            "n_records": args.n_records}
    print(f"{'model':20} {'way':30} {'load s':>6} {'GiB':>5} {'peak':>5} {'s':>7} {'tok/s':>7} "
          f"{'x ref':>6} {'MAP@4':>6} {'valid':>5} {'same':>5}", flush=True)
    rows = []
    for model_name in args.models:
        reference = None
        for way in tqdm(ways, desc=model_name, leave=False):
            cmd = [sys.executable, __file__, "--one", model_name, way, "--n-records", str(args.n_records),
                   "--seed", str(args.seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{model_name:20} {way:30} failed: {tail}", flush=True)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            reference = reference or row
            row["x_ref"] = round(row["tokens_per_s"] / reference["tokens_per_s"], 2)
            row["same"] = round(sum(a == b for a, b in zip(row["completions"], reference["completions"],
                                                           strict=True)) / row["records"], 3)
            print(f"{model_name:20} {way:30} {row['load_s']:6.1f} {row['resident_gib']:5.2f} "
                  f"{row['peak_resident_gib']:5.2f} {row['seconds']:7.1f} {row['tokens_per_s']:7.2f} "
                  f"{row['x_ref']:6.2f} {row['map_at_4']:6.4f} {row['validity']:5.2f} {row['same']:5.2f}",
                  flush=True)
            rows.append({k: v for k, v in row.items() if k != "completions"})
    out = in_repo(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "model_sizes.csv", pd.DataFrame(rows).to_csv(index=False))
    info = run_info(command=shlex.join(["python", "benchmarks/bench_model_sizes.py", *sys.argv[1:]]),
                    finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    load_average_end=round(os.getloadavg()[0], 2), **meta)
    info["versions"] = package_versions(["torch", "transformers"])
    atomic_write_text(out / "model_sizes.json", json.dumps(info, indent=2, default=str) + "\n")
    print(f"wrote {out / 'model_sizes.csv'}")
    if args.readme:
        from llmrec.report.bench_report import SIZES_BLOCK, redraw_page, sizes_block

        print(f"redrew the table of sizes in {redraw_page(SIZES_BLOCK, sizes_block(out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
