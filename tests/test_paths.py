"""Run folders resolve to the repository's runs/ wherever a notebook runs (JupyterLab starts
a kernel in notebooks/, papermill in the repository)."""

from __future__ import annotations

from pathlib import Path

from llmrec import paths
from llmrec.report.params import collect


def test_a_relative_run_dir_is_the_repositorys(monkeypatch, tmp_path):
    root = paths.repo_root()
    assert paths.project_root() == root  # this checkout has notebooks/ and params/
    for cwd in (root, root / "notebooks", tmp_path):
        monkeypatch.chdir(cwd)
        assert paths.in_repo("runs/dev/x") == root / "runs" / "dev" / "x"
        assert collect({"run_dir": "runs/dev/x"})["run_dir"] == str(root / "runs" / "dev" / "x")
    assert paths.in_repo(tmp_path / "r") == tmp_path / "r"
    assert collect({"run_dir": str(tmp_path / "r")})["run_dir"] == str(tmp_path / "r")
    assert paths.in_repo("~/r") == Path.home() / "r"
    assert collect({})["run_dir"] == str(root / "runs" / "dev")  # the schema's default


def test_without_a_repository_the_current_folder_is_the_root(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == tmp_path
    assert paths.in_repo("runs/x") == tmp_path / "runs" / "x"
