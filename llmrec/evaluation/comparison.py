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


def seed_spread(rows_by_seed: Mapping[int, Mapping[str, Any]], metric: str = "map_at_4") -> pd.DataFrame:
    """The same recipe trained with several seeds and scored on the same records: one line
    per seed (its mean ``metric`` and record-bootstrap interval, from its metrics row) and a
    line ``across seeds`` with the seeds' mean, standard deviation, least and greatest.
    The spread across seeds is what a retraining changes; the interval is what another
    sample of records would change: both are needed to read a single adapter's number."""
    if not rows_by_seed:
        raise LlmrecError("no seeds to compare; train chapter 4's adapter with lora_seeds")
    sizes = {int(row["n_records"]) for row in rows_by_seed.values()}
    if len(sizes) > 1:
        raise LlmrecError(f"the seeds were scored on different numbers of records ({sorted(sizes)}); "
                          "score every seed on the same records")
    lines = [{"seed": str(seed), "n_records": int(row["n_records"]), metric: row[metric],
              f"{metric}_low": row[f"{metric}_low"], f"{metric}_high": row[f"{metric}_high"],
              "validity": row.get("validity")} for seed, row in rows_by_seed.items()]
    values = pd.Series([line[metric] for line in lines], dtype=float)
    lines.append({"seed": "across seeds", "n_records": lines[0]["n_records"], metric: values.mean(),
                  "sd": values.std(ddof=1) if len(values) > 1 else float("nan"),
                  "least": values.min(), "greatest": values.max()})
    return pd.DataFrame(lines)


def seed_sentence(table: pd.DataFrame, metric: str = "map_at_4") -> str:
    """What :func:`seed_spread`'s table says, in one sentence: the range across seeds against
    the first seed's record-bootstrap interval."""
    seeds, across = table[table["seed"] != "across seeds"], table[table["seed"] == "across seeds"].iloc[0]
    first = seeds.iloc[0]
    width = first[f"{metric}_high"] - first[f"{metric}_low"]
    spread = across["greatest"] - across["least"]
    verdict = ("no wider than" if spread == width == 0 else "smaller than" if spread < width
               else "as large as or larger than")
    return (f"Across {len(seeds)} training seeds on the same {int(first['n_records'])} records, MAP@4 runs "
            f"from {across['least']:.4f} to {across['greatest']:.4f} (mean {across[metric]:.4f}, sd "
            f"{across['sd']:.4f}); seed {first['seed']}'s record-bootstrap interval is "
            f"[{first[f'{metric}_low']:.4f}, {first[f'{metric}_high']:.4f}]: the spread across seeds is "
            f"{verdict} the interval's width ({spread:.4f} against {width:.4f}).")
