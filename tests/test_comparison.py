"""Comparing systems on the same records, the ablations' fewer inputs, per-title year errors."""

from __future__ import annotations

import pandas as pd
import pytest

from llmrec.errors import LlmrecError
from llmrec.evaluation.comparison import paired_table, seed_sentence, seed_spread
from llmrec.evaluation.failures import year_counts
from llmrec.evaluation.spine import record_fields
from llmrec.llm.prompt_variants import with_n_inputs
from llmrec.recommenders.base import ranked_predictions


def ranked_rows(records, ranked, k):
    return [{**base, **pred} for base, pred in zip(record_fields(records),
                                                   ranked_predictions(ranked, k), strict=True)]


def _records():
    return pd.DataFrame({"record_id": ["1-0", "2-0", "3-0"], "user_id": [1, 2, 3],
                         "input_ids": [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [1, 3, 5, 7, 9, 11]],
                         "target_ids": [[20, 21, 22, 23], [30, 31, 32, 33], [40, 41, 42, 43]]})


def test_with_n_inputs_keeps_the_most_recent():
    recs = _records()
    out = with_n_inputs(recs, 2)
    assert out["input_ids"].tolist() == [[5, 6], [11, 12], [9, 11]]
    assert recs["input_ids"].iloc[0] == [1, 2, 3, 4, 5, 6]  # the original is untouched
    with pytest.raises(LlmrecError):
        with_n_inputs(recs, 0)


def test_paired_table_on_shared_records():
    recs = _records()
    good = ranked_rows(recs, [[20, 21, 22, 23], [30, 0, 0, 0], [99, 98, 97, 96]], k=4)
    bad = ranked_rows(recs, [[99, 98, 97, 96]] * 3, k=4)
    table = paired_table({"bad": bad, "good": good[:2]}, reference="bad").set_index("system")
    assert (table["n_records"] == 2).all()  # only the records both have
    assert table.loc["good", "map_at_4"] == pytest.approx((1.0 + 0.25) / 2)
    assert table.loc["bad", "map_at_4"] == 0.0 and table.loc["bad", "diff"] == 0.0
    assert table.loc["good", "diff"] == pytest.approx(0.625)
    assert table.loc["good", "diff_low"] <= 0.625 <= table.loc["good", "diff_high"]
    with pytest.raises(LlmrecError):
        paired_table({"a": good}, reference="b")


def test_year_counts_per_title(ml100k):
    rows = [{"titles": ["Star Wars (1977)", "Star Wars (1980)", "Fargo", "Fargo (2031)",
                        "Toy Story (2005)"]}]
    c = year_counts(rows, ml100k.movies, this_year=2026)
    assert c["titles"] == 5 and c["with_year"] == 4
    assert c["wrong_year"] == 3  # 1980, 2031 and 2005 are not these titles' years
    assert c["after_catalog"] == 2 and c["future"] == 1
    assert c["future_share"] == pytest.approx(0.25)


def test_the_spread_across_seeds_stands_beside_the_first_seeds_interval():
    rows = {0: {"n_records": 300, "map_at_4": 0.010, "map_at_4_low": 0.006, "map_at_4_high": 0.015, "validity": 1.0},
            1: {"n_records": 300, "map_at_4": 0.014, "map_at_4_low": 0.009, "map_at_4_high": 0.020, "validity": 0.9},
            2: {"n_records": 300, "map_at_4": 0.012, "map_at_4_low": 0.008, "map_at_4_high": 0.017, "validity": 1.0}}
    table = seed_spread(rows)
    assert list(table["seed"]) == ["0", "1", "2", "across seeds"]
    across = table.iloc[-1]
    assert across["map_at_4"] == pytest.approx(0.012) and across["sd"] == pytest.approx(0.002)
    assert (across["least"], across["greatest"]) == (0.010, 0.014)
    text = seed_sentence(table)
    assert text.startswith("Across 3 training seeds on the same 300 records, MAP@4 runs from 0.0100 to 0.0140")
    assert "the spread across seeds is smaller than the interval's width (0.0040 against 0.0090)" in text
    nothing = {seed: {**row, "map_at_4": 0.0, "map_at_4_low": 0.0, "map_at_4_high": 0.0} for seed, row in rows.items()}
    assert "is no wider than the interval's width (0.0000 against 0.0000)" in seed_sentence(seed_spread(nothing))
    with pytest.raises(LlmrecError, match="different numbers of records"):
        seed_spread({0: rows[0], 1: {**rows[1], "n_records": 100}})
