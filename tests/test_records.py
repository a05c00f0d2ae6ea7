"""Records and splits (PROTOCOL.md sections 1-2) on hand-made tables and on the real ml-100k."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmrec.cli import main
from llmrec.data.records import (
    build_records,
    describe_counts,
    likes,
    split_records,
    split_sizes,
    to_alpaca,
)
from llmrec.errors import LlmrecError


def _ratings(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _user(user, n_likes, start_item=100, extra_dislikes=0):
    """n_likes liked ratings at increasing times, plus some ratings below the threshold."""
    rows = [(user, start_item + i, 4.0 + (i % 2), 1000 + i) for i in range(n_likes)]
    rows += [(user, 900 + i, 3.0, 1000 + i) for i in range(extra_dislikes)]
    return rows


def test_likes_threshold_and_order():
    r = _ratings([(1, 5, 4.0, 10), (1, 3, 3.5, 5), (1, 2, 5.0, 10), (1, 9, 4.0, 1), (2, 1, 1.0, 1)])
    liked = likes(r)
    # 3.5 and 1.0 are not likes; equal timestamps are ordered by item id
    assert liked["item_id"].tolist() == [9, 2, 5]
    assert likes(r, threshold=3.5)["item_id"].tolist() == [9, 3, 2, 5]


def test_windows_remainder_and_counts():
    rows = _user(1, 25, extra_dislikes=5) + _user(2, 9) + _user(3, 10) + [(4, 1, 2.0, 1)]
    recs = build_records(_ratings(rows))
    # user 1: 25 likes -> 2 windows, 5 dropped; user 2: 9 likes -> none; user 3: exactly one window
    assert recs["record_id"].tolist() == ["1-0", "1-1", "3-0"]
    first, second = recs.iloc[0], recs.iloc[1]
    assert first.input_ids == [100, 101, 102, 103, 104, 105]
    assert first.target_ids == [106, 107, 108, 109]
    assert second.input_ids == [110, 111, 112, 113, 114, 115]
    assert second.target_ids == [116, 117, 118, 119]
    assert first.input_end_ts == 1005 and first.target_end_ts == 1009
    c = recs.attrs["counts"]
    assert c["users"] == 4
    assert c["users_with_likes"] == 3
    assert c["users_with_records"] == 2
    assert c["users_skipped_fewer_than_window"] == 1
    assert c["likes"] == 25 + 9 + 10
    assert c["likes_dropped_remainder"] == 5 + 9
    assert "3 records from 2 users" in describe_counts(recs)


def test_tie_order_by_item_id():
    # ten likes all at the same second, listed in scrambled order
    items = [7, 3, 9, 1, 5, 10, 2, 8, 4, 6]
    recs = build_records(_ratings([(1, i, 5.0, 42) for i in items]))
    assert recs.iloc[0].input_ids == [1, 2, 3, 4, 5, 6]
    assert recs.iloc[0].target_ids == [7, 8, 9, 10]


def test_time_order_beats_file_order():
    rows = [(1, 100 + i, 4.0, 2000 - i) for i in range(10)]  # later rows are earlier in time
    recs = build_records(_ratings(rows))
    assert recs.iloc[0].input_ids == [109, 108, 107, 106, 105, 104]


def test_bad_window_parameters():
    with pytest.raises(LlmrecError, match="n_input"):
        build_records(_ratings(_user(1, 10)), window=10, n_input=10)


def test_ml100k_counts(ml100k):
    recs = build_records(ml100k.ratings)
    c = recs.attrs["counts"]
    assert len(recs) == c["records"] == 5111
    assert c["users_with_records"] == recs["user_id"].nunique() == 897
    assert c["users_with_likes"] == 942
    assert c["users_skipped_fewer_than_window"] == 45
    assert recs["input_ids"].map(len).eq(6).all() and recs["target_ids"].map(len).eq(4).all()
    assert recs["record_id"].is_unique


@pytest.fixture(scope="module")
def ml_records(ml100k):
    return build_records(ml100k.ratings)


def test_temporal_split(ml_records):
    parts = split_records(ml_records, "temporal")
    assert sum(len(p) for p in parts.values()) == len(ml_records)
    test, valid, train = parts["test"], parts["valid"], parts["train"]
    # one test record per user, and it is that user's last window
    assert test["user_id"].is_unique and len(test) == 897
    last = ml_records.groupby("user_id")["window"].max()
    assert (test.set_index("user_id")["window"] == last.loc[test["user_id"]].to_numpy()).all()
    # users with one record have no validation record
    n_per_user = ml_records.groupby("user_id").size()
    assert len(valid) == int((n_per_user >= 2).sum())
    # no user's test (or validation) record is in training, and training comes earlier in time
    assert not set(test["record_id"]) & set(train["record_id"])
    merged = train.merge(test[["user_id", "window", "input_end_ts"]], on="user_id",
                         suffixes=("", "_test"))
    assert (merged["window"] < merged["window_test"]).all()
    assert (merged["target_end_ts"] <= merged["input_end_ts_test"]).all()


def test_blog_split_sizes_and_seed(ml_records):
    parts = split_records(ml_records, "blog", seed=0)
    n = len(ml_records)
    assert len(parts["test"]) == round(0.18 * n) == 920
    assert len(parts["valid"]) == round(0.05 * n)
    assert len(parts["train"]) == n - 920 - round(0.05 * n)
    ids = [set(p["record_id"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = split_records(ml_records, "blog", seed=0)
    assert again["test"]["record_id"].tolist() == parts["test"]["record_id"].tolist()
    other = split_records(ml_records, "blog", seed=1)
    assert other["test"]["record_id"].tolist() != parts["test"]["record_id"].tolist()
    # the leak the report names: users on both sides
    assert set(parts["test"]["user_id"]) & set(parts["train"]["user_id"])
    sizes = split_sizes(ml_records)
    assert sizes["blog"]["test"] == 920 and sizes["temporal"]["test"] == 897


def test_unknown_split(ml_records):
    with pytest.raises(LlmrecError, match="temporal"):
        split_records(ml_records, "random")


def test_alpaca(ml100k, ml_records):
    rows = to_alpaca(ml_records.head(2), ml100k)
    r = rows[0]
    titles = ml100k.display_titles()
    assert r["input"].split(" => ") == [titles[i] for i in r["input_ids"]]
    assert r["output"].split(" => ") == [titles[i] for i in r["target_ids"]]
    assert r["record_id"] == ml_records.iloc[0].record_id and r["instruction"]
    no_year = to_alpaca(ml_records.head(1), ml100k, with_year=False)[0]
    assert "(19" not in no_year["output"] and len(no_year["output"]) < len(r["output"])


def test_records_cli(tmp_path, ml_records):
    out = tmp_path / "test.jsonl"
    assert main(["records", "--split", "temporal", "--part", "test", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 897
    assert {"record_id", "user_id", "input_ids", "target_ids"} <= set(rows[0])
    expected = split_records(ml_records, "temporal")["test"].iloc[0]
    assert rows[0]["input_ids"] == expected.input_ids and rows[0]["record_id"] == expected.record_id
    out2 = tmp_path / "blog.jsonl"
    assert main(["records", "--split", "blog", "--part", "valid", "--out", str(out2), "--alpaca"]) == 0
    rows2 = [json.loads(line) for line in out2.read_text().splitlines()]
    assert len(rows2) == 256 and " => " in rows2[0]["input"] and len(rows2[0]["target_ids"]) == 4
