"""The results table: gather runs' ``metrics.json`` files into ``results.csv`` / ``results.md``.

PROTOCOL.md section 7. Each ``metrics.json`` (written by
:func:`llmrec.artifacts.save_system_run`) is one row, keyed by ``(system, setting, split)``;
writing upserts: a new row replaces an older row with the same key, other rows stay.
:func:`recompute` re-scores a row's predictions file, so every number can be checked.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from llmrec.artifacts import atomic_write_text, read_json, read_jsonl
from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import score
from llmrec.paths import repo_root, reports_dir, runs_dir
from llmrec.report import plots
from llmrec.report.notebook_export import export_notebook
from llmrec.report.summary import (
    fmt,
    fmt_mean,
    glossary,
    is_published,
    published_rows,
    write_summaries,
)

KEY = ["system", "setting", "split"]
FIRST_COLUMNS = [
    "system", "setting", "split", "n_records", "map_at_4", "map_at_4_low", "map_at_4_high",
    "recall_at_4", "ndcg_at_4", "hit_rate_at_4", "validity", "hallucination_rate", "coverage",
    "predictions",
]
#: Columns of the table for people (results.md), with the interval folded into the mean.
MD_COLUMNS = ["system", "setting", "split", "n_records", "map_at_4", "recall_at_4", "ndcg_at_10",
              "hit_rate_at_10", "validity", "hallucination_rate", "coverage", "novelty",
              "predictions"]


def _metrics_files(item: str | Path) -> list[Path]:
    p = Path(item)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(p.rglob("metrics.json"))
    raise LlmrecError(f"{p} is neither a run folder nor a metrics.json file; check the path")


def collect(run_dirs_or_metrics_paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """One row per ``metrics.json`` found under the given run folders (or the files named)."""
    items = ([run_dirs_or_metrics_paths] if isinstance(run_dirs_or_metrics_paths, (str, Path))
             else list(run_dirs_or_metrics_paths))
    rows = []
    for item in items:
        for path in _metrics_files(item):
            row = read_json(path)
            missing = [k for k in KEY if k not in row]
            if missing:
                raise LlmrecError(f"{path} lacks {missing}; write it with "
                                  "llmrec.artifacts.save_system_run")
            rows.append(row)
    return order_columns(pd.DataFrame(rows))


def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The fixed first columns (those present), then the rest in their order."""
    first = [c for c in FIRST_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def upsert(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` with every row keyed like a row of ``new`` replaced by it; new keys appended."""
    if old.empty:
        return new.reset_index(drop=True)
    if new.empty:
        return old.reset_index(drop=True)
    new_keys = set(map(tuple, new[KEY].astype(str).to_numpy()))
    keep = [tuple(k) not in new_keys for k in old[KEY].astype(str).to_numpy()]
    return pd.concat([old[keep], new], ignore_index=True)


def drop_repeats(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without the rows that repeat an earlier row's key and every headline number:
    the same reference scored by several runs (item-kNN's first-N, which every model's
    chapter 07 scores). Rows keyed alike whose numbers differ all stay, so a conflict shows."""
    same = [c for c in FIRST_COLUMNS if c in table.columns and c != "predictions"]
    return table.drop_duplicates(subset=same).reset_index(drop=True)


def to_markdown(df: pd.DataFrame) -> str:
    """The table for people: a mean with its interval as ``0.012 [0.008, 0.016]``; a rate
    that is 0 on every record as ``0 in n (< 3/n)`` (the rule of three), not a zero-width
    interval; record counts as integers."""
    cols = [c for c in MD_COLUMNS if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for _, row in df.iterrows():
        cells = []
        n = row.get("n_records")
        n = int(n) if n is not None and not pd.isna(n) else None
        for c in cols:
            if c == "n_records":
                cells.append("" if n is None else str(n))
                continue
            value = fmt(row[c], 3)
            low, high = row.get(f"{c}_low"), row.get(f"{c}_high")
            if value and low is not None and high is not None and not (
                    pd.isna(low) or pd.isna(high)):
                value = fmt_mean(row, 3, column=c, zero="0")
            cells.append(value.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(df: pd.DataFrame, out_dir: str | Path | None = None,
                  replace: bool = False) -> dict[str, Path]:
    """Upsert ``df`` into ``<out_dir>/results.csv`` and rewrite ``results.md`` (atomically).

    ``out_dir`` defaults to ``reports/``. Rows keyed ``(system, setting, split)`` replace
    older rows with the same key; with ``replace`` the old table is dropped entirely."""
    out = Path(out_dir) if out_dir is not None else reports_dir()
    csv_path, md_path = out / "results.csv", out / "results.md"
    missing = [k for k in KEY if k not in df.columns]
    if missing:
        raise LlmrecError(f"results lack the key columns {missing}; gather them with collect()")
    table = df
    if csv_path.is_file() and not replace:
        table = upsert(pd.read_csv(csv_path), df)
    table = order_columns(table)
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(md_path, "# Results: one row per system x setting x split\n\n"
                      "Every row recomputes from its predictions file (`python -m llmrec results "
                      "verify`); rows with setting `published` are quoted from the blog.\n\n"
                      + glossary() + "\n" + to_markdown(table))
    return {"csv": csv_path, "md": md_path}


def _read_predictions(path: Path, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The predictions file's rows, or one line naming the file and the chapter to rerun
    when it is damaged (truncated gzip, broken JSON, bad bytes)."""
    import zlib

    try:
        return read_jsonl(path)
    except (EOFError, OSError, zlib.error, ValueError) as err:  # BadGzipFile is an OSError
        what = str(err).strip().splitlines()[0] if str(err).strip() else "it ends early"
        raise LlmrecError(f"predictions file {path} is damaged ({type(err).__name__}: {what}); rerun "
                          f"the chapter that wrote it (run {row.get('run', '?')}: `python -m llmrec "
                          f"report PARAMS --chapters NN --no-resume`)") from None


def recompute(row: Mapping[str, Any], catalog_size: int | None = None,
              item_popularity: Mapping[int, float] | None = None, n_boot: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """Re-score the predictions file a results row points to; return the metrics dict.

    K values are read from the row's ``map_at_K`` columns; ``catalog_size`` from the row when
    it has one (for coverage). Novelty needs the training likes' ``item_popularity``. A
    missing or damaged predictions file is one :class:`LlmrecError` line naming it."""
    path = Path(str(row["predictions"]))
    if not path.is_absolute():
        path = repo_root() / path
    if not path.is_file():
        raise LlmrecError(f"predictions file {path} not found; rerun the system or fix the path")
    ks = sorted(int(c[len("map_at_"):]) for c in row
                if c.startswith("map_at_") and c[len("map_at_"):].isdigit())
    size = catalog_size
    if size is None and _number(row.get("catalog_size")) is not None:
        size = int(_number(row["catalog_size"]))
    return score(_read_predictions(path, row), k_values=tuple(ks) or (4, 10), catalog_size=size,
                 item_popularity=item_popularity, n_boot=n_boot, seed=seed)


def _number(value: Any) -> float | None:
    """``value`` as a finite-or-infinite float when it is a number (or a string holding one),
    else None (None, NaN, an empty cell, ``abc``, a bool)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def verify_table(table: pd.DataFrame, abs_tol: float = 1e-9) -> pd.DataFrame:
    """Recompute every row of a results table from its predictions file.

    Returns one row per table row: ``system``, ``setting``, ``split``, ``compared`` (how
    many of its cells were checked) and ``mismatches`` (``"key: table vs recomputed"``,
    empty when every number agrees). Guaranteed: every cell of every metric the
    recomputation gives a number for is compared, whatever the column's type; a cell that
    is not a number there (empty, ``abc``) is a mismatch naming its column. A row whose
    predictions file is missing or damaged is a mismatch naming the file and the fix, and
    the other rows are still checked. Metrics a recomputation cannot know (novelty, which
    needs the training popularity) are skipped, not counted. ``attrs["compared"]`` is the
    total of ``compared``."""
    out = []
    table = table[~is_published(table)]  # quoted from a publication: nothing to recompute
    for row in tqdm(table.to_dict("records"), desc="verify", unit="row", leave=False):
        compared, bad = 0, []
        try:
            recomputed = dict(recompute(row))
        except LlmrecError as err:
            recomputed, bad = {}, [f"not recomputed: {err}"]
        for key, value in recomputed.items():
            want = _number(value)
            if want is None:
                continue
            compared += 1
            mine = _number(row.get(key))
            if mine is None:
                bad.append(f"{key}: {row.get(key)!r} is not a number (recomputed {value})")
            elif abs(want - mine) > abs_tol:
                bad.append(f"{key}: {row.get(key)} vs {value}")
        out.append({"system": row["system"], "setting": row["setting"], "split": row["split"],
                    "compared": compared, "mismatches": "; ".join(bad)})
    report = pd.DataFrame(out, columns=["system", "setting", "split", "compared", "mismatches"])
    report.attrs["compared"] = int(report["compared"].sum())
    return report


def verify(csv_path: str | Path | None = None, abs_tol: float = 1e-9) -> pd.DataFrame:
    """:func:`verify_table` on a results table file (default ``reports/results.csv``): every
    metric cell the recomputation gives a number for is compared (``attrs["compared"]``
    says how many in all), a non-number cell or an unreadable predictions file is a
    disagreement of its row."""
    path = Path(csv_path) if csv_path is not None else reports_dir() / "results.csv"
    if not path.is_file():
        raise LlmrecError(f"no results table at {path}; run `python -m llmrec report` first")
    return verify_table(pd.read_csv(path), abs_tol)


# --- aggregating runs into the table -----------------------------------------------------

def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes: how a completion marker vouches for the files it lists."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _vouched(run_dir: Path, rel: str, digests: Mapping[str, str]) -> bool:
    """True when ``run_dir/rel`` exists and is the file its marker saw written (a marker
    written before digests were recorded vouches for what is there)."""
    path = run_dir / rel
    if not path.is_file():
        return False
    return rel not in digests or file_digest(path) == digests[rel]


def completed_runs(out_root: str | Path, profiles: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every run under ``out_root`` with what its completed chapters wrote.

    ``[{"run", "run_dir", "params", "metrics", "figures", "notebooks"}]`` (lists of paths; the
    executed notebooks of the completed chapters), runs with
    no completed chapter left out; ``profiles`` keeps only runs of those profiles. A file a
    later, unfinished run of its chapter rewrote (its digest no longer the one the marker
    recorded) is left out, with the predictions beside a metrics file: only what completed
    chapters wrote reaches the table.
    """
    out = []
    for info_path in sorted(Path(out_root).glob("*/run.json")):
        run_dir = info_path.parent
        params = read_json(info_path).get("params", {})
        if profiles is not None and params.get("profile") not in set(profiles):
            continue
        found: dict[str, list[Path]] = {"metrics": [], "figures": [], "notebooks": []}
        markers = sorted((run_dir / "notebooks").glob(".*.done.json"))
        for marker in markers:
            done = read_json(marker)
            digests = done.get("digests", {})
            for kind in ("metrics", "figures"):
                for rel in done.get(kind, []):
                    beside = str(Path(rel).parent / "predictions.jsonl.gz")
                    if _vouched(run_dir, rel, digests) and (
                            kind == "figures" or beside not in digests
                            or _vouched(run_dir, beside, digests)):
                        found[kind].append(run_dir / rel)
            executed = marker.parent / f"{marker.name[1:-len('.done.json')]}.ipynb"
            found["notebooks"] += [executed] if executed.is_file() else []
        if markers:
            out.append({"run": run_dir.name, "run_dir": run_dir, "params": params,
                        **{kind: sorted(set(paths)) for kind, paths in found.items()}})
    return out


def _rel_to_repo(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return str(path.resolve())


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


def copy_into_place(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` through a temporary file beside it: ``dst`` is either the old
    file or the whole new one, never missing and never half-written."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dst


def chapter_timings(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A frame, one row per completed chapter of ``runs``: minutes, when it finished, the commit."""
    rows = []
    for r in runs:
        for marker in sorted((Path(r["run_dir"]) / "notebooks").glob(".*.done.json")):
            done = read_json(marker)
            rows.append({"run": r["run"], "chapter": marker.name[1:-len(".done.json")],
                         "minutes": round(float(done.get("seconds", 0.0)) / 60, 1),
                         "finished_utc": done.get("finished_utc"),
                         # markers written before commits were recorded in them say so
                         "commit": (done.get("git_commit") or "")[:10] or "not recorded"})
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


TIMING_COLUMNS = ["run", "chapter", "minutes", "finished_utc", "commit"]


def read_timings(path: str | Path) -> pd.DataFrame:
    """The per-chapter rows of a ``timings.md`` that :func:`write_timings` wrote (none when
    there is no such file)."""
    path = Path(path)
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(TIMING_COLUMNS) or cells[0] in ("run", "---"):
            continue
        try:
            minutes = float(cells[2])
        except ValueError:
            continue
        rows.append(dict(zip(TIMING_COLUMNS, [cells[0], cells[1], minutes, *cells[3:]], strict=True)))
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def write_timings(runs: Sequence[dict[str, Any]], reports_out: Path) -> Path:
    """``timings.md``: where a report's time went, chapter by chapter and per run. The
    chapters of ``runs`` replace their own lines; every other line of the file stays."""
    path = reports_out / "timings.md"
    new = chapter_timings(runs)
    old = read_timings(path)
    fresh = set(zip(new["run"], new["chapter"], strict=True))
    old = old[[k not in fresh for k in zip(old["run"], old["chapter"], strict=True)]]
    table = pd.concat([df for df in (old, new) if len(df)] or [new], ignore_index=True)
    table = table.sort_values(["run", "chapter"], kind="stable").reset_index(drop=True)
    lines = ["# Where the report's time went", "",
             "Wall minutes per completed chapter (from each chapter's completion marker).", "",
             "| run | chapter | minutes | finished (UTC) | commit |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.run} | {r.chapter} | {float(r.minutes):.1f} | {r.finished_utc} | {r.commit} |"
              for r in table.itertuples()]
    lines += ["", "| run | minutes, all its chapters |", "| --- | --- |"]
    lines += [f"| {run} | {minutes:.1f} |"
              for run, minutes in table.groupby("run")["minutes"].sum().items()]
    lines += ["", f"Sum over every chapter: {table['minutes'].sum():.1f} minutes (runs that went side "
              "by side overlap in wall time).", ""]
    atomic_write_text(path, "\n".join(lines))
    return path


def existing_rows(reports_out: Path) -> pd.DataFrame:
    """The rows of ``reports_out/results.csv`` that runs made (the blog's quoted rows are
    added back by :func:`summarize`); empty when there is no table yet."""
    path = reports_out / "results.csv"
    if not path.is_file():
        return pd.DataFrame(columns=KEY)
    table = pd.read_csv(path)
    return table[~is_published(table)].reset_index(drop=True)


def run_rows(runs: Sequence[dict[str, Any]], pred_root: Path) -> pd.DataFrame:
    """One row per completed system of ``runs``, its ``predictions`` a ``(source, destination
    under pred_root)`` pair; rows several runs made alike kept once (:func:`drop_repeats`)."""
    frames = []
    for r in runs:
        if not r["metrics"]:
            continue
        df = collect(r["metrics"]).copy()
        df.insert(0, "run", r["run"])
        if "model" not in df.columns:
            df["model"] = r["params"].get("model")
        sources = []
        for metrics_path, src in zip(r["metrics"], df["predictions"], strict=True):
            beside = Path(metrics_path).parent / Path(src).name  # where save_system_run put it
            src = beside if beside.is_file() else _resolve(src)  # (a run made in another clone)
            sources.append((src, pred_root / r["run"] / src.relative_to(r["run_dir"].resolve())))
        df["predictions"] = sources
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=[*KEY, "predictions"])
    return drop_repeats(pd.concat(frames, ignore_index=True))


def publish_chapters(runs: Sequence[dict[str, Any]], reports_out: Path) -> list[str]:
    """Each completed chapter's executed notebook (slimmed) into ``notebooks/<run>/`` and its
    figures into ``figures/<run>/``, file by file, each replacing only its own older copy.
    Returns the figures' paths."""
    figures = []
    for r in runs:
        for nb in r["notebooks"]:
            export_notebook(nb, reports_out / "notebooks" / r["run"] / nb.name)  # atomic
        for png in r["figures"]:
            dst = copy_into_place(png, reports_out / "figures" / r["run"] / png.name)
            figures.append(_rel_to_repo(dst))
    return figures


def aggregate(
    out_root: str | Path | None = None,
    reports_out: str | Path | None = None,
    profiles: Iterable[str] | None = None,
) -> dict[str, Any] | None:
    """Merge the completed runs into the results table, predictions, figures, executed
    chapters and summaries under ``reports_out`` (default ``reports/``).

    Only adds: a row of a completed run replaces the row with its key (system, setting,
    split; :func:`upsert`), a predictions file, figure or executed chapter replaces its own
    older copy (each written beside it first, then swapped in), and every row and file the
    runs did not remake stays, the rows of runs absent from ``out_root`` included. The
    table's ``predictions`` column points to ``predictions/<run>/...`` (relative to the
    repository root). The headline, the README's key table and ``docs/answer.md`` are
    redrawn from the merged table (:func:`summarize`). Returns ``{"csv", "md", "n_rows" (in
    the table, the blog's quoted rows included), "n_new" (rows from these runs), "figures"}``,
    or None when the table would have no row (and when no run completed anything, nothing is
    written at all).
    """
    out_root = Path(out_root) if out_root is not None else runs_dir()
    reports_out = Path(reports_out).resolve() if reports_out is not None else reports_dir()
    runs = completed_runs(out_root, profiles)
    old = existing_rows(reports_out)
    if not runs:
        return None  # nothing new: reports_out stays as it is
    new = run_rows(runs, reports_out / "predictions")
    new_paths = [_rel_to_repo(copy_into_place(src, dst)) for src, dst in new["predictions"]]
    new["predictions"] = new_paths
    figures = publish_chapters(runs, reports_out)
    write_timings(runs, reports_out)
    table = order_columns(drop_repeats(upsert(old, new)))
    if table.empty:
        return None
    figures += summarize(table, reports_out)
    n_rows = len(pd.read_csv(reports_out / "results.csv"))  # with the blog's quoted rows
    return {"csv": str(reports_out / "results.csv"), "md": str(reports_out / "results.md"),
            "n_rows": n_rows, "n_new": len(new), "figures": figures}


def summarize(table: pd.DataFrame, reports_out: Path) -> list[str]:
    """Write the table (with the blog's published rows), ``results.md``, ``headline.md`` and
    the summary figures into ``reports_out``; the README's and ``docs/answer.md``'s generated
    blocks too when that is ``reports/``.
    Returns the figures' paths."""
    table = pd.concat([table[~is_published(table)], published_rows()], ignore_index=True)
    write_results(table, reports_out, replace=True)  # exactly these rows, nothing stale
    root = repo_root() if reports_out.resolve() == reports_dir().resolve() else None
    write_summaries(table, reports_out, root)
    ours = table[~is_published(table)]
    return [_rel_to_repo(p) for p in plots.summary_figures(ours, reports_out / "figures")]


def _cmd_verify(args) -> int:
    report = verify(args.csv)
    bad = report[report["mismatches"] != ""]
    print(f"verify: {len(report)} rows, {int(report['compared'].sum())} numbers recomputed "
          f"from their predictions files, {len(bad)} rows disagree")
    for r in bad.itertuples():
        print(f"  {r.system} {r.setting} {r.split}: {r.mismatches}")
    return 1 if len(bad) else 0


def _cmd_summarize(args) -> int:
    out = Path(args.reports) if args.reports else reports_dir()
    if not (out / "results.csv").is_file():
        raise LlmrecError(f"no results table at {out / 'results.csv'}; run `python -m llmrec report` first")
    figures = summarize(pd.read_csv(out / "results.csv", keep_default_na=True), out)
    print(f"summaries rewritten in {out} ({len(figures)} figures)")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("results", help="check the results table against its predictions")
    sub = p.add_subparsers(dest="results_command", metavar="ACTION")
    s = sub.add_parser("summarize", help="rewrite results.md, headline.md, the README's headline "
                                         "and the summary figures from results.csv")
    s.add_argument("--reports", default=None, help="the reports folder (default: reports/)")
    s.set_defaults(func=_cmd_summarize)
    v = sub.add_parser("verify", help="recompute every row of results.csv from its predictions file")
    v.add_argument("--csv", default=None, help="the table (default: reports/results.csv)")
    v.set_defaults(func=_cmd_verify)
