"""The headline: rows grouped by the records they cover, baselines re-scored on each group's
records, paired differences from the strongest, zero hits shown with their bound."""

from __future__ import annotations

import re

import pandas as pd

from llmrec.artifacts import save_system_run
from llmrec.evaluation.metrics import score
from llmrec.paths import repo_root
from llmrec.profiles import PUBLISHED_PARAMS
from llmrec.report.results import read_timings
from llmrec.report.summary import (
    cost_block,
    fmt_mean,
    headline,
    published_rows,
    published_stages,
    with_headline,
)

TARGETS = {f"{u}-0": [10 + u, 20 + u, 30 + u, 40 + u] for u in range(1, 7)}


def _save(run, system, setting, predict, records):
    rows = [{"record_id": r, "input_ids": [1], "target_ids": TARGETS[r], "predicted_ids": predict(r)}
            for r in records]
    return save_system_run(run, system, setting, "temporal", rows, score(rows, n_boot=200))


def test_headline_groups_by_records_and_pairs_with_the_baselines(tmp_path):
    every, first3 = list(TARGETS), list(TARGETS)[:3]
    table = pd.DataFrame([
        _save(tmp_path, "popularity", "baseline", lambda r: [TARGETS[r][0], 2, 3, 4], every),
        _save(tmp_path, "item_knn", "baseline", lambda r: TARGETS[r][:2] + [5, 6], every),
        _save(tmp_path, "llm", "zero-shot/greedy", lambda r: [7, 8, 9, None], every),
        _save(tmp_path, "llm", "lora/beam4", lambda r: [TARGETS[r][1], 8, 9, 11], first3),
    ])
    text = headline(table)
    assert text.index("**On every test record (6)**") < text.index("**On the first 3 test records")
    full, part = text.split("**On the first 3 test records")
    assert "| item_knn | baseline | 0.5000" in full and "(the strongest baseline here)" in full
    assert "| llm | zero-shot/greedy | 0 hits in 6 (< 0.5000) |" in full  # never [0, 0]
    # on the 3 records the baselines are re-scored and the tuned row is paired with item-kNN
    assert "| item_knn | baseline, re-scored on these records | 0.5000" in part
    assert "| popularity | baseline, re-scored on these records |" in part
    assert "vs item_knn" in part.split("| llm | lora/beam4 |")[1].splitlines()[0]


def test_zero_hits_and_published_rows():
    assert fmt_mean({"map_at_4": 0.0, "map_at_4_low": 0.0, "map_at_4_high": 0.0,
                     "n_records": 897}) == "0 hits in 897 (< 0.0033)"
    assert fmt_mean({"map_at_4": 0.0313, "map_at_4_low": 0.026, "map_at_4_high": 0.0368,
                     "n_records": 897}) == "0.0313 [0.0260, 0.0368]"
    pub = published_rows()
    assert list(pub["setting"].unique()) == ["published"] and (pub["predictions"] == "").all()
    assert dict(zip(pub["system"], pub["map_at_4"], strict=True))["LLaMA 30B"] == 0.021


def test_readme_block_is_replaced_between_its_markers():
    readme = "intro\n<!-- headline:start -->\nold\n<!-- headline:end -->\nrest\n"
    assert with_headline(readme, "new table") == (
        "intro\n<!-- headline:start -->\nnew table\n<!-- headline:end -->\nrest\n")


def test_a_fusion_that_is_its_retriever_is_shown_as_such(tmp_path):
    every = list(TARGETS)
    sasrec = _save(tmp_path, "sasrec", "baseline", lambda r: TARGETS[r][:1] + [5, 6, 7], every)
    fused = {**_save(tmp_path, "llm", "lora-ranker-sasrec/fused", lambda r: TARGETS[r][:1] + [5, 6, 7], every),
             "retriever": "sasrec", "weight": 0.0}
    moved = {**_save(tmp_path, "llm2", "encoder/fused-sasrec", lambda r: [5] + TARGETS[r][:1] + [6, 7], every),
             "retriever": "sasrec", "fusion_weight": 0.5}
    text = headline(pd.DataFrame([sasrec, fused, moved]))
    line = next(x for x in text.splitlines() if x.startswith("| llm |"))
    assert "**sasrec's own list** (weight 0: the LLM changed nothing)" in line
    other = next(x for x in text.splitlines() if x.startswith("| llm2 |"))
    assert "own list" not in other  # it changed the order: an LLM result


def test_the_cost_table_lists_every_stage_and_sums_the_done_ones():
    timings = pd.DataFrame([{"run": "a", "chapter": "10_model_size", "minutes": 12.5,
                             "finished_utc": "2026-12-07T10:00:00Z", "commit": "abc"},
                            {"run": "b", "chapter": "10_model_size", "minutes": 7.0,
                             "finished_utc": "2026-12-07T11:00:00Z", "commit": "def"},
                            {"run": "other", "chapter": "02_zero_shot", "minutes": 99.0,
                             "finished_utc": "x", "commit": "y"}])
    text = cost_block(timings, [("a", "10_model_size"), ("a", "04_lora_finetune"), ("b", "10_model_size")])
    assert "| a | 04_lora_finetune | not run yet | | |" in text
    assert "| b | 10_model_size | 7.0 | 2026-12-07T11:00:00Z | def |" in text
    assert "2 of 3 stages done, 19.5 wall minutes" in text  # a run outside the stages is not counted


def test_the_published_stages_are_make_papers_files_and_the_readme_shows_their_times():
    root = repo_root()
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    listed = re.search(r"PAPER_PARAMS \?=((?:[^\n]*\\\n)*[^\n]*)", makefile).group(1)
    assert tuple(listed.replace("\\", " ").split()) == PUBLISHED_PARAMS
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- cost:start -->")[1].split("<!-- cost:end -->")[0]
    assert block.strip() == cost_block(read_timings(root / "reports" / "timings.md"),
                                       published_stages(root)).strip()
