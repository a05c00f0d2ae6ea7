"""Notebook 01 (the data chapter) runs under papermill and records the protocol's counts: on
the embedded ml-100k as the smoke report ran it, and on a folder a user brings."""

from __future__ import annotations

import json

import numpy as np
import papermill
import pytest

from llmrec.paths import repo_root

NOTEBOOK = repo_root() / "notebooks" / "01_data.ipynb"
FIGURES = {"01_ratings.png", "01_likes_per_user.png", "01_years.png", "01_genres.png",
           "01_records_cut.png", "01_splits.png"}


def _run(tmp_path, **params):
    run_dir = tmp_path / "run"
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "01_data.ipynb"),
        parameters=dict(name="test-data", run_dir=str(run_dir), seed=0, **params),
        kernel_name="python3", cwd=str(repo_root()), progress_bar=False,
    )
    return run_dir, json.loads((run_dir / "data_summary.json").read_text())


def test_notebook_01_on_embedded_ml100k(smoke_report):
    """The chapter as the smoke report ran it (the session's ``smoke_report``, its
    model-independent run) on the embedded ml-100k."""
    run_dir = smoke_report.common
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["dataset"] == "ml-100k"
    assert summary["ratings"] == 100_000 and summary["users"] == 943 and summary["movies"] == 1682
    assert summary["records"] == 5111
    c = summary["record_counts"]
    assert c["users_with_records"] == 897 and c["users_with_likes"] == 942
    assert c["users_skipped_fewer_than_window"] == 45
    assert summary["split_sizes"]["temporal"] == {"train": 3511, "valid": 703, "test": 897}
    assert summary["split_sizes"]["blog"]["test"] == 920
    assert sum(summary["split_sizes"]["blog"].values()) == 5111
    assert summary["leaks"]["temporal"]["train records that start after a test record of their user"] == 0
    assert summary["leaks"]["blog"]["train records that start after a test record of their user"] > 0
    assert summary["shared_titles"] == 18
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert FIGURES <= figures and all((run_dir / "figures" / f).stat().st_size > 5000 for f in FIGURES)


@pytest.mark.parametrize("seed", [3])
def test_notebook_01_on_a_user_folder(tmp_path, seed):
    """A GroupLens ml-1m folder a user brings: counts follow the protocol's arithmetic."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    n_movies = 60
    (folder / "movies.dat").write_bytes("".join(
        f"{i}::Movie {i} (19{50 + i % 40})::{'Drama|Comedy' if i % 2 else 'Action'}\n"
        for i in range(1, n_movies + 1)).encode("latin-1"))
    lines, n_likes = [], []
    for user in range(1, 31):
        items = rng.choice(np.arange(1, n_movies + 1), size=int(rng.integers(3, 45)), replace=False)
        stars = rng.integers(1, 6, size=len(items))
        n_likes.append(int((stars >= 4).sum()))
        lines += [f"{user}::{i}::{s}::{978300000 + 10 * k}\n" for k, (i, s) in enumerate(zip(items, stars, strict=True))]
    (folder / "ratings.dat").write_text("".join(lines))
    _, summary = _run(tmp_path, dataset=str(folder))
    assert summary["dataset"] == "ml-1m" and "ml-1m layout" in summary["source"]
    assert summary["records"] == sum(n // 10 for n in n_likes) > 0
    assert summary["record_counts"]["users_skipped_fewer_than_window"] == sum(
        1 for n in n_likes if 0 < n < 10)
    assert summary["split_sizes"]["temporal"]["test"] == sum(1 for n in n_likes if n >= 10)
