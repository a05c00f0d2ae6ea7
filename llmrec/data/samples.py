"""Seeded, nested samples of test records, for passes that cannot afford every record.

PROTOCOL.md section 4: a pass that cannot score every test record scores a seeded random
sample of them (seed 0), nested (the 100-record sample lies inside the 300-record one),
the same for every system it is compared with; never "the first N" (records are ordered
by user id, and the first users are not typical).

Each record id gets a key, a hash of ``seed`` and the id (SHA-256, so the same in every
process and on every machine); the records sorted by key are one seeded permutation, and
the sample of ``n`` is its first ``n``. Because a record's key depends only on its own
id, the sample does not depend on which other records are in the frame or in what order:
a smaller sample is always inside a larger one, sampling from a sample gives the smaller
sample of the whole, and two systems given the same test frame score the same records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from llmrec.errors import LlmrecError

if TYPE_CHECKING:
    import pandas as pd

#: The protocol's sample seed.
SEED = 0


def sample_key(record_id: object, seed: int = SEED) -> bytes:
    """The position key of one record in the seeded permutation (smaller comes first)."""
    return hashlib.sha256(f"{seed}\x1f{record_id}".encode()).digest()


def sample_ids(record_ids: Iterable[object], n: int | None, seed: int = SEED) -> list[object]:
    """The ``n`` ids that come first in the seeded permutation, in permutation order
    (all of them, permuted, when ``n`` is None or at least their number)."""
    ids = list(record_ids)
    if len(set(ids)) != len(ids):
        raise LlmrecError("record ids repeat; sample from a frame with one row per record")
    ranked = sorted(ids, key=lambda r: sample_key(r, seed))
    return ranked if n is None else ranked[:max(0, n)]


def sample_records(records: pd.DataFrame, n: int | None, seed: int = SEED) -> pd.DataFrame:
    """A seeded random sample of ``n`` records (rows of a records frame, in the frame's
    own order); the whole frame when ``n`` is None or at least its length."""
    if n is not None and n < 0:
        raise LlmrecError(f"a sample size must be >= 0 or null, got {n}")
    if "record_id" not in records:
        raise LlmrecError("sampling needs a records frame with a 'record_id' column (llmrec.data.records)")
    if n is None or n >= len(records):
        return records
    keep = set(sample_ids(records["record_id"], n, seed))
    return records[records["record_id"].isin(keep)]


def sample_label(n_total: int, n: int | None, seed: int = SEED) -> str:
    """How tables name the records a pass covers: ``"all"`` or ``"sample-300/seed0"``."""
    if n is None or n >= n_total:
        return "all"
    return f"sample-{n}/seed{seed}"
