"""Notebooks never land in git with outputs: .gitattributes names the nbstripout filter, the
Makefile's set-up installs it, and it stores a run notebook as its clean source."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest

from llmrec.paths import repo_root

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_gitattributes_puts_notebooks_through_the_filter():
    lines = (repo_root() / ".gitattributes").read_text().splitlines()
    assert "*.ipynb filter=nbstripout diff=ipynb" in lines
    # the published chapters keep their outputs: the filter is for the source notebooks only
    assert lines.index("reports/notebooks/**/*.ipynb -filter -diff") > lines.index(
        "*.ipynb filter=nbstripout diff=ipynb")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_clean_source_is_stored_as_it_is(filter_repo, path):
    assert filter_repo.stage(path) == path.read_bytes()


def test_a_run_and_saved_notebook_is_stored_as_its_source(filter_repo, tmp_path):
    source = repo_root() / "notebooks" / "06_decoding.ipynb"
    nb = nbformat.read(source, as_version=4)
    for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = n + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed\n"),
                        nbformat.v4.new_output("error", ename="ValueError", evalue="x", traceback=[])]
        cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["language_info"].update(version="3.11.2", mimetype="text/x-python",
                                        pygments_lexer="ipython3", file_extension=".py",
                                        nbconvert_exporter="python",
                                        codemirror_mode={"name": "ipython", "version": 3})
    saved = tmp_path / "06_decoding.ipynb"
    nbformat.write(nb, saved)
    assert b'"outputs": []' not in saved.read_bytes().split(b'"cell_type": "code"')[1][:2000]
    assert filter_repo.stage(saved) == source.read_bytes()


def test_make_setup_installed_the_filter_here():
    """Where `make setup` ran in a git checkout, git strips notebooks of this checkout."""
    root = repo_root()
    if not (root / ".venv" / ".installed").is_file():
        pytest.skip("`make setup` has not run in this checkout")
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root,
                            capture_output=True, text=True)
    if inside.returncode != 0:
        pytest.skip("not a git checkout")
    clean = subprocess.run(["git", "config", "--get", "filter.nbstripout.clean"], cwd=root,
                           capture_output=True, text=True).stdout
    assert "nbstripout" in clean and "--keep-id" in clean
    attr = subprocess.run(["git", "check-attr", "filter", "notebooks/06_decoding.ipynb"], cwd=root,
                          capture_output=True, text=True).stdout
    assert attr.strip().endswith("filter: nbstripout")
    assert Path(clean.split("'")[1]).is_file(), f"the filter's python is missing: {clean}"
