"""Generation speed: prompts per second at batch 1 and batched, greedy and 4-beam, with and
without the list-end stopping rule (and, for prompts that share a prefix, with the prefix's
KV cache), on real prompts of temporal test records.

    python benchmarks/bench_generation.py --models smollm2-135m gemma3-270m
    python benchmarks/bench_generation.py --style few-shot --presets greedy

Prints one line per model x preset x setting with prompts/s, the speed-up over batch 1
without early stopping (the naive way), and what one pass over all 897 temporal test
records would cost at that rate. CPU timings depend on what else runs on the machine:
say so beside any number quoted from here.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    import torch

    from llmrec.data.movielens import load_movielens
    from llmrec.data.records import build_records, split_records
    from llmrec.llm.decoding import generate, prefix_split
    from llmrec.llm.models import is_instruct, load_model, pick_threads
    from llmrec.llm.prompts import build_prompts

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--presets", nargs="+", default=["greedy", "beam4"])
    ap.add_argument("--style", default="auto",
                    help="zero-shot | chat | few-shot | alpaca | auto (chat for instruct models); "
                         "few-shot and alpaca prompts share a prefix: a last row adds the prefix cache")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n-prompts", type=int, default=16, help="prompts per batched measurement")
    ap.add_argument("--n-single", type=int, default=4, help="prompts per batch-1 measurement")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the cores other processes leave free)")
    ap.add_argument("--n-records", type=int, default=897, help="records in a full pass")
    args = ap.parse_args(argv)

    pick_threads(args.threads)
    ml = load_movielens()
    test = split_records(build_records(ml.ratings), "temporal")["test"]
    print(f"torch threads {torch.get_num_threads()}, cpu_count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    header = f"{'model':14} {'preset':7} {'setting':22} {'prompts':>7} {'s':>7} {'prompts/s':>9} " \
             f"{'x naive':>7} {'full pass':>10}"
    print(header)
    for name in args.models:
        model, tok = load_model(name)
        style = args.style
        if style == "auto":
            style = "chat" if is_instruct(name, tok) else "zero-shot"
        prompts = build_prompts(style, test.head(args.n_prompts), ml.movies, tokenizer=tok)
        generate(model, tok, prompts[:2], "greedy", batch_size=2, max_new_tokens=4, progress=False)
        for preset in args.presets:
            naive_rate = None
            settings = [("batch 1, no early stop", 1, False, args.n_single, False),
                        ("batch 1, early stop", 1, True, args.n_single, False),
                        (f"batch {args.batch_size}, no early stop", args.batch_size, False, args.n_prompts, False),
                        (f"batch {args.batch_size}, early stop", args.batch_size, True, args.n_prompts, False)]
            if prefix_split(tok, prompts) is not None:  # a shared prefix (few-shot examples)
                settings.append((f"b{args.batch_size}, stop, prefix cache", args.batch_size, True,
                                 args.n_prompts, True))
            for label, bs, early, n, cache in settings:
                t0 = time.perf_counter()
                out = generate(model, tok, prompts[:n], preset, batch_size=bs,
                               max_new_tokens=args.max_new_tokens, stop_after_titles=4,
                               early_stop=early, progress=False, prefix_cache=cache)
                secs = time.perf_counter() - t0
                rate = len(out) / secs
                naive_rate = naive_rate or rate
                full = args.n_records / rate
                print(f"{name:14} {preset:7} {label:22} {n:7d} {secs:7.1f} {rate:9.2f} "
                      f"{rate / naive_rate:7.1f} {full / 60:8.1f} min  [{style}]", flush=True)
        del model
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other jobs share the CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
