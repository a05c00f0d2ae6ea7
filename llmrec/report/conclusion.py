"""A chapter's conclusion, computed from the rows it wrote.

Every chapter that scores systems ends with :meth:`llmrec.report.Chapter.conclusion`: one
sentence per row, each quoting a single sample, so that no sentence mixes numbers scored on
different records. The rows are grouped by the records they were scored on (a seeded sample,
every test record, the validation records of a sweep); in each group of test records the
strongest collaborative baseline is re-scored on exactly those records, and every row is
paired with it record by record (bootstrap, 95%). A row that scores its retriever's AP on
every record (a fusion whose weight is 0) is said to be that list, not an LLM result.
Written here because no library phrases a paired comparison for a reader; the numbers come
from :mod:`llmrec.evaluation` (the same bootstrap as every table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmrec.evaluation.comparison import paired_table
from llmrec.evaluation.metrics import per_record, score_on, zero_hit_bound

#: The baselines a conclusion measures against (the strongest of them on each group's records).
BASELINES = ("popularity", "item_knn", "als", "ease", "sasrec")


def fmt_mean(mean: float, low: float, high: float, n: int) -> str:
    """``0.0313 [0.0260, 0.0368]``, or ``0 hits in 300 (< 0.0100)`` (the rule of three)."""
    if mean == 0 and high == 0 and n:
        return f"0 hits in {n} (< {zero_hit_bound(n):.4f})"
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]"


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "above it"
    if high < 0:
        return "below it"
    return "not distinguishable from it at 95%"


def _list_quality(metrics: Mapping[str, Any]) -> str:
    """What a generated list looks like: validity, unmatched titles, distinct movies."""
    parts = []
    if metrics.get("hallucination_rate") is not None and metrics.get("style") is not None:
        parts.append(f"validity {float(metrics.get('validity', float('nan'))):.2f}")
        parts.append(f"{float(metrics['hallucination_rate']):.0%} of titles matched no catalog movie")
    coverage, catalog = metrics.get("coverage"), metrics.get("catalog_size")
    if coverage is not None and catalog:
        parts.append(f"{round(float(coverage) * float(catalog)):,} distinct movies recommended")
    return "; ".join(parts)


def _same_ap(rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]]) -> bool:
    ref = {r["record_id"]: r for r in reference}
    if not rows or any(r["record_id"] not in ref for r in rows):
        return False
    return list(per_record(rows)) == list(per_record([ref[r["record_id"]] for r in rows]))


def conclusion_lines(
    scored: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    baselines: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    retrievers: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]] | None = None,
) -> list[str]:
    """Markdown bullet lines for ``scored`` (``(metrics row, prediction rows)`` pairs).

    ``baselines``: ``split -> system -> prediction rows`` of the common run (test records);
    ``retrievers``: the same for the systems rows build on (their ``retriever`` / ``prior``),
    used to say when a row is its retriever unchanged. Rows on records no baseline covers
    (validation records) are reported without a comparison.
    """
    retrievers = retrievers or baselines
    groups: dict[tuple[str, frozenset[str]], list[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]] = {}
    for metrics, rows in scored:
        if rows:
            groups.setdefault((str(metrics["split"]), frozenset(r["record_id"] for r in rows)), []).append(
                (metrics, rows))
    lines = []
    for (split, ids), members in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[0][1]))):
        n = len(ids)
        # the strongest baseline on exactly these records
        best = None
        for name, rows in baselines.get(split, {}).items():
            subset = [r for r in rows if r["record_id"] in ids]
            if len(subset) != n:
                continue
            mean = float(per_record(subset).mean())
            if best is None or mean > best[1]:
                best = (name, mean, subset)
        if best is None:
            lines.append(f"**On {n} records of `{split}`** (no baseline was scored on them):")
        else:
            lines.append(f"**On {n} records of `{split}`**, against {best[0]}, the strongest "
                         "baseline on the same records:")
            ref = score_on(best[2], ids)  # as the tables re-score a baseline on a sample
            lines.append(f"- {best[0]}: MAP@4 {fmt_mean(ref['map_at_4'], ref['map_at_4_low'], ref['map_at_4_high'], n)}.")
        counts = {"above it": 0, "below it": 0, "not distinguishable from it at 95%": 0}
        for metrics, rows in members:
            label = f"`{metrics['system']}` `{metrics['setting']}`"
            helper = metrics.get("retriever") or metrics.get("prior")
            helper_rows = retrievers.get(split, {}).get(helper) if isinstance(helper, str) else None
            if helper_rows and _same_ap(rows, helper_rows):
                lines.append(f"- {label}: the same AP as {helper}'s own list on every record "
                             f"(the LLM changed nothing).")
                continue
            own = metrics if "map_at_4_low" in metrics else score_on(rows, ids)  # the row's own interval
            text = f"- {label}: MAP@4 {fmt_mean(own['map_at_4'], own['map_at_4_low'], own['map_at_4_high'], n)}"
            if best is not None:
                table = paired_table({"row": rows, best[0]: best[2]}, reference=best[0]).iloc[0]
                verdict = _verdict(table.diff_low, table.diff_high)
                counts[verdict] += 1
                text += (f", {table['diff']:+.4f} [{table.diff_low:+.4f}, {table.diff_high:+.4f}] "
                         f"against {best[0]}: {verdict}")
            quality = _list_quality(metrics)
            lines.append(text + (f"; {quality}." if quality else "."))
        if best is not None and sum(counts.values()) > 1:
            lines.append(f"- Of these {sum(counts.values())} rows, {counts['below it']} are below "
                         f"{best[0]} (paired interval under 0), {counts['above it']} above it, "
                         f"{counts['not distinguishable from it at 95%']} not distinguishable from it.")
        lines.append("")
    return lines
