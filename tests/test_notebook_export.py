"""Executed notebooks slimmed for reading: PNG kept, long text trimmed, progress redraws and
widgets (a progress bar's first state) dropped."""

from __future__ import annotations

import re
import subprocess

import nbformat
import pytest

from llmrec.paths import repo_root
from llmrec.report.notebook_export import (
    chapter_index,
    export_notebook,
    trim,
    without_machine_paths,
)


def test_export_keeps_figures_and_trims_the_rest(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="a  10%\ra  50%\ra 100%\n"),
        nbformat.v4.new_output("stream", name="stdout", text="\n".join(map(str, range(200)))),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                     "image/svg+xml": "<svg/>",
                                                     "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
            "text/plain": "Loading weights:   0%|          | 0/272 [00:00<?, ?it/s]"}),
        nbformat.v4.new_output("execute_result", data={"text/html": "<table/>", "text/plain": "df"},
                               execution_count=1),
    ]
    nb.cells = [cell]
    out = export_notebook_roundtrip(nb, tmp_path)
    progress, long, figure, table = out.cells[0].outputs  # the widget (a frozen 0% bar) is gone
    assert progress["text"] == "a 100%\n"
    assert "lines trimmed" in long["text"] and len(long["text"].splitlines()) == 60
    assert set(figure["data"]) == {"image/png"}
    assert set(table["data"]) == {"text/html"}


def export_notebook_roundtrip(nb, tmp_path):
    src, dst = tmp_path / "in.ipynb", tmp_path / "out" / "in.ipynb"
    nbformat.write(nb, str(src))
    export_notebook(src, dst)
    return nbformat.read(str(dst), as_version=4)


def test_trim_and_index(tmp_path):
    assert trim("a\nb", 60) == "a\nb"
    (tmp_path / "notebooks" / "run-a").mkdir(parents=True)
    (tmp_path / "notebooks" / "run-a" / "02_zero_shot.ipynb").write_text("{}")
    text = chapter_index(tmp_path / "notebooks", tmp_path)
    assert text.strip() == "- `02_zero_shot`: [run-a](notebooks/run-a/02_zero_shot.ipynb)"
    assert "make report" in chapter_index(tmp_path / "none", tmp_path)


PUBLISHED = sorted((repo_root() / "reports" / "notebooks").glob("*/[0-9][0-9]_*.ipynb"))
MACHINE_PATH = re.compile(r"(?<![\w.$~])/(?:tmp|root|home|work|Users|var)/")


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_published_chapter_shows_its_outputs_and_no_machine_path(path):
    committed = subprocess.run(["git", "show", f"HEAD:{path.relative_to(repo_root())}"],
                               cwd=repo_root(), capture_output=True, text=True)
    text = committed.stdout if committed.returncode == 0 else path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs, "no outputs: the git filter stripped it (see .gitattributes)"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure inline"
    assert MACHINE_PATH.findall(text) == []


def test_machine_paths_become_relative():
    roots = {"/home/me/.cache/llmrec": "$LLMREC_CACHE", "/tmp/clone": ".", "/home/me": "~"}
    text = '"/tmp/clone/runs/x" /tmp/clone /home/me/.cache/llmrec/models /home/me/notes'
    assert without_machine_paths(text, roots) == '"runs/x" . $LLMREC_CACHE/models ~/notes'
