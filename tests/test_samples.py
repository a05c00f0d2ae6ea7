"""Seeded nested samples of test records (PROTOCOL.md section 4)."""

from __future__ import annotations

import pandas as pd
import pytest

from llmrec.data.samples import sample_ids, sample_label, sample_records
from llmrec.errors import LlmrecError


@pytest.fixture
def test_frame():
    users = range(1, 401)
    return pd.DataFrame({"record_id": [f"{u}-0" for u in users], "user_id": list(users)})


def test_nested_and_deterministic(test_frame):
    small, mid, big = (set(sample_records(test_frame, n)["record_id"]) for n in (10, 100, 300))
    assert (len(small), len(mid), len(big)) == (10, 100, 300)
    assert small < mid < big
    again = sample_records(test_frame, 100)
    assert set(again["record_id"]) == mid  # same call, same records
    # sampling a sample gives the smaller sample of the whole
    assert set(sample_records(sample_records(test_frame, 300), 100)["record_id"]) == mid


def test_not_the_first_n_and_seeded(test_frame):
    picked = sample_records(test_frame, 100)
    assert list(picked["record_id"]) != list(test_frame["record_id"][:100])
    assert picked["user_id"].max() > 300  # drawn from the whole range of users
    assert list(picked.index) == sorted(picked.index)  # rows keep the frame's order
    other = set(sample_records(test_frame, 100, seed=1)["record_id"])
    assert other != set(picked["record_id"])


def test_same_sample_for_every_system(test_frame):
    """Two systems see the test records in different orders, or with other columns."""
    shuffled = test_frame.sample(frac=1.0, random_state=3).assign(prompt="x")
    assert set(sample_records(shuffled, 50)["record_id"]) == set(sample_records(test_frame, 50)["record_id"])


def test_n_at_least_len_is_all(test_frame):
    assert sample_records(test_frame, None) is test_frame
    assert sample_records(test_frame, 400) is test_frame
    assert sample_records(test_frame, 1000) is test_frame
    assert len(sample_records(test_frame, 0)) == 0
    assert sample_label(400, None) == "all" and sample_label(400, 400) == "all"
    assert sample_label(897, 300) == "sample-300/seed0"


def test_permutation_and_errors(test_frame):
    ids = list(test_frame["record_id"])
    perm = sample_ids(ids, None)
    assert sorted(perm) == sorted(ids) and perm != ids
    assert sample_ids(ids, 7) == perm[:7]
    with pytest.raises(LlmrecError, match="repeat"):
        sample_ids(["a", "a"], 1)
    with pytest.raises(LlmrecError, match=">= 0"):
        sample_records(test_frame, -1)
    with pytest.raises(LlmrecError, match="record_id"):
        sample_records(pd.DataFrame({"x": [1, 2]}), 1)
