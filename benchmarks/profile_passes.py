"""Where one model's evaluation passes spend their time: prefill, decoding steps, the LM
head, and the Python around them (stopping rule, logits processors), on real prompts.

    python benchmarks/profile_passes.py --models smollm2-135m gemma3-270m

Each pass runs once with timing hooks on the model's decoder and LM head: a forward
over more than one new position per row is "prefill", one new position per row is a
"decoding step" (each with its head's time); the head's share is given apart; "other"
is what is left of the wall time (tokenizing, the stopping rule, logits processors,
beam bookkeeping, and with ``--fast`` the screened head, which bypasses the head layer).
Passes: batched greedy (chat prompts for an instruct model, else zero-shot),
catalog-constrained 4-beam on a few prompts, and likelihood / letter reranking of 20
candidates on a few records. By default the naive paths (``model.generate``, the full
LM head everywhere); ``--fast`` profiles the library's defaults. One torch thread;
timings from a shared machine vary by tens of percent.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Hooks:
    """Forward hooks that add up seconds of prefill and decoding forwards and of the head."""

    def __init__(self, model):
        self.model = model
        self.t = defaultdict(float)
        self.n = defaultdict(int)
        self._start = {}
        self._last = "prefill"
        head = model.get_output_embeddings()
        body = model.get_decoder()
        self.handles = [
            body.register_forward_pre_hook(self._pre("model"), with_kwargs=True),
            body.register_forward_hook(self._post_model, with_kwargs=True),
            head.register_forward_pre_hook(self._pre("head")),
            head.register_forward_hook(self._post_head),
        ]

    def _pre(self, key):
        def hook(module, args, kwargs=None):
            self._start[key] = time.perf_counter()
        return hook

    def _post_model(self, module, args, kwargs, output):
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        kind = "decode" if ids is not None and ids.shape[1] == 1 else "prefill"
        self.t[kind] += time.perf_counter() - self._start["model"]
        self.n[kind] += 1
        self._last = kind

    def _post_head(self, module, args, output):
        secs = time.perf_counter() - self._start["head"]
        kind = self._last  # the head runs on the output of the decoder call just made
        self.t[f"head_{kind}"] += secs
        self.t[kind] += secs  # the decoder's hook has fired: add the head to its call

    def reset(self):
        self.t.clear()
        self.n.clear()

    def remove(self):
        for h in self.handles:
            h.remove()


def report(name, label, wall, hooks, extra=""):
    t = hooks.t
    pre, dec = t["prefill"], t["decode"]
    other = max(0.0, wall - pre - dec)
    line = (f"{name:13} {label:30} wall {wall:7.1f}s  prefill {100 * pre / wall:4.0f}% "
            f"({hooks.n['prefill']} calls)  decode {100 * dec / wall:4.0f}% ({hooks.n['decode']} steps, "
            f"{1000 * dec / max(1, hooks.n['decode']):.0f} ms/step)  LM head {100 * (t['head_prefill'] + t['head_decode']) / wall:4.0f}% "
            f"(prefill's {100 * t['head_prefill'] / max(pre, 1e-9):.0f}%, decode's "
            f"{100 * t['head_decode'] / max(dec, 1e-9):.0f}%)  other {100 * other / wall:4.0f}% {extra}")
    print(line, flush=True)


def main(argv=None) -> int:
    import torch

    from llmrec.data.movielens import load_movielens
    from llmrec.data.records import build_records, split_records
    from llmrec.data.samples import sample_records
    from llmrec.evaluation.matching import Catalog
    from llmrec.llm.decoding import generate
    from llmrec.llm.models import is_instruct, load_model
    from llmrec.llm.prompts import build_prompts, title_map, titles_for
    from llmrec.recommenders.baselines import fit_baseline
    from llmrec.recommenders.constrained import CatalogTrie, constrained_generate
    from llmrec.recommenders.rerank import letter_prompt, rerank_letters, rerank_likelihood

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--passes", nargs="+", default=["greedy", "constrained", "likelihood", "letters"])
    ap.add_argument("--n-greedy", type=int, default=32)
    ap.add_argument("--n-constrained", type=int, default=4)
    ap.add_argument("--n-rerank", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fast", action="store_true", help="profile the library's defaults, not the naive paths")
    args = ap.parse_args(argv)
    naive = not args.fast
    greedy_kw = {"compact": False, "head": "full"} if naive else {}
    head_kw = {"head": "full"} if naive else {}
    rerank_kw = {"full_head": True} if naive else {}

    torch.set_num_threads(args.threads)
    ml = load_movielens()
    parts = split_records(build_records(ml.ratings), "temporal")
    test = sample_records(parts["test"], max(args.n_greedy, args.n_constrained, args.n_rerank))
    catalog = Catalog.from_movies(ml.movies)
    names = title_map(ml.movies)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} at start "
          f"(a shared machine)", flush=True)
    for name in args.models:
        model, tok = load_model(name, dtype="float32", device="cpu")
        style = "chat" if is_instruct(name, tok) else "zero-shot"
        hooks = Hooks(model)
        if "greedy" in args.passes:
            prompts = build_prompts(style, test.head(args.n_greedy), ml.movies, tokenizer=tok)
            generate(model, tok, prompts[:2], "greedy", batch_size=2, max_new_tokens=2, progress=False)
            hooks.reset()
            t0 = time.perf_counter()
            out = generate(model, tok, prompts, "greedy", batch_size=args.n_greedy, max_new_tokens=48,
                           stop_after_titles=4, progress=False, **greedy_kw)
            wall = time.perf_counter() - t0
            new = [len(tok(o, add_special_tokens=False)["input_ids"]) for o in out]
            steps = hooks.n["decode"] + 1
            waste = 1 - sum(new) / (steps * len(out))
            report(name, f"greedy b{args.n_greedy} ({style})", wall, hooks,
                   f"| {sum(new)} new tokens, {waste:.0%} of row-steps after a row finished")
        if "constrained" in args.passes:
            trie = CatalogTrie.from_titles(tok, catalog.titles)
            prompts = build_prompts("alpaca", test.head(args.n_constrained), ml.movies)
            hooks.reset()
            stats = {}
            t0 = time.perf_counter()
            constrained_generate(model, tok, prompts, trie, "beam4", batch_size=args.n_constrained,
                                 progress=False, stats=stats, **head_kw)
            wall = time.perf_counter() - t0
            report(name, f"constrained beam4 b{args.n_constrained}", wall, hooks,
                   f"| constraint masking {100 * stats['constraint_seconds'] / wall:.0f}%")
        if {"likelihood", "letters"} & set(args.passes):
            recs = test.head(args.n_rerank)
            knn = fit_baseline("item_knn", parts["train"], ml.movies)
            cands = knn.recommend_many([list(map(int, i)) for i in recs["input_ids"]], 20)
            ctitles = [[names[int(i)] for i in c] for c in cands]
            if "likelihood" in args.passes:
                prompts = build_prompts("alpaca", recs, ml.movies)
                hooks.reset()
                t0 = time.perf_counter()
                rerank_likelihood(model, tok, prompts, ctitles, progress=False, **rerank_kw)
                wall = time.perf_counter() - t0
                report(name, f"rerank likelihood x{len(recs)}", wall, hooks)
            if "letters" in args.passes:
                inputs = [titles_for(r.input_ids, names) for r in recs.itertuples()]
                prompts = [letter_prompt(i, c) for i, c in zip(inputs, ctitles, strict=True)]
                hooks.reset()
                t0 = time.perf_counter()
                rerank_letters(model, tok, prompts, [len(c) for c in ctitles], batch_size=5, progress=False)
                wall = time.perf_counter() - t0
                report(name, f"rerank letters x{len(recs)}", wall, hooks)
        hooks.remove()
        del model
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
