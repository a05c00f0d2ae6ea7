"""Where things live: the asset cache (outside the repository), the repository, run folders."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that overrides the cache folder for fetched assets and converted models.
CACHE_ENV = "LLMREC_CACHE"


def cache_dir() -> Path:
    """The asset cache: ``$LLMREC_CACHE`` or ``~/.cache/llmrec``. Created on first use."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llmrec").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def repo_root() -> Path:
    """The repository this package was imported from (its parent folder)."""
    return Path(__file__).resolve().parent.parent


def reports_dir() -> Path:
    """``reports/`` at the repository root: the committed results table and figures."""
    return repo_root() / "reports"


def in_repo(path: str | Path) -> Path:
    """``path`` as given when absolute, else under the repository root: a run folder named in a
    parameters cell lands in the repository's ``runs/`` wherever the notebook was opened."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else repo_root() / path


def slug(text: str) -> str:
    """``text`` as a folder name: letters, digits, ``-_.``; anything else becomes ``-``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "x"


def runs_dir() -> Path:
    """``runs/`` at the repository root (git-ignored): full products of report runs."""
    return repo_root() / "runs"
