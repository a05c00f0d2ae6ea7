"""The package's rooms are layers (ARCHITECTURE.md): a module imports, at its top, only from
its own room or a room below it, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import llmrec

PACKAGE = Path(llmrec.__file__).parent
#: bottom to top; the infrastructure modules at the package's top level are the ground floor
ROOMS = ["", "data", "llm", "evaluation", "recommenders", "report"]
#: the front door may import every room: it only dispatches commands
DOORS = {"llmrec.cli", "llmrec.__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else ""


def _top_level_imports(path: Path) -> set[str]:
    """The llmrec modules a file imports at module level (not inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        nodes = [node] + (list(ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else [])
        for n in nodes:
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("llmrec"):
                found.add(n.module)
                found.update(f"{n.module}.{a.name}" for a in n.names)
            elif isinstance(n, ast.Import):
                found.update(a.name for a in n.names if a.name.startswith("llmrec"))
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {t for t in _top_level_imports(p) if t in mods and t != m} for m, p in mods.items()}


def test_no_room_imports_from_a_room_above_it():
    upward = [f"{m} -> {t}" for m, targets in _graph().items() if m not in DOORS
              for t in targets if ROOMS.index(_room(t)) > ROOMS.index(_room(m))]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle():
    graph = {m: {t for t in ts if not m.startswith(t + ".") and t != "llmrec"}
             for m, ts in _graph().items()}  # a package's face is not a module of its own
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_the_check_sees_the_rooms():
    assert _room("llmrec.data.records") == "data" and _room("llmrec.errors") == ""
    assert _room("llmrec.report") == "report"
    assert "llmrec.data.records" in _graph()["llmrec.evaluation.spine"]
    assert "llmrec.recommenders.base" in _graph()["llmrec.recommenders.fitted"]
