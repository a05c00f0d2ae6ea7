"""Likes, records (6 liked movies in, 4 out) and the two splits: PROTOCOL.md sections 1-2.

- A like is a rating >= 4.
- Per user, likes in time order (ties broken by item id) are cut into consecutive,
  non-overlapping windows of 10 from the first like on; a remainder shorter than 10 is
  dropped. Each window is one record: the first 6 items are the input, the last 4 the target.
- ``temporal`` split: each user's last record is test, the one before it (where there is
  one) validation, all earlier ones training. ``blog`` split: all records shuffled with
  seed 0, the first 18% test, the next 5% validation, the rest training (the same user can
  fall on both sides: a leak the report names).

The records frame has ``record_id ("<user>-<window>"), user_id, window (0-based),
input_ids (6), target_ids (4), input_end_ts, target_end_ts``; ``records.attrs["counts"]``
says how many users and likes went where (users with too few likes give no record).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.artifacts import write_jsonl
from llmrec.data.formats import join_titles, title_map, titles_for
from llmrec.data.movielens import load_movielens
from llmrec.errors import LlmrecError

LIKE_THRESHOLD = 4.0
WINDOW = 10
N_INPUT = 6
SPLITS = ("temporal", "blog")
PARTS = ("train", "valid", "test")
#: ``blog`` split: shares of the shuffled records that go to test, then to validation.
BLOG_TEST_SHARE = 0.18
BLOG_VALID_SHARE = 0.05
DEFAULT_INSTRUCTION = (
    "Given the 6 movies a user liked, in the order they watched them, recommend 4 more "
    "movies the user will like."
)
RECORD_COLUMNS = ["record_id", "user_id", "window", "input_ids", "target_ids",
                  "input_end_ts", "target_end_ts"]


def likes(ratings: pd.DataFrame, threshold: float = LIKE_THRESHOLD) -> pd.DataFrame:
    """The liked ratings (rating >= threshold), per user in time order, ties by item id."""
    liked = ratings[ratings["rating"] >= threshold]
    return liked.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)


def build_records(
    ratings: pd.DataFrame,
    window: int = WINDOW,
    n_input: int = N_INPUT,
    like_threshold: float = LIKE_THRESHOLD,
) -> pd.DataFrame:
    """Cut each user's likes into windows of ``window``: ``n_input`` items in, the rest out.

    Returns the records frame (module docstring), ordered by user then window, with
    ``attrs["counts"]``: users, users_with_likes, users_with_records,
    users_skipped_fewer_than_window, likes, likes_in_records, likes_dropped_remainder,
    records, and the parameters used.
    """
    if not 0 < n_input < window:
        raise LlmrecError(f"n_input must be between 1 and window - 1 (got n_input={n_input}, "
                          f"window={window})")
    liked = likes(ratings, like_threshold)
    rows: list[dict[str, Any]] = []
    skipped = 0
    in_records = 0
    for user, group in liked.groupby("user_id", sort=True):
        items = group["item_id"].to_numpy()
        stamps = group["timestamp"].to_numpy()
        n_windows = len(items) // window
        if n_windows == 0:
            skipped += 1
            continue
        for w in range(n_windows):
            lo = w * window
            rows.append({
                "record_id": f"{int(user)}-{w}",
                "user_id": int(user),
                "window": w,
                "input_ids": [int(i) for i in items[lo:lo + n_input]],
                "target_ids": [int(i) for i in items[lo + n_input:lo + window]],
                "input_end_ts": int(stamps[lo + n_input - 1]),
                "target_end_ts": int(stamps[lo + window - 1]),
            })
        in_records += n_windows * window
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    for col in ("user_id", "window", "input_end_ts", "target_end_ts"):
        records[col] = records[col].astype("int64")
    users_with_likes = int(liked["user_id"].nunique())
    records.attrs["counts"] = {
        "users": int(ratings["user_id"].nunique()),
        "users_with_likes": users_with_likes,
        "users_with_records": users_with_likes - skipped,
        "users_skipped_fewer_than_window": skipped,
        "likes": int(len(liked)),
        "likes_in_records": in_records,
        "likes_dropped_remainder": int(len(liked)) - in_records,
        "records": int(len(records)),
        "like_threshold": like_threshold,
        "window": window,
        "n_input": n_input,
    }
    return records


def describe_counts(records: pd.DataFrame) -> str:
    """One line with the counts of :func:`build_records`, for logs and the report."""
    c = records.attrs.get("counts", {})
    return (f"{c.get('records', len(records)):,} records from {c.get('users_with_records', '?'):,} users "
            f"({c.get('users_with_likes', '?'):,} users have a like; "
            f"{c.get('users_skipped_fewer_than_window', '?'):,} have fewer than {c.get('window', WINDOW)} "
            f"and give no record; {c.get('likes_dropped_remainder', '?'):,} likes dropped as remainders)")


def split_records(records: pd.DataFrame, split: str, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``{"train", "valid", "test"}`` frames for split ``temporal`` or ``blog`` (module docstring).

    ``blog``: the records (in user, window order) are permuted with
    ``np.random.default_rng(seed)``; the first ``round(0.18 n)`` are test, the next
    ``round(0.05 n)`` validation, the rest training.
    """
    if split == "temporal":
        order = records.sort_values(["user_id", "window"], kind="stable")
        rank_from_end = order.groupby("user_id").cumcount(ascending=False)
        parts = {
            "train": order[rank_from_end >= 2],
            "valid": order[rank_from_end == 1],
            "test": order[rank_from_end == 0],
        }
    elif split == "blog":
        n = len(records)
        perm = np.random.default_rng(seed).permutation(n)
        n_test = int(round(BLOG_TEST_SHARE * n))
        n_valid = int(round(BLOG_VALID_SHARE * n))
        shuffled = records.iloc[perm]
        parts = {
            "test": shuffled.iloc[:n_test],
            "valid": shuffled.iloc[n_test:n_test + n_valid],
            "train": shuffled.iloc[n_test + n_valid:],
        }
    else:
        raise LlmrecError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    out = {}
    for part in PARTS:
        frame = parts[part].reset_index(drop=True)
        frame.attrs = {"split": split, "part": part, "seed": seed}
        out[part] = frame
    return out


def split_sizes(records: pd.DataFrame, seed: int = 0) -> dict[str, dict[str, int]]:
    """``{split: {part: n_records}}`` for both splits."""
    return {s: {p: len(f) for p, f in split_records(records, s, seed).items()} for s in SPLITS}


def titles_text(item_ids: list[int], titles: Mapping[int, str]) -> str:
    """Item ids -> ``"A (1995) => B (1996)"``."""
    return join_titles(titles_for(item_ids, titles))


def item_popularity(train_records: pd.DataFrame) -> dict[int, int]:
    """item id -> number of training records whose 10 items (input and target) include it."""
    counts: dict[int, int] = {}
    for col in ("input_ids", "target_ids"):
        for items in train_records[col]:
            for i in items:
                counts[int(i)] = counts.get(int(i), 0) + 1
    return counts


def to_alpaca(
    records: pd.DataFrame,
    movies: Any,
    with_year: bool = True,
    instruction: str = DEFAULT_INSTRUCTION,
) -> list[dict[str, Any]]:
    """Alpaca-style rows: ``instruction``, ``input`` (6 titles joined by `` => ``), ``output``
    (the 4 target titles), plus ``record_id``, ``user_id``, ``input_ids``, ``target_ids``.

    ``movies`` is a :class:`~llmrec.data.movielens.MovieLens`, its ``movies`` frame, or a dict
    item_id -> title. ``with_year=False`` shows bare titles (the ablation without years).
    """
    titles = title_map(movies, with_year)
    return [
        {
            "instruction": instruction,
            "input": titles_text(r.input_ids, titles),
            "output": titles_text(r.target_ids, titles),
            "record_id": r.record_id,
            "user_id": int(r.user_id),
            "input_ids": list(map(int, r.input_ids)),
            "target_ids": list(map(int, r.target_ids)),
        }
        for r in records.itertuples(index=False)
    ]


def to_rows(records: pd.DataFrame) -> list[dict[str, Any]]:
    """The records as plain dicts (JSON-ready), in frame order."""
    return [
        {"record_id": r.record_id, "user_id": int(r.user_id), "window": int(r.window),
         "input_ids": list(map(int, r.input_ids)), "target_ids": list(map(int, r.target_ids)),
         "input_end_ts": int(r.input_end_ts), "target_end_ts": int(r.target_end_ts)}
        for r in records.itertuples(index=False)
    ]


def load_split(split: str, part: str, dataset: str | Path | None = None, seed: int = 0,
               like_threshold: float = LIKE_THRESHOLD) -> pd.DataFrame:
    """Convenience: load MovieLens, build the records, and return one part of one split."""
    if part not in PARTS:
        raise LlmrecError(f"unknown part {part!r}; use one of {', '.join(PARTS)}")
    ml = load_movielens(dataset)
    records = build_records(ml.ratings, like_threshold=like_threshold)
    return split_records(records, split, seed)[part]


# ---------------------------------------------------------------- command line
def _cmd_records(args) -> int:
    ml = load_movielens(args.dataset)
    records = build_records(ml.ratings, like_threshold=args.like_threshold)
    part = split_records(records, args.split, args.seed)[args.part]
    if args.alpaca:
        extra = {r["record_id"]: r for r in to_rows(part)}
        rows = [{**extra[a["record_id"]], **a} for a in to_alpaca(part, ml, with_year=not args.no_year)]
    else:
        rows = to_rows(part)
    write_jsonl(args.out, rows)
    print(f"{ml.name}: {describe_counts(records)}", file=sys.stderr)
    print(f"wrote {len(rows):,} {args.split}/{args.part} records to {args.out}", file=sys.stderr)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "records", help="write the records of one split part as JSON lines",
        description="One JSON object a line: record_id, user_id, window, input_ids (6), "
                    "target_ids (4), input_end_ts, target_end_ts (+ instruction/input/output "
                    "with --alpaca).")
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--part", choices=PARTS, required=True)
    p.add_argument("--out", required=True, help="output file (.jsonl, or .jsonl.gz)")
    p.add_argument("--dataset", default=None, help="MovieLens folder (default: embedded ml-100k)")
    p.add_argument("--seed", type=int, default=0, help="seed of the blog split's shuffle")
    p.add_argument("--like-threshold", type=float, default=LIKE_THRESHOLD)
    p.add_argument("--alpaca", action="store_true", help="add Alpaca instruction/input/output")
    p.add_argument("--no-year", action="store_true", help="with --alpaca: titles without year")
    p.set_defaults(func=_cmd_records)

