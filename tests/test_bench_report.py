"""The speed benchmark's results file, and the docs' tables drawn from it."""

from __future__ import annotations

import pytest

from llmrec.errors import LlmrecError
from llmrec.paths import repo_root
from llmrec.report.bench_report import (
    BLOCK,
    COLUMNS,
    PAGES,
    QUICK_BLOCK,
    SIZES_BLOCK,
    bench_block,
    machine,
    quick_block,
    read_bench,
    sizes_block,
    write_bench,
)


def _row(way, x, same=None):
    return {"model": "smollm2-135m", "pass": "greedy (chat)", "way": way, "records": 32,
            "wall_s": 40.0 / x, "cpu_s": 40.0 / x, "prompts_per_s": 0.8 * x, "tokens_per_s": 20.0 * x,
            "s_per_record": 1.25 / x, "x_naive": x, "same": same, "gflops": 10.0 * x,
            "pct_of_matmul": 12.5 * x}


def test_rows_and_run_facts_round_trip_into_the_readme_table(tmp_path):
    meta = machine(80.0, 20.0, threads=1)
    path = write_bench([_row("model.generate b32 (naive)", 1.0), _row("b32, rows leave", 1.6, "32/32")],
                       meta, tmp_path, "python benchmarks/bench_fast_paths.py ")
    frame, info = read_bench(tmp_path)
    assert path.name == "fast_paths.csv" and list(frame.columns) == list(COLUMNS)
    assert info["matmul_gflops_fp32"] == 80.0 and info["threads"] == 1 and info["cores"] >= 1
    assert info["started_utc"] <= info["finished_utc"] and "load_average_end" in info
    assert "torch" in info["versions"] and info["command"] == "python benchmarks/bench_fast_paths.py"
    table = bench_block(tmp_path)
    assert f"Measured {info['finished_utc'][:10]} on {info['cpu']}" in table
    assert "| smollm2-135m | greedy (chat) | b32, rows leave | 32 | 0.78 | 1.60 | 32/32 | 16.0 | 20% |" in table
    assert "| model.generate b32 (naive) | 32 | 1.25 | 1.00 |  |" in table  # no "same" for the naive row


def test_no_rows_or_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(LlmrecError, match="no benchmark rows"):
        write_bench([], machine(1.0, 1.0, 1), tmp_path, "x")
    with pytest.raises(LlmrecError, match="run `python benchmarks/bench_fast_paths.py` first"):
        read_bench(tmp_path / "missing")


def test_quick_line_gives_each_chapter_and_the_budget(tmp_path):
    import json

    import pandas as pd

    pd.DataFrame([{"chapter": "02_zero_shot", "mode": "cold", "seconds": 100.0, "minutes": 1.67,
                   "within_budget": True},
                  {"chapter": "04_lora_finetune", "mode": "cold", "seconds": 200.0, "minutes": 3.33,
                   "within_budget": False}]).to_csv(tmp_path / "quick_timings.csv", index=False)
    (tmp_path / "quick_timings.json").write_text(json.dumps(
        {"started_utc": "2026-11-30T00:00:00Z", "cpu": "Some CPU", "cpu_count": 2, "threads": "auto",
         "load_average_start": 0.1, "git_commit": "abcdef0123456", "mode": "cold",
         "command": "python benchmarks/time_quick_tier.py"}))
    line = quick_block(tmp_path)
    assert "Measured 2026-11-30 on Some CPU (2 cores" in line and "each from an empty cache" in line
    assert "02 1.7, 04 3.3; 1 of 2 within 3 minutes" in line
    with pytest.raises(LlmrecError, match="time_quick_tier.py` first"):
        quick_block(tmp_path / "missing")


def test_size_table_gives_each_way_against_the_reference(tmp_path):
    import json

    import pandas as pd

    def row(model, way, tokens, x, same):
        return {"model": model, "way": way, "records": 16, "load_s": 6.5, "resident_gib": 7.2,
                "peak_resident_gib": 9.1, "seconds": 100.0, "tokens_per_s": tokens,
                "prompts_per_s": 0.16, "map_at_4": 0.0, "validity": 0.9, "x_ref": x, "same": same}

    pd.DataFrame([row("qwen2.5-coder-1.5b", "float32, 2 threads, batch 16", 7.4, 1.0, 1.0),
                  row("qwen2.5-coder-1.5b", "bfloat16", 1.85, 0.25, 0.5),
                  row("qwen2.5-coder-1.5b", "int8 dynamic", 9.6, 1.3, 0.3125)]).to_csv(
        tmp_path / "model_sizes.csv", index=False)
    (tmp_path / "model_sizes.json").write_text(json.dumps(
        {"finished_utc": "2026-12-07T18:00:00Z", "cpu": "Some CPU", "cores": 2, "git_commit": "abcdef0123",
         "versions": {"torch": "2.13.0"}, "load_average_start": 0.2, "load_average_end": 1.9,
         "n_records": 16, "command": "python benchmarks/bench_model_sizes.py"}))
    table = sizes_block(tmp_path)
    assert "Measured 2026-12-07 on Some CPU (2 cores), commit abcdef0123" in table
    assert "on the same 16 seeded test records per way" in table
    assert ("| model | load s | GiB resident (peak) | tokens/s, float32, 2 threads, batch 16 | "
            "bfloat16: tokens/s (x ref, same) | int8 dynamic: tokens/s (x ref, same) |") in table
    assert "| qwen2.5-coder-1.5b | 6.5 | 7.20 (9.10) | 7.4 | 1.9 (x0.25, 50%) | 9.6 (x1.30, 31%) |" in table
    with pytest.raises(LlmrecError, match="bench_model_sizes.py` first"):
        sizes_block(tmp_path / "missing")


@pytest.mark.parametrize(("block", "render", "folder", "command"), [
    (BLOCK, bench_block, "reports/benchmarks", "python benchmarks/bench_fast_paths.py --docs"),
    (QUICK_BLOCK, quick_block, "reports", "python benchmarks/time_quick_tier.py --docs"),
    (SIZES_BLOCK, sizes_block, "reports/benchmarks", "python benchmarks/bench_model_sizes.py --readme"),
], ids=["fast-paths", "quick-tier", "model-sizes"])
def test_docs_draw_their_speed_numbers_from_the_committed_runs(block, render, folder, command):
    readme = (repo_root() / PAGES[block]).read_text(encoding="utf-8")
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    assert start in readme and end in readme
    text = readme.split(start, 1)[1].split(end, 1)[0]
    assert text.strip() == render(repo_root() / folder).strip(), (
        f"{PAGES[block]}'s {block} differ from the committed results: run `{command}`")


def test_redraw_page_replaces_only_its_block(tmp_path):
    from llmrec.report.bench_report import redraw_page

    readme = tmp_path / "speed.md"
    readme.write_text(f"intro\n<!-- {BLOCK}:start -->\nold\n<!-- {BLOCK}:end -->\ntail\n")
    redraw_page(BLOCK, "new table\n", readme)
    assert readme.read_text() == f"intro\n<!-- {BLOCK}:start -->\nnew table\n<!-- {BLOCK}:end -->\ntail\n"
    with pytest.raises(LlmrecError, match="lacks the markers"):
        redraw_page(QUICK_BLOCK, "x", readme)
