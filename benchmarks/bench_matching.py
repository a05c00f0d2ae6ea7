"""How long matching takes: 10,000 messy titles against 1,682 and against 62,000 titles.

    python benchmarks/bench_matching.py [--n-titles 10000] [--sample 200] [--matchers ...]

The queries are messy variants of catalog titles (typos, no year, "The" in front) plus
titles not in the catalog. The 62,000-title catalog (ml-25m's size) is synthesised from
ml-100k's titles with variations (sequel numbers, subtitles, other years), since ml-25m is
not embedded. The fast path (:meth:`Matcher.match`) runs on all queries; the plain reference
(:meth:`Matcher.match_reference`, jellyfish in a Python loop) is timed on ``--sample`` queries
and extrapolated, which the output says. Both must give the same answers on the sample.
"""

from __future__ import annotations

import argparse
import random
import time

import pandas as pd

from llmrec.data.movielens import load_movielens
from llmrec.evaluation.matching import Catalog, get_matcher

SUFFIXES = ["II", "III", "2", "3", "4", "Returns", "Reloaded", "The Beginning", "Part 2",
            "Revisited", "Forever", "Rising", "Origins", "Redux", "The Final Chapter"]
NOT_IN_CATALOG = ["Inception (2010)", "The Dark Knight (2008)", "Parasite (2019)",
                  "Spirited Away (2001)", "The Last Starship of Orion (1996)", "Oppenheimer (2023)"]


def synth_catalog(titles: list[str], size: int, seed: int = 0) -> Catalog:
    """``size`` distinct titles: the real ones, then variations of them."""
    rng = random.Random(seed)
    out = dict.fromkeys(titles)
    while len(out) < size:
        t = rng.choice(titles)
        base, _, rest = t.rpartition(" (")
        year = rng.randint(1920, 2020)
        out[f"{base or t} {rng.choice(SUFFIXES)}{rng.choice(['', ': ' + rng.choice(SUFFIXES)])} ({year})"] = None
    names = list(out)[:size]
    return Catalog.from_titles({i + 1: t for i, t in enumerate(names)})


def messy_queries(titles: list[str], n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            out.append(rng.choice(NOT_IN_CATALOG).replace("(", rng.choice(["(", "["])))
            continue
        t = rng.choice(titles)
        if r < 0.3:  # no year
            t = t.rsplit(" (", 1)[0]
        elif r < 0.4 and t.endswith(")") and ", The (" in t:  # "The" in front
            base, year = t.rsplit(" (", 1)
            t = f"The {base[:-5]} ({year}"
        s = list(t)
        for _ in range(rng.randint(0, 3)):  # typos
            i = rng.randrange(len(s))
            s[i] = rng.choice("aeiourstln ")
        out.append("".join(s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-titles", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=200, help="queries timed with the reference")
    ap.add_argument("--matchers", nargs="+", default=["levenshtein", "normalized"])
    args = ap.parse_args()

    movies = load_movielens().movies
    small = Catalog.from_movies(movies)
    big = synth_catalog(small.titles, 62_000)
    queries = messy_queries(small.titles, args.n_titles)
    print(f"{len(queries):,} queries ({len(set(queries)):,} distinct); catalogs of "
          f"{len(small.titles):,} and {len(big.titles):,} titles; reference timed on "
          f"{args.sample} queries and extrapolated")
    rows = []
    for name in args.matchers:
        for label, cat in (("ml-100k", small), ("synthetic 62k", big)):
            m = get_matcher(name, cat)
            t0 = time.perf_counter()
            fast = m.match(queries)
            fast_s = time.perf_counter() - t0
            sample = queries[:args.sample]
            t0 = time.perf_counter()
            ref = m.match_reference(sample)
            ref_s = (time.perf_counter() - t0) * len(queries) / len(sample)
            agree = fast[:len(sample)] == ref
            rows.append({"matcher": name, "catalog": label, "catalog_titles": len(cat.titles),
                         "queries": len(queries), "fast_s": round(fast_s, 2),
                         "reference_s (extrapolated)": round(ref_s, 1),
                         "speed-up": round(ref_s / fast_s, 1), "agree_on_sample": agree,
                         "matched_share": round(sum(f is not None for f in fast) / len(fast), 3)})
            print(rows[-1], flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
