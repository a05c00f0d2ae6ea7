"""pyproject.toml and environment.yml name the same packages with the same version specifiers."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _norm(req: str) -> tuple[str, str]:
    """``"Sentence_Transformers >= 3.0"`` -> ``("sentence-transformers", ">=3.0")``."""
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$", req)
    assert m, f"cannot parse requirement {req!r}"
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = ",".join(sorted(s.replace(" ", "") for s in m.group(3).split(",") if s.strip()))
    return name, spec


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return dict(_norm(r) for r in reqs)


def _conda_pip() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(_norm(r) for r in pip if not str(r).startswith("-"))


def test_same_packages_and_specifiers():
    py, conda = _pyproject(), _conda_pip()
    assert py, "pyproject.toml lists no dependencies"
    only_py = sorted(set(py) - set(conda))
    only_conda = sorted(set(conda) - set(py))
    assert not only_py, f"in pyproject.toml but not environment.yml: {only_py}"
    assert not only_conda, f"in environment.yml but not pyproject.toml: {only_conda}"
    differ = {k: (py[k], conda[k]) for k in py if py[k] != conda[k]}
    assert not differ, f"specifiers differ (pyproject, environment.yml): {differ}"


def test_environment_installs_the_package_and_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip, "environment.yml must install llmrec itself (pip: -e .)"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    minimum = tuple(int(x) for x in requires.lstrip(">=").split("."))
    pinned = tuple(int(x) for x in python.split("=")[-1].split("."))
    assert pinned >= minimum, f"environment.yml {python} is older than requires-python {requires}"


def test_normalisation():
    assert _norm("Sentence_Transformers >= 3.0") == ("sentence-transformers", ">=3.0")
    assert _norm("torch") == ("torch", "")
    assert _norm("a[x]>=1,<2") == _norm("a <2, >=1")
