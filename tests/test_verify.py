"""`results verify` leaves no hole: every metric cell is compared, whatever pandas reads it
as, and a damaged predictions file is a disagreement of its row, named, while the other
rows are still checked (a tiny table of two systems in a temporary folder)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from llmrec.artifacts import save_system_run
from llmrec.cli import main
from llmrec.errors import LlmrecError
from llmrec.evaluation.metrics import score
from llmrec.report.results import recompute, verify, verify_table


def _rows(shift: int) -> list[dict]:
    return [{"record_id": f"u{i}", "target_ids": [i, i + 1, i + 2, i + 3],
             "predicted_ids": [i + shift, i + 1, None, i + 7], "input_ids": [i + 20]}
            for i in range(12)]


@pytest.fixture()
def table(tmp_path):
    """results.csv of two systems whose predictions files lie beside it."""
    run = tmp_path / "run"
    rows = []
    for system, shift in (("alpha", 0), ("beta", 5)):
        preds = _rows(shift)
        rows.append(save_system_run(run, system, "baseline", "temporal", preds,
                                    score(preds, catalog_size=50), {"run": "tiny"}))
    path = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _numbers(path) -> int:
    """How many numeric cells the two recomputations give (the count verify must reach)."""
    return sum(1 for row in pd.read_csv(path).to_dict("records")
               for v in recompute(row).values()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v)


def test_a_whole_table_agrees_and_counts_every_number(table):
    report = verify(table)
    assert list(report["mismatches"]) == ["", ""]
    assert report.attrs["compared"] == int(report["compared"].sum()) == _numbers(table)
    assert report.attrs["compared"] > 2 * 30  # K = 4 and 10, intervals, rates


@pytest.mark.parametrize("cell", ["abc", ""])
def test_a_non_number_cell_is_a_named_disagreement(table, cell):
    whole = verify(table).attrs["compared"]
    df = pd.read_csv(table)
    df["map_at_4"] = df["map_at_4"].astype(object)
    df.loc[1, "map_at_4"] = cell
    df.to_csv(table, index=False)
    # "abc" makes pandas read the column as text, an empty cell as NaN: both were skipped before
    assert (pd.read_csv(table)["map_at_4"].dtype == float) == (cell == "")
    report = verify(table)
    assert report.attrs["compared"] == whole  # the column is not skipped
    assert report.loc[0, "mismatches"] == ""  # "0.1" read as text still compares as a number
    bad = report.loc[1, "mismatches"]
    assert bad.startswith("map_at_4: ") and "is not a number" in bad
    assert report.loc[1, "system"] == "beta"


def test_a_changed_number_is_a_disagreement(table):
    df = pd.read_csv(table)
    df.loc[0, "recall_at_10"] += 0.01
    report = verify_table(df)
    assert report.loc[0, "mismatches"].startswith("recall_at_10: ")
    assert report.loc[1, "mismatches"] == ""


def test_a_truncated_predictions_file_is_named_and_the_rest_checked(table, capsys):
    df = pd.read_csv(table)
    path = Path(df.loc[0, "predictions"])  # absolute: the run lies outside the repository
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EOFError):  # what the plain reader gives
        with gzip.open(path, "rt") as fh:
            fh.read()
    with pytest.raises(LlmrecError) as err:
        recompute(df.loc[0].to_dict())
    msg = str(err.value)
    assert str(path) in msg and "rerun the chapter that wrote it" in msg and "\n" not in msg

    report = verify(table)
    assert str(path) in report.loc[0, "mismatches"] and report.loc[0, "compared"] == 0
    assert report.loc[1, "mismatches"] == "" and report.loc[1, "compared"] > 30
    assert main(["results", "verify", "--csv", str(table)]) == 1
    out = capsys.readouterr().out
    assert "1 rows disagree" in out and str(path) in out
