"""Systems compared on the same records: means with intervals and paired differences.

PROTOCOL.md section 4: a difference between two systems is judged by a paired bootstrap
on the records both were scored on. :func:`paired_table` restricts every system to the
records all of them share and reports each one's mean with its 95% interval and its
paired difference from a reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import bootstrap_ci, paired_bootstrap, per_record


def paired_table(rows_by_label: Mapping[str, Sequence[Mapping[str, Any]]], reference: str,
                 metric: str = "map_at_4", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each system on the records all of them share: mean ``metric`` with its 95% interval,
    and the paired-bootstrap difference from ``reference`` (``diff``, ``diff_low``,
    ``diff_high``, ``p``). One row per label, in the given order."""
    if reference not in rows_by_label:
        raise LlmrecError(f"reference {reference!r} is not among the systems compared")
    common = set.intersection(*(set(r["record_id"] for r in rows) for rows in rows_by_label.values()))
    if not common:
        raise LlmrecError("the systems compared share no records; evaluate them on the same split")
    order = sorted(common)
    values = {}
    for label, rows in rows_by_label.items():
        by_id = {r["record_id"]: r for r in rows}
        values[label] = per_record([by_id[i] for i in order], metric)
    out = []
    for label, v in values.items():
        mean, low, high = bootstrap_ci(v, n_boot, seed)
        diff = paired_bootstrap(v, values[reference], n_boot, seed)
        out.append({"system": label, "n_records": len(order), metric: mean, f"{metric}_low": low,
                    f"{metric}_high": high, "diff": diff["diff"], "diff_low": diff["low"],
                    "diff_high": diff["high"], "p": diff["p"]})
    return pd.DataFrame(out)
