"""What a reader sees first: the headline table, ``results.md`` with its definitions, the
blog's published numbers, the README's key table and ``docs/answer.md``'s copy of the headline.

The headline (``reports/headline.md``, and ``docs/answer.md`` between its ``headline`` markers)
groups the rows of a split by the records they were scored on (read from each row's
predictions file), largest group first, so that no two rows on different records are
ranked against each other. In every group the baselines are re-scored on exactly that
group's records from their predictions on the whole test part, and every row gets its
paired-bootstrap difference from the strongest of them (PROTOCOL.md section 4). A mean
with no hit at all is written as "0 hits" with its rule-of-three bound, never as a
zero-width interval. The blog's published MAP@K enter the table as rows whose setting is
``published`` and whose predictions file is empty: shown beside ours, never recomputed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.artifacts import atomic_write_text, read_jsonl
from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import paired_bootstrap, per_record, score_on, zero_hit_bound
from llmrec.paths import repo_root
from llmrec.report.notebook_export import chapter_index
from llmrec.report.published import BLOG_RESULTS, CAVEATS

#: The ``setting`` of a row quoted from a publication (never recomputed).
PUBLISHED = "published"
#: The baselines re-scored on every group's records (those the table has).
REFERENCE_BASELINES = ("popularity", "item_knn", "als", "ease", "sasrec")
#: What each column of results.md and the headline means.
DEFINITIONS = {
    "n_records": "how many test records the row was scored on (the same records across a "
                 "group of the headline)",
    "map_at_4": "mean over records of AP@4 = (1 / min(4, |R|)) x sum of Precision@i at the "
                "ranks i <= 4 that hold a liked item; [95% bootstrap interval, 1,000 "
                "resamples of records]",
    "recall_at_4": "share of a record's held-out likes among its first 4, averaged over records",
    "ndcg_at_10": "NDCG@10 with binary gains",
    "hit_rate_at_10": "share of records with at least one liked item in the first 10",
    "validity": "share of completions that parse into at least 4 titles (1 for ranked lists)",
    "hallucination_rate": "share of generated titles that match no catalog movie (each stays "
                          "a miss at its rank)",
    "coverage": "distinct items recommended in the first 10 of all lists / items in the catalog",
    "novelty": "mean -log2 of a recommended item's share of training likes (higher: less "
               "popular items)",
    "predictions": "the row's predictions file (every record's list, and the completion for "
                   "generated text), from which `python -m llmrec results verify` recomputes it",
    "0 in n (< b)": "a rate that is 0 on all n records: b = 3/n is its one-sided 95% upper bound "
                    "(the rule of three), given instead of a zero-width interval",
}
#: What the setting names mean.
SETTINGS = {
    "baseline": "a non-LLM baseline fed the same 6 liked movies (chapter 5)",
    "baseline/first-N, baseline/sample-N": "the same baseline scored by a model's run on the "
                                           "first N test records or on its seeded sample of N only",
    "baseline, re-scored on these records": "(headline) the baseline's predictions on every test "
                                            "record, scored on exactly the group's records",
    "zero-shot/<preset>": "the blog's plain `=>` continuation prompt, untuned model (chapter 2)",
    "zero-shot-chat/<preset>": "the same request through the model's chat template",
    "few-shot-N/<preset>": "N worked examples from training records before the question (chapter 3)",
    "lora/<preset>": "after LoRA fine-tuning on training records, Alpaca prompt (chapter 4)",
    "lora/constrained-beam4": "the tuned model forced to spell catalog titles (chapter 7)",
    "rerank-itemknn20/letters": "item-kNN's top 20 reordered by the LLM, candidates as letters "
                                "A-T, LlamaRec-style (chapter 7)",
    "rerank-itemknn20/likelihood": "item-kNN's top 20 reordered by each title's likelihood as "
                                   "the answer (chapter 7)",
    "<prompt>/with-year, no-year, dislikes, n-input-2, n-input-4": "prompt ablations: titles "
        "with or without years, the user's dislikes added, only the last 2 or 4 liked movies",
    "decoding-lora/sample-tT-pP, greedy, beam4": "decoding settings of chapter 4's tuned model on "
                                                 "validation records (chapter 6; `decoding/...`: the "
                                                 "untuned model, where no adapter exists)",
    "lora-compact-N/<preset>": "after LoRA fine-tuning on a seeded N of the training records "
                               "(`all`: every one), compact prompt: a point of the learning curve "
                               "(chapter 4)",
    "lora-ranker-R/letters": "an adapter trained LlamaRec-style to pick a held-out like among "
                             "retriever R's top 20 (letters A-T); one forward pass per record "
                             "(chapter 8)",
    "lora-ranker-R/letters-no-year, fused-no-year": "the same ranker and fusion with every title "
                                                    "listed without its year (a shorter prompt: "
                                                    "chapter 8 gives both lengths; the cpu "
                                                    "profile's)",
    "top20-letter-order": "the retriever's top 20 in the order the ranker's prompt lists them "
                          "(a seeded shuffle): the list of a ranker that always answers A, B, C, "
                          "D, the chance level of any ranker of those 20; no LLM (chapter 8)",
    "lora-ranker-R/fused": "R's standardised score + lambda x the trained ranker's "
                           "log-probability, lambda chosen on validation records (chapter 8)",
    "<llm>/constrained-greedy+R-prior": "constrained greedy decoding of the tuned model with "
                                        "retriever R's scores as a prior over titles, its weight "
                                        "chosen on validation records (chapter 8)",
    "encoder/similarity": "similarity search on the LLM's item vectors: the catalog items "
                          "nearest (cosine) the mean vector of the six liked movies; the text "
                          "(title or title with genres), layer and pooling chosen on validation "
                          "records (chapter 9)",
    "encoder/similarity-title (system minilm)": "the same search on the sentence encoder's "
                                                "vectors of the titles alone (`content` is it "
                                                "on titles with genres)",
    "encoder/fused-R": "baseline R's standardised scores + w x the similarity's, w chosen on "
                       "validation records (0: R's own list; chapter 9)",
    "encoder/sasrec-init, sasrec-init-shuffled": "SASRec with its item table started from the "
                                                 "LLM's item vectors (PCA to its 64 dimensions), "
                                                 "and from the same vectors shuffled across "
                                                 "items: the control for the text (chapter 9)",
    "published": "the blog's own MAP@K as published: its split, K and matching; not recomputed",
}


def published_rows() -> pd.DataFrame:
    """The blog's published MAP@K as rows of the results table (setting ``published``)."""
    return pd.DataFrame([{
        "system": r["model"], "setting": PUBLISHED, "split": "blog's own hold-out",
        "map_at_4": r["map_at_k"], "predictions": "", "model": r["hf_id"],
        "n_params": r["n_params"]} for r in BLOG_RESULTS])


def is_published(table: pd.DataFrame) -> pd.Series:
    return table["setting"].astype(str) == PUBLISHED


def fmt_mean(row: Any, digits: int = 4, column: str = "map_at_4", zero: str = "0 hits") -> str:
    """``0.0313 [0.0260, 0.0368]``, or ``0 hits in 897 (< 0.0033)`` for a mean that is 0 on
    every record (the rule-of-three bound, not a zero-width interval); ``column``: which
    metric (its ``_low`` and ``_high`` beside it), ``zero``: how its zero reads."""
    mean, low, high = row[column], row.get(f"{column}_low"), row.get(f"{column}_high")
    n = row.get("n_records")
    if high is not None and not pd.isna(high) and high == 0 and mean == 0 and n:
        return f"{zero} in {int(n)} (< {zero_hit_bound(int(n)):.{digits}f})"
    if low is None or pd.isna(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


def _rows_of(table: pd.DataFrame) -> dict[int, list[dict[str, Any]]]:
    """Each row's predictions file, read once."""
    out = {}
    for i, path in table["predictions"].items():
        if not isinstance(path, str) or not path or not _path(path).is_file():
            raise LlmrecError(f"row {table.loc[i, 'system']} {table.loc[i, 'setting']}: predictions "
                              f"file {path!r} not found; rebuild the report")
        out[i] = read_jsonl(_path(path))
    return out


def _describe(ids: Sequence[str], order: Sequence[str]) -> str:
    """Which records a group holds: all, the first N in record order, or a sample."""
    if len(ids) == len(order):
        return f"every test record ({len(ids)})"
    if list(order[:len(ids)]) == sorted(ids, key=order.index):
        return f"the first {len(ids)} test records (lowest user ids)"
    return f"{len(ids)} test records (a seeded sample)"


def _paired(rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]],
            keep: Sequence[str]) -> str:
    """``+0.0012 [-0.0030, +0.0051]``: the paired-bootstrap difference in MAP@4 on ``keep``;
    ``0 (the same AP on every record)`` when there is no difference to resample."""
    by_id = {x["record_id"]: x for x in rows}
    ref = {x["record_id"]: x for x in reference}
    ours, theirs = per_record([by_id[k] for k in keep]), per_record([ref[k] for k in keep])
    if list(ours) == list(theirs):
        return "0 (the same AP on every record)"
    d = paired_bootstrap(ours, theirs)
    return f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def unchanged(rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]],
              keep: Sequence[str]) -> bool:
    """Whether ``rows`` score exactly ``reference``'s AP on every record of ``keep``: a
    fusion whose chosen weight is 0 (or an LLM that never changed the order) is its
    retriever, and a table must say so rather than show it as an LLM result."""
    by_id = {x["record_id"]: x for x in rows}
    ref = {x["record_id"]: x for x in reference}
    return list(per_record([by_id[k] for k in keep])) == list(per_record([ref[k] for k in keep]))


def _helper_of(metrics: Mapping[str, Any]) -> str | None:
    """The collaborative system a row builds on: its ``retriever`` (rerankers, the trained
    ranker, the fusion) or its ``prior`` (constrained generation with a prior)."""
    for key in ("retriever", "prior"):
        value = metrics.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def headline(table: pd.DataFrame, split: str = "temporal") -> str:
    """The answer's tables as markdown (see the module docstring)."""
    rows = table[(table["split"] == split) & ~is_published(table)]
    if rows.empty:
        return f"(no system was scored on the {split} test records)\n"
    preds = _rows_of(rows)
    full = max(preds.values(), key=len)
    order = [r["record_id"] for r in full]
    references = {r.system: preds[i] for i, r in rows.iterrows()
                  if r.setting == "baseline" and r.system in REFERENCE_BASELINES
                  and len(preds[i]) == len(order)}
    groups: dict[frozenset, list[int]] = {}
    for i, p in preds.items():
        groups.setdefault(frozenset(r["record_id"] for r in p), []).append(i)
    lines = []
    for ids, members in sorted(groups.items(), key=lambda g: -len(g[0])):
        keep = sorted(ids, key=order.index) if set(ids) <= set(order) else sorted(ids)
        lines += [f"**On {_describe(keep, order)}**", "",
                  "| system | setting | MAP@4 [95% interval] | vs the strongest baseline here "
                  "(paired, 95%) | vs its own retriever or prior (paired, 95%) | hallucination "
                  "| validity |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        entries = []
        for i in members:
            r = rows.loc[i]
            entries.append((r["system"], r["setting"], r.to_dict(), preds[i]))
        present = {e[0] for e in entries if str(e[1]).startswith("baseline")}
        for name, ref_rows in references.items():
            if name in present:
                continue
            subset = [x for x in ref_rows if x["record_id"] in ids]
            entries.append((name, "baseline, re-scored on these records", score_on(subset, ids), subset))
        baselines = [e for e in entries if str(e[1]).startswith("baseline")]
        strongest = max(baselines, key=lambda e: e[2]["map_at_4"]) if baselines else None
        by_name = {e[0]: e for e in baselines}
        for system, setting, metrics, prows in sorted(entries, key=lambda e: -e[2]["map_at_4"]):
            diff = own = ""
            if strongest is not None and (system, setting) != strongest[:2]:
                diff = f"{_paired(prows, strongest[3], keep)} vs {strongest[0]}"
            elif strongest is not None:
                diff = "(the strongest baseline here)"
            helper = _helper_of(metrics)
            shown = setting
            if helper in by_name and not str(setting).startswith("baseline"):
                own = f"{_paired(prows, by_name[helper][3], keep)} vs {helper}"
                if unchanged(prows, by_name[helper][3], keep):
                    shown = f"{setting}: **{helper}'s own list** (weight 0: the LLM changed nothing)"
            lines.append(f"| {system} | {shown} | {fmt_mean(metrics)} | {diff} | {own} | "
                         f"{fmt(metrics.get('hallucination_rate'))} | "
                         f"{fmt(metrics.get('validity'))} |")
        lines.append("")
    return "\n".join(lines)


def fmt(x: Any, digits: int = 2) -> str:
    """A table cell: a float at ``digits`` decimals, anything else as text, missing as empty."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def published_table() -> str:
    """The blog's published rows as markdown, with the caveats that go with them."""
    lines = ["| model | parameters | MAP@K as published |", "| --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['n_params'] / 1e9:.1f} B | {r['map_at_k']:.3f} |"
              for r in BLOG_RESULTS]
    lines += ["", "Not comparable one-to-one with the tables above:", ""]
    lines += [f"- {c}" for c in CAVEATS]
    return "\n".join(lines) + "\n"


def glossary() -> str:
    """The column definitions and the setting names, as markdown lists."""
    lines = ["Columns:", ""] + [f"- `{k}`: {v}" for k, v in DEFINITIONS.items()]
    lines += ["", "Settings:", ""] + [f"- `{k}`: {v}" for k, v in SETTINGS.items()]
    return "\n".join(lines) + "\n"


HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"


def with_block(readme: str, name: str, text: str) -> str:
    """``readme`` with the text between its ``<!-- name:start -->`` and ``<!-- name:end -->``
    markers replaced by ``text`` (a generated part: the answer, the chapter links)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in readme or end not in readme:
        raise LlmrecError(f"the page lacks the markers {start} ... {end}; put them where the "
                          f"generated {name} goes")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{text.strip()}\n{end}{tail}"


def with_headline(readme: str, text: str) -> str:
    """``readme`` with its answer block replaced by ``text``."""
    return with_block(readme, "headline", text)


def answer(table: pd.DataFrame) -> str:
    """The headline tables, then the blog's published numbers: ``docs/answer.md``'s block."""
    return headline(table) + "\nThe blog's published numbers:\n\n" + published_table()


def key_table(table: pd.DataFrame) -> str:
    """The README's key table: the headline's largest group of records (every test record),
    and where the other groups are."""
    groups = headline(table).split("\n**On ")
    return (groups[0].rstrip() + "\n\nEvery other group of records (the seeded samples the "
            "generating passes score), with the blog's published numbers: "
            "[docs/answer.md](docs/answer.md).\n")


def size_block(table: pd.DataFrame) -> str:
    """The README's size-trend block: the figure, one line per question (every size's MAP@4
    with its interval and the strongest baseline on the same records), and what the trend
    can and cannot show (:mod:`llmrec.report.sizes`)."""
    from llmrec.report.sizes import (
        FAMILIES,
        baseline_band,
        size_points,
        trend_sentences,
        tuning_sentences,
    )

    points = size_points(table)
    if points.empty:
        return "(no model has answered chapter 10's questions yet)\n"
    band = baseline_band(table, points)
    models = sorted(points["model"].unique(), key=lambda m: points.loc[points["model"] == m, "n_params"].iloc[0])
    families = sorted({FAMILIES.get(m, m) for m in models})
    smallest_blog = min(BLOG_RESULTS, key=lambda r: r["n_params"])
    ratio = smallest_blog["n_params"] / points["n_params"].max()
    lines = ["![MAP@4 by model size, one panel per question](reports/figures/size_trend.png)", ""]
    lines += [f"- {s}" for s in trend_sentences(points, band)]
    gains = tuning_sentences(points)
    if gains:
        n = int(points["n_records"].iloc[0])
        lines += ["", f"What tuning adds at each size, paired on the same {n} records (difference in MAP@4, 95% interval):", ""]
        lines += [f"- {s}." for s in gains]
    lines += ["", f"What the trend can show: {len(models)} models ({', '.join(models)}), asked the same "
              "questions on the same records, so a difference between two sizes is paired. What it "
              f"cannot show: the models are of {len(families)} families ({'; '.join(families)}) and "
              f"differ in more than size, the largest holds {ratio:.0f} times fewer parameters than the "
              f"blog's smallest ({smallest_blog['model']}), and the blog's points were scored on its own split with its own matching and K."]
    return "\n".join(lines) + "\n"


def cost_block(timings: pd.DataFrame, stages: Sequence[tuple[str, str]]) -> str:
    """The README's cost table: the wall minutes of every stage (run, chapter) of the
    published run, from ``timings`` (:func:`llmrec.report.results.read_timings`), in the order
    ``make paper`` runs them; a stage with no completion marker yet is listed as such."""
    done = {(r.run, r.chapter): r for r in timings.itertuples()}
    lines = ["| run | chapter | wall minutes | finished (UTC) | commit |", "| --- | --- | --- | --- | --- |"]
    minutes, n_done = 0.0, 0
    for run, chapter in stages:
        r = done.get((run, chapter))
        if r is None:
            lines.append(f"| {run} | {chapter} | not run yet | | |")
            continue
        minutes, n_done = minutes + float(r.minutes), n_done + 1
        lines.append(f"| {run} | {chapter} | {float(r.minutes):.1f} | {r.finished_utc} | {r.commit} |")
    lines += ["", f"{n_done} of {len(stages)} stages done, {minutes:.1f} wall minutes in all on 2 cores "
              "(each chapter's completion marker; [reports/timings.md](reports/timings.md) has every "
              "run, the preview's too)."]
    return "\n".join(lines) + "\n"


def published_stages(root: Path) -> list[tuple[str, str]]:
    """The (run, chapter) stages of ``make paper``: :data:`llmrec.profiles.PUBLISHED_PARAMS`
    planned as the runner plans them."""
    from llmrec.profiles import PUBLISHED_PARAMS
    from llmrec.report.runner import plan  # the runner imports this module

    tasks, _ = plan([root / f for f in PUBLISHED_PARAMS], root / "runs", None, root / "notebooks")
    return [(run, nb.stem) for run, _, _, nb in tasks]


def quoted_numbers(text: str) -> list[str]:
    """The decimals a text quotes (``0.0197``, ``0.021``): what a reader takes as results."""
    return re.findall(r"(?<![\d.])0\.\d{3,4}(?!\d)", text)


def unbacked(numbers: Sequence[str], table: pd.DataFrame) -> list[str]:
    """The quoted numbers that no value of the results table (or the blog's published table)
    rounds to at the digits quoted."""
    values = [float(v) for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
              for v in table[c].dropna()] + [r["map_at_k"] for r in BLOG_RESULTS]
    return [n for n in numbers
            if not any(f"{v:.{len(n) - 2}f}" == n for v in values)]


def write_summaries(table: pd.DataFrame, reports_out: Path, root: Path | None = None) -> str:
    """``headline.md`` (the answer and the blog's published rows) in ``reports_out``; when
    ``root`` (a repository) is given, its README's key table and chapter links and
    ``docs/answer.md``'s copy of the headline. Returns the headline text."""
    text = answer(table)
    atomic_write_text(reports_out / "headline.md", "# The answer, record set by record set\n\n"
                      + text + "\n" + glossary())
    if root is not None:
        readme, page = root / "README.md", root / "docs" / "answer.md"
        chapters = chapter_index(reports_out / "notebooks", root)
        text_readme = readme.read_text(encoding="utf-8")
        text_readme = with_block(with_block(text_readme, "key-table", key_table(table)), "chapters", chapters)
        if "<!-- size-trend:start -->" in text_readme:
            text_readme = with_block(text_readme, "size-trend", size_block(table))
        if "<!-- cost:start -->" in text_readme:
            from llmrec.report.results import read_timings  # which imports this module

            text_readme = with_block(text_readme, "cost", cost_block(read_timings(reports_out / "timings.md"),
                                                                     published_stages(root)))
        atomic_write_text(readme, text_readme)
        atomic_write_text(page, with_headline(page.read_text(encoding="utf-8"), text))
    return text
