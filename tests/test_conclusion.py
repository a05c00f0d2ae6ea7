"""A chapter's computed conclusion (llmrec.report.conclusion): one sample per sentence, the
strongest baseline re-scored on each group's records, paired verdicts, and a fusion that is
its retriever said to be that list."""

from __future__ import annotations

import re

from llmrec.report.conclusion import conclusion_lines


def _rows(ids, hits):
    """Prediction rows: a hit first (AP@4 0.25) where ``hits`` says."""
    return [{"record_id": i, "target_ids": [1, 2, 3, 4], "predicted_ids": [1 if h else 99, 98, 97, 96]}
            for i, h in zip(ids, hits, strict=True)]


def _metrics(system, setting, split="temporal", **extra):
    return {"system": system, "setting": setting, "split": split, **extra}


ALL = [f"u{i}" for i in range(100)]
SAMPLE = ALL[:40]  # a seeded sample, in the test's terms


def _baselines():
    return {"temporal": {"popularity": _rows(ALL, [i % 10 == 0 for i in range(100)]),   # 10 hits in 100
                         "sasrec": _rows(ALL, [i % 4 == 0 for i in range(100)])}}      # 25 in 100


def test_each_group_has_its_own_baseline_and_no_sentence_mixes_two_samples():
    scored = [
        # on the sample: no hit at all, a generated list (validity and titles reported)
        (_metrics("m", "zero-shot/greedy", style="zero-shot", validity=0.5, hallucination_rate=0.4,
                  coverage=0.01, catalog_size=1681), _rows(SAMPLE, [False] * 40)),
        # on every record: as good as sasrec on every record but shuffled hits
        (_metrics("m", "encoder/similarity"), _rows(ALL, [i % 4 == 1 for i in range(100)])),
        # a fusion whose weight was 0: sasrec's own AP on every record
        (_metrics("m", "rerank/fused", retriever="sasrec"), _rows(ALL, [i % 4 == 0 for i in range(100)])),
        # a sweep on validation records: no baseline there
        (_metrics("m", "decoding/greedy", split="temporal-valid"), _rows(["v1", "v2"], [True, False])),
    ]
    lines = conclusion_lines(scored, _baselines())
    text = "\n".join(lines)
    assert "**On 100 records of `temporal`**, against sasrec" in text
    assert "**On 40 records of `temporal`**, against sasrec" in text
    assert "**On 2 records of `temporal-valid`** (no baseline was scored on them)" in text
    zero = next(line for line in lines if "zero-shot/greedy" in line)
    assert "0 hits in 40 (< 0.0750)" in zero and "below it" in zero
    assert "validity 0.50" in zero and "40% of titles matched no catalog movie" in zero
    assert "17 distinct movies" in zero
    fused = next(line for line in lines if "rerank/fused" in line)
    assert "the same AP as sasrec's own list on every record" in fused and "MAP@4" not in fused
    similar = next(line for line in lines if "encoder/similarity" in line)
    assert "not distinguishable from it at 95%" in similar and "+0.0000" in similar
    # one sample per sentence: at most one record count in any line
    for line in lines:
        assert len(set(re.findall(r"\b(?:in|On) (\d+) records?\b|\bin (\d+) \(", line))) <= 1, line


def test_the_strongest_baseline_is_chosen_on_the_groups_own_records():
    # on these 10 records popularity has every hit and sasrec none: popularity is the reference
    ids = [f"u{i}" for i in range(0, 100, 10)]
    lines = conclusion_lines([(_metrics("m", "x"), _rows(ids, [True] * 10))], _baselines())
    assert "against popularity, the strongest baseline on the same records" in lines[0]
    assert any(line.startswith("- popularity: MAP@4 0.2500 [0.2500, 0.2500]") for line in lines)


def test_every_chapter_that_scores_ends_with_its_computed_conclusion():
    """Chapters 2-4 and 6-9 end with ``ch.conclusion()``; chapter 10 with its own computed
    Markdown (its questions across sizes). A conclusion is computed, never typed in."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "notebooks"
    for path in sorted(root.glob("[0-9][0-9]_*.ipynb")):
        if path.stem[:2] in ("01", "05"):
            continue  # the data and the baselines: no LLM row to conclude on
        cells = json.loads(path.read_text())["cells"]
        last = "".join(cells[-1]["source"])
        assert cells[-1]["cell_type"] == "code", path.name
        assert "ch.conclusion()" in last or ("display(Markdown(" in last and path.stem.startswith("10_")), path.name


def test_a_chapter_run_alone_finds_the_published_baselines(tmp_path):
    """A file that runs chapter 4 alone (the size axis's tuned points) on a machine where the
    common chapters never ran compares with the published copy of its common run: the row
    of reports/results.csv and the predictions file it names, re-scored on the chapter's records."""
    import pandas as pd

    from llmrec.artifacts import read_jsonl
    from llmrec.paths import in_repo, reports_dir
    from llmrec.report.chapter import Chapter
    from llmrec.report.params import load_params

    params = {**load_params("params/qwen2.5-coder-0.5b-lora.yaml"), "run_dir": str(tmp_path / "run"),
              "common_dir": str(tmp_path / "common-ml-100k-cpu")}  # named as the published run, empty
    table = pd.read_csv(reports_dir() / "results.csv")
    published = table[(table["run"] == "common-ml-100k-cpu") & (table["setting"] == "baseline")
                      & (table["split"] == "temporal") & (table["system"] == "ease")].iloc[0]
    chapter = Chapter("04", params)
    row, rows = chapter.baseline("ease", "temporal")
    assert row["map_at_4"] == published["map_at_4"]
    assert len(rows) == published["n_records"]
    ids = [r["record_id"] for r in read_jsonl(in_repo(published["predictions"]))][::3]
    refs = chapter.references("temporal", records=ids).set_index("system")
    assert set(refs["n_records"]) == {len(ids)}
    assert "ease" in refs.index and refs.loc["ease", "map_at_4"] != published["map_at_4"]
    assert chapter.baseline("no-such-system", "temporal") == (None, None)
