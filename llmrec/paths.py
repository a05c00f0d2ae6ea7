"""Where things live: the asset cache (outside the repository), the repository, run folders
(a relative run folder resolves against the repository, whatever the current folder)."""

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


def slug(text: str) -> str:
    """``text`` as a folder name: letters, digits, ``-_.``; anything else becomes ``-``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "x"


def runs_dir() -> Path:
    """``runs/`` at the repository root (git-ignored): full products of report runs."""
    return repo_root() / "runs"


def project_root() -> Path:
    """The folder a relative run folder is relative to: the repository this package was
    imported from when it is one (an editable install or a checkout on ``PYTHONPATH``),
    else the current folder (a package installed into site-packages has no repository)."""
    root = repo_root()
    return root if (root / "notebooks").is_dir() and (root / "params").is_dir() else Path.cwd()


def in_repo(path: str | os.PathLike) -> Path:
    """``path`` as an absolute path: a relative one (``runs/dev/x``, ``params/quick.yaml``)
    is taken from :func:`project_root`, not from the current folder, so a notebook opened in
    JupyterLab (whose kernel starts in ``notebooks/``) writes to the repository's ``runs/``
    like the report command does, not to ``notebooks/runs/``."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path
