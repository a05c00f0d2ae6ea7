"""What a reader is told matches the results: the README's answer tables are generated from
reports/results.csv, and every decimal the README or a notebook's text quotes is a value of
that table (or of the blog's published one) at the digits quoted."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmrec.paths import repo_root
from llmrec.summary import HEADLINE_END, HEADLINE_START, answer, quoted_numbers, unbacked

ROOT = repo_root()


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(ROOT / "reports" / "results.csv")


def _outside_block(text: str) -> str:
    head, rest = text.split(HEADLINE_START, 1)
    return head + rest.split(HEADLINE_END, 1)[1]


def test_readme_answer_is_generated_from_the_table(table):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(HEADLINE_START, 1)[1].split(HEADLINE_END, 1)[0]
    assert block.strip() == answer(table).strip(), (
        "README's answer differs from reports/results.csv: run `python -m llmrec results summarize`")


def test_readme_prose_quotes_only_numbers_of_the_table(table):
    prose = _outside_block((ROOT / "README.md").read_text(encoding="utf-8"))
    numbers = quoted_numbers(prose)
    assert numbers  # the answer does quote some
    assert unbacked(numbers, table) == []


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.name)
def test_notebook_text_quotes_only_numbers_of_the_table(path, table):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert unbacked(quoted_numbers(text), table) == []


def test_the_check_catches_an_invented_number(table):
    assert unbacked(["0.0197", "0.9876"], table) == ["0.9876"]
    assert quoted_numbers("MAP@4 0.0313 [0.0260, 0.0368] and 0.5 and 10.0346") == [
        "0.0313", "0.0260", "0.0368"]
