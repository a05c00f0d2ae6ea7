"""Each fast evaluation path against the naive way it replaced, in one run, with how
close each runs to this CPU's matrix-multiply speed, and whether its outputs are the same.

    python benchmarks/bench_fast_paths.py                      # both embedded models, about 7 minutes
    python benchmarks/bench_fast_paths.py --models gemma3-270m --n-greedy 64
    python benchmarks/bench_fast_paths.py --docs      # + writes docs/speed.md's table from the results

Each run writes its rows to ``reports/benchmarks/fast_paths.csv`` and its date, machine,
commit and load to ``fast_paths.json`` beside them (``--out``; ``llmrec.report.bench_report``);
``--docs`` redraws docs/speed.md's benchmark table from those files.

Passes (real prompts of a seeded sample of temporal test records, llmrec.data.samples):

- greedy: ``generate`` through ``model.generate`` (naive) / finished rows leave the
  batch (``compact``) / that plus the bfloat16-screened LM head (``head="screened"``);
- constrained greedy and 4-beam: the full LM head (naive) / the head restricted to the
  catalog's tokens (``head="catalog"``: exact for greedy, a new setting for beams);
- likelihood reranking of 20 item-kNN candidates: the LM head at every position of the
  candidates' pass (naive) / only where a candidate token is predicted / normalised over
  the catalog's tokens only (``likelihood-catalog``, a new setting: "same" counts the
  records whose candidates it orders the same way);
- the ranker's letter scores (chapter 8's pass over every test record): 20 item-kNN
  candidates listed with their titles' years (naive) / without them (``-no-year``, a new
  setting, the ``cpu`` profile's: a shorter prompt). The base model, untrained: the cost
  of the pass does not depend on the adapter; "same" counts the records whose candidates
  it orders the same way.

Columns: records, wall and CPU seconds (this process; on a shared machine CPU seconds
are the steadier measure), prompts/s and new tokens/s (wall), seconds per record,
x naive (CPU seconds of the naive way / this way's), "same": outputs identical to the
naive way's (completions, or scores to the last bit), and GFLOP/s: the useful
work (2 x parameters per token through the layers, a shared prompt prefix once, plus
2 x hidden x vocabulary where a head is needed) per CPU second, and its share of a
float32 1024x1024 matrix multiply's speed on this CPU (one thread, measured at start:
the rough compute bound; the bfloat16 one is printed beside it). One torch thread.
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def matmul_gflops(m: int = 1024, k: int = 1024, n: int = 1024, dtype=None, seconds: float = 0.5,
                  tries: int = 3) -> float:
    """A quick probe of this CPU's matrix-multiply speed (GFLOP/s on the current threads):
    the best of ``tries`` runs of ``seconds`` CPU seconds each."""
    import torch

    a = torch.randn(m, k, dtype=dtype or torch.float32)
    b = torch.randn(k, n, dtype=dtype or torch.float32)
    a @ b
    best = 0.0
    for _ in range(tries):
        reps, start = 0, time.process_time()  # CPU seconds: other processes' load counts less
        while time.process_time() - start < seconds:
            a @ b
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.process_time() - start) / 1e9)
    return best


def model_sizes(model) -> tuple[int, int, int]:
    """``(parameters in the layers, hidden size, vocabulary)``: embeddings and head excluded."""
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    skip = {id(head.weight), id(emb.weight)}
    body = sum(p.numel() for p in model.parameters() if id(p) not in skip)
    return body, head.in_features, head.out_features


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def main(argv: list[str] | None = None) -> int:
    import torch

    from llmrec.data.movielens import load_movielens
    from llmrec.data.records import build_records, split_records
    from llmrec.data.samples import sample_label, sample_records
    from llmrec.evaluation.matching import Catalog
    from llmrec.llm.decoding import generate, prefix_split
    from llmrec.llm.heads import catalog_token_ids
    from llmrec.llm.models import is_instruct, load_model
    from llmrec.llm.prompts import build_prompts, title_map, titles_for
    from llmrec.paths import repo_root
    from llmrec.recommenders.baselines import fit_baseline
    from llmrec.recommenders.constrained import CatalogTrie, constrained_generate
    from llmrec.recommenders.ranker import answer_letter_ids, shown_order
    from llmrec.recommenders.rerank import (
        _candidate_ids,
        catalog_vocabulary,
        letter_prompt,
        order_by_scores,
        rerank_letters,
        rerank_likelihood,
    )
    from llmrec.report.bench_report import BLOCK, bench_block, machine, redraw_page, write_bench

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--passes", nargs="+", default=["greedy", "constrained", "beam", "likelihood", "ranker"])
    ap.add_argument("--n-greedy", type=int, default=32, help="records for the greedy pass")
    ap.add_argument("--style", default="auto",
                    help="greedy prompts: zero-shot | chat | few-shot | alpaca | auto (chat for instruct models)")
    ap.add_argument("--batch-size", type=int, default=32, help="the report's generation batch")
    ap.add_argument("--big-batch", type=int, default=64, help="a larger batch, for the greedy pass")
    ap.add_argument("--bf16", action="store_true",
                    help="also time greedy with the weights in bfloat16 (a new setting: outputs change)")
    ap.add_argument("--n-constrained", type=int, default=4, help="records for the constrained passes")
    ap.add_argument("--n-rerank", type=int, default=4, help="records for reranking")
    ap.add_argument("--n-ranker", type=int, default=16, help="records for the ranker's letter pass")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(repo_root() / "reports" / "benchmarks"),
                    help="where fast_paths.csv and fast_paths.json go")
    ap.add_argument("--docs", "--readme", dest="docs", action="store_true",
                    help="redraw docs/speed.md's benchmark table")
    args = ap.parse_args(argv)
    command = "python benchmarks/bench_fast_paths.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    torch.set_num_threads(args.threads)
    ml = load_movielens()
    parts = split_records(build_records(ml.ratings), "temporal")
    test = parts["test"]
    names = title_map(ml.movies)
    catalog = Catalog.from_movies(ml.movies)
    probe, probe_bf16 = matmul_gflops(), matmul_gflops(dtype=torch.bfloat16)
    meta = machine(probe, probe_bf16, torch.get_num_threads())
    bench_rows: list[dict] = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); float32 matmul probe "
          f"{probe:.0f} GFLOP/s, bfloat16 {probe_bf16:.0f}; load average "
          f"{os.getloadavg()[0]:.1f} (a shared machine: timings vary by tens of percent)", flush=True)
    head = (f"{'model':13} {'pass':20} {'way':28} {'recs':>4} {'wall s':>7} {'cpu s':>7} {'prompt/s':>8} "
            f"{'tok/s':>6} {'s/rec':>6} {'x naive':>7} {'same':>6} {'GFLOP/s':>7} {'% peak':>6}")

    for name in args.models:
        model, tok = load_model(name, dtype="float32", device="cpu")
        body, hidden, vocab = model_sizes(model)
        print(f"\n{name}: {body / 1e6:.0f} M parameters in the layers, head {hidden} x {vocab}: "
              f"{2 * body / 1e6:.0f} MFLOP per token + {2 * hidden * vocab / 1e6:.0f} MFLOP per head row")
        print(head)

        def row(label, way, n, t, new_tokens, flops, base=None, same="", name=name):
            ratio = f"{base.cpu / t.cpu:7.2f}" if base is not None else f"{'1.00':>7}"
            gf = flops / t.cpu / 1e9
            bench_rows.append({"model": name, "pass": label, "way": way, "records": n,
                            "wall_s": round(t.wall, 2), "cpu_s": round(t.cpu, 2),
                            "prompts_per_s": round(n / t.wall, 3), "tokens_per_s": round(new_tokens / t.wall, 2),
                            "s_per_record": round(t.cpu / n, 3),
                            "x_naive": round(base.cpu / t.cpu, 2) if base is not None else 1.0,
                            "same": same or None, "gflops": round(gf, 2),
                            "pct_of_matmul": round(100 * gf / probe, 1)})
            print(f"{name:13} {label:20} {way:28} {n:4d} {t.wall:7.1f} {t.cpu:7.1f} {n / t.wall:8.2f} "
                  f"{new_tokens / t.wall:6.1f} {t.cpu / n:6.2f} {ratio} {same:>6} {gf:7.1f} "
                  f"{100 * gf / probe:5.0f}%", flush=True)

        def lengths(texts, tok=tok):
            return [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]

        if "greedy" in args.passes:
            recs = sample_records(test, args.n_greedy)
            style = args.style if args.style != "auto" else "chat" if is_instruct(name, tok) else "zero-shot"
            extra = {"train_records": parts["train"]} if style == "few-shot" else {}
            prompts = build_prompts(style, recs, ml.movies, tokenizer=tok, **extra)
            label = f"greedy ({style})"
            generate(model, tok, prompts[:2], "greedy", batch_size=2, max_new_tokens=2, progress=False)
            split = prefix_split(tok, prompts)  # a shared prefix is computed once (its cache)
            p_tokens = (sum(lengths(prompts)) if split is None
                        else len(split[0]) + sum(len(own) for own in split[1]))
            common = dict(max_new_tokens=48, stop_after_titles=4, progress=False)
            bs, big = args.batch_size, args.big_batch
            with Timer() as naive:
                ref = generate(model, tok, prompts, "greedy", compact=False, head="full", batch_size=bs,
                               **common)
            new = sum(lengths(ref))
            flops = 2 * body * (p_tokens + new) + 2 * hidden * vocab * (len(prompts) + new)
            row(label, f"model.generate b{bs} (naive)", len(prompts), naive, new, flops)
            ways = [(f"b{bs}, finished rows leave", {"batch_size": bs, "head": "full"}),
                    (f"b{bs}, rows leave, screened", {"batch_size": bs, "head": "screened"}),
                    (f"b{big}, model.generate", {"batch_size": big, "compact": False, "head": "full"}),
                    (f"b{big}, rows leave, screened", {"batch_size": big, "head": "screened"})]
            if args.bf16:
                ways.append((f"b{big}, rows leave, bf16 weights", {"batch_size": big, "bf16": True}))
            for way, kw in ways:
                use = model
                if kw.pop("bf16", False):
                    use = copy.deepcopy(model).to(torch.bfloat16)
                with Timer() as t:
                    out = generate(use, tok, prompts, "greedy", **kw, **common)
                same = sum(a == b for a, b in zip(out, ref, strict=True))
                row(label, way, len(prompts), t, new, flops, naive, f"{same}/{len(ref)}")
            print(f"{'':13} records: {sample_label(len(test), len(recs))} of the temporal test split")

        if {"constrained", "beam"} & set(args.passes):
            recs = sample_records(test, args.n_constrained)
            prompts = build_prompts("alpaca", recs, ml.movies)
            exclude = [titles_for(r.input_ids, names) for r in recs.itertuples()]
            trie = CatalogTrie.from_titles(tok, catalog.titles)
            p_tokens = sum(lengths(prompts))
            for preset in [p for p in ("greedy", "beam4")
                           if (p == "greedy" and "constrained" in args.passes)
                           or (p == "beam4" and "beam" in args.passes)]:
                label = f"constrained {preset}"
                results, timers = {}, {}
                for way in ("full", "catalog"):
                    stats: dict[str, float] = {}
                    with Timer() as t:
                        results[way] = constrained_generate(
                            model, tok, prompts, trie, preset, batch_size=args.n_constrained,
                            exclude=exclude, progress=False, stats=stats, head=way)
                    timers[way] = t
                    beams = 4 if preset == "beam4" else 1
                    steps = stats["steps"]
                    flops = (2 * body * p_tokens * beams + 2 * hidden * vocab * len(prompts) * beams
                             + (2 * body + 2 * hidden * vocab) * steps * len(prompts) * beams)
                    if way == "full":
                        row(label, "full head (naive)", len(prompts), t, stats["new_tokens"], flops)
                    else:
                        same = sum(a == b for a, b in zip(results["catalog"], results["full"], strict=True))
                        tag = "catalog head" + (" (exact)" if preset == "greedy" else " (new setting)")
                        row(label, tag, len(prompts), t, stats["new_tokens"], flops, timers["full"],
                            f"{same}/{len(prompts)}")
            print(f"{'':13} records: {sample_label(len(test), len(recs))}; {len(trie.titles)} titles, "
                  f"the catalog head keeps {len(catalog_token_ids(trie))} of {vocab} tokens")

        if "likelihood" in args.passes:
            recs = sample_records(test, args.n_rerank)
            knn = fit_baseline("item_knn", parts["train"], ml.movies)
            cands = knn.recommend_many([list(map(int, i)) for i in recs["input_ids"]], 20)
            ctitles = [[names[int(i)] for i in c] for c in cands]
            prompts = build_prompts("alpaca", recs, ml.movies)
            rerank_likelihood(model, tok, prompts[:1], [ctitles[0][:2]], progress=False)
            c_tok = [_candidate_ids(tok, t, "\n") for t in ctitles]
            p_tokens = sum(lengths(prompts))
            body_tokens = p_tokens + sum(len(c) for cs in c_tok for c in cs)
            heads_needed = len(prompts) + sum(len(c) - 1 for cs in c_tok for c in cs)
            flops = 2 * body * body_tokens + 2 * hidden * vocab * heads_needed
            with Timer() as naive:
                ref = rerank_likelihood(model, tok, prompts, ctitles, progress=False, full_head=True)
            row("rerank likelihood", "head at every position", len(prompts), naive, 0, flops)
            with Timer() as t:
                out = rerank_likelihood(model, tok, prompts, ctitles, progress=False)
            row("rerank likelihood", "head where a token is scored", len(prompts), t, 0, flops, naive,
                f"{sum(a == b for a, b in zip(out, ref, strict=True))}/{len(ref)}")
            vocabulary = catalog_vocabulary(tok, catalog.titles)
            with Timer() as t:
                alt = rerank_likelihood(model, tok, prompts, ctitles, progress=False, vocabulary=vocabulary)
            same_order = sum(a == b for a, b in zip(order_by_scores(cands, alt), order_by_scores(cands, ref),
                                                    strict=True))
            flops_cat = flops - 2 * hidden * (vocab - len(vocabulary)) * (heads_needed - len(prompts))
            row("rerank likelihood", "catalog-normalised (new)", len(prompts), t, 0, flops_cat, naive,
                f"{same_order}/{len(ref)}")
            print(f"{'':13} records: {sample_label(len(test), len(recs))}, 20 item-kNN candidates each; "
                  f"'same' for the catalog-normalised setting: records ranked in the same order "
                  f"({len(vocabulary)} catalog tokens)")
        if "ranker" in args.passes:
            recs = sample_records(test, args.n_ranker)
            knn = fit_baseline("item_knn", parts["train"], ml.movies)
            cands = knn.recommend_many([list(map(int, i)) for i in recs["input_ids"]], 20)
            letters = answer_letter_ids(tok, 20)
            orders, prompts_by = [], {}
            for rid, cs in zip(recs["record_id"], cands, strict=True):
                orders.append([cs[j] for j in shown_order(rid, len(cs), 0)])
            for with_year in (True, False):
                shown = title_map(ml.movies, with_year)
                prompts_by[with_year] = [letter_prompt(titles_for(i, shown), titles_for(o, shown))
                                         for i, o in zip(recs["input_ids"], orders, strict=True)]
            rerank_letters(model, tok, prompts_by[True][:1], [20], batch_size=1, progress=False,
                           over="letters", token_ids=letters)
            timers, ranked = {}, {}
            for with_year in (True, False):
                prompts = prompts_by[with_year]
                flops = 2 * body * sum(lengths(prompts)) + 2 * hidden * vocab * len(prompts)
                with Timer() as t:
                    scores = rerank_letters(model, tok, prompts, [20] * len(prompts), batch_size=1,
                                            progress=False, over="letters", token_ids=letters)
                timers[with_year], ranked[with_year] = t, order_by_scores(orders, scores)
                if with_year:
                    row("ranker letters", "titles with year", len(prompts), t, 0, flops)
                else:
                    same = sum(a == b for a, b in zip(ranked[False], ranked[True], strict=True))
                    row("ranker letters", "titles without year (new)", len(prompts), t, 0, flops,
                        timers[True], f"{same}/{len(prompts)}")
            print(f"{'':13} records: {sample_label(len(test), len(recs))}, 20 item-kNN candidates each, one "
                  f"prompt a pass; prompt tokens {sum(lengths(prompts_by[True])) / len(recs):.0f} with "
                  f"years, {sum(lengths(prompts_by[False])) / len(recs):.0f} without")
        del model
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    path = write_bench(bench_rows, meta, args.out, command)
    print(f"wrote {path} and its run facts beside it")
    if args.docs:
        print(f"redrew the benchmark table of {redraw_page(BLOCK, bench_block(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
