"""Re-read committed completions with the current parser and stopping rule.

    python benchmarks/reparse_predictions.py [--k 4] [reports/predictions ...]

For every ``predictions.jsonl.gz`` under the given folders (default ``reports/predictions``)
whose rows keep the raw ``completion``, one table row:

- ``changed``: records whose titles (first ``k``) differ from the stored ``titles``, which
  the parser of the run that wrote the file produced;
- ``bare stored -> now``: titles that are only a list marker or a number ("1", "4.", "-",
  "1997") in the stored titles, and in the current parse;
- ``marker end``: completions that end in a bare list marker after a blank line
  (``"Here are:\\n\\n* 1"``): a stopping rule that counted the marker as a title cut them;
- ``not finished``: completions the current rule would not have ended where they end (the
  run stopped them, or eos or ``max_new_tokens`` did);
- ``stops earlier (differs)``: completions the current rule would have ended at an earlier
  character, and among them those whose parsed titles would then differ (should be 0:
  the rule ends a list only where more text cannot change it).

Reading the text alone cannot say what the model would have written after an early stop:
regenerating the rows is what measures that.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

from tqdm.auto import tqdm

from llmrec.llm.decoding import list_finished
from llmrec.llm.parsing import parse_completion

BARE = re.compile(r"^[\W\d_]*$")  # no letter at all ("187 (1997)" counts: a real title)
MARKER_END = re.compile(r"\n[ \t]*\n\s*(\(?\d{1,2}[.)\]:]?|[-*\u2022|]\s*\d{0,2})\s*$")
COLUMNS = ["changed", "bare_stored", "bare_now", "marker_end", "not_finished", "earlier", "earlier_differs"]


def first_stop(text: str, k: int) -> int | None:
    """The shortest prefix length at which :func:`list_finished` ends ``text``'s list."""
    for i in range(1, len(text)):
        if list_finished(text[:i], k):
            return i
    return None


def reparse_file(path: Path, k: int) -> dict[str, int]:
    """Counts (see the module docstring) for one predictions file; ``n``: rows with text."""
    counts = dict.fromkeys(["n", *COLUMNS], 0)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    for row in rows:
        text = row.get("completion")
        if text is None:
            continue
        now = parse_completion(text, max_titles=k)
        stored = row.get("titles") or []
        counts["n"] += 1
        counts["changed"] += now != stored
        counts["bare_stored"] += sum(bool(BARE.match(t)) for t in stored)
        counts["bare_now"] += sum(bool(BARE.match(t)) for t in now)
        counts["marker_end"] += bool(MARKER_END.search(text))
        counts["not_finished"] += not list_finished(text, k)
        cut = first_stop(text, k)
        if cut is not None:
            counts["earlier"] += 1
            counts["earlier_differs"] += parse_completion(text[:cut], max_titles=k) != now
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", default=["reports/predictions"])
    ap.add_argument("--k", type=int, default=4, help="titles asked for (the runs' K)")
    args = ap.parse_args(argv)
    files = sorted(p for folder in args.folders for p in Path(folder).rglob("predictions.jsonl.gz"))
    total = dict.fromkeys(["n", *COLUMNS], 0)
    print("| predictions | n | changed | bare stored -> now | marker end | not finished "
          "| stops earlier (differs) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in tqdm(files, desc="reparse", unit="file", leave=False):
        c = reparse_file(path, args.k)
        if not c["n"]:
            continue
        for key in total:
            total[key] += c[key]
        name = str(path.parent.relative_to(path.parents[3]))
        print(_row(name, c))
    print(_row("all", total))
    return 0


def _row(name: str, c: dict[str, int]) -> str:
    return (f"| {name} | {c['n']} | {c['changed']} | {c['bare_stored']} -> {c['bare_now']} "
            f"| {c['marker_end']} | {c['not_finished']} | {c['earlier']} ({c['earlier_differs']}) |")


if __name__ == "__main__":
    raise SystemExit(main())
