"""What a reader is told matches the results: the README's key table and docs/answer.md's
tables are generated from reports/results.csv, and every decimal the README, a docs page or
a notebook's text quotes is a value of that table (or of the blog's published one) at the
digits quoted."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from llmrec.paths import repo_root
from llmrec.report.summary import answer, key_table, quoted_numbers, size_block, unbacked

ROOT = repo_root()
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(ROOT / "reports" / "results.csv")


def _block(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def _prose(text: str) -> str:
    """The text outside every generated block (``<!-- name:start -->`` ... ``end``)."""
    return re.sub(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", "", text, flags=re.S)


def test_readme_key_table_is_generated_from_the_table(table):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _block(readme, "key-table").strip() == key_table(table).strip(), (
        "README's key table differs from reports/results.csv: run `python -m llmrec results summarize`")


def test_readme_size_trend_is_generated_from_the_table(table):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _block(readme, "size-trend").strip() == size_block(table).strip(), (
        "README's size trend differs from reports/results.csv: run `python -m llmrec results summarize`")


def test_the_answer_page_is_generated_from_the_table(table):
    page = (ROOT / "docs" / "answer.md").read_text(encoding="utf-8")
    assert _block(page, "headline").strip() == answer(table).strip(), (
        "docs/answer.md differs from reports/results.csv: run `python -m llmrec results summarize`")


@pytest.mark.parametrize("page", PAGES)
def test_prose_quotes_only_numbers_of_the_table(page, table):
    prose = _prose((ROOT / page).read_text(encoding="utf-8"))
    assert unbacked(quoted_numbers(prose), table) == []


def test_the_readme_and_the_answer_quote_results():
    for page in ("README.md", "docs/answer.md"):
        assert quoted_numbers(_prose((ROOT / page).read_text(encoding="utf-8"))), page


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
    assert _prose("a 0.1 <!-- x-y:start -->0.9876<!-- x-y:end --> b") == "a 0.1  b"
