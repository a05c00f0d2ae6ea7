"""Notebooks are committed clean: no outputs, one `parameters` cell, and they use the package."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from llmrec.report.params import SCHEMA

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no numbered notebooks in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not cell.get("outputs"), f"{path.name}: a cell has outputs; strip them (nbstripout)"
        assert cell.get("execution_count") is None, f"{path.name}: execution counts left in"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    # every assignment in the parameters cell is a key papermill files can set
    for line in tagged[0].source.splitlines():
        line = line.split("#")[0].strip()
        if "=" in line and not line.startswith(("import", "from")):
            key = line.split("=")[0].strip()
            assert key in SCHEMA or key == "params_file", (
                f"{path.name}: parameter {key!r} is not in llmrec.report.params.SCHEMA")
    # the parameters are validated by the package before anything else runs
    first = code[code.index(tagged[0]) + 1].source
    assert "Chapter.start(" in first and "globals()" in first, (
        f"{path.name}: the cell after the parameters must be `ch = Chapter.start(NN, globals())`")
