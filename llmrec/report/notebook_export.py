"""Executed chapters, published: a report run's notebooks made small enough to browse.

The report runs every chapter with papermill into ``runs/<run>/notebooks/``; aggregation
copies the completed ones to ``reports/notebooks/<run>/`` through :func:`export_notebook`,
so a reader with only the repository reads every chapter with its tables and figures
inline. What it changes, and nothing else: figures stay inline as PNG (other renderings
of the same output, such as SVG, and widgets with their states, which render nowhere without
a kernel and whose plain-text form is their first state, such as a progress bar at 0%, are
dropped), a long text output keeps its first and last lines with a line saying how many
were trimmed, progress-bar noise (carriage-return redraws) keeps only its final state, and
a very large HTML table falls back to its plain-text form, and the machine's absolute paths
(the repository the run was made in, the asset cache, the home folder) become relative ones
(``runs/...``, ``$LLMREC_CACHE/...``, ``~/...``). nbformat reads and writes the files; no
converter does this trimming, so it is written here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmrec.artifacts import atomic_write_text
from llmrec.paths import cache_dir, repo_root

#: Output formats kept, in order of preference (the first one present wins, plus PNG).
KEEP = ("text/html", "text/markdown", "text/plain")
#: A text output longer than this many lines keeps its head and tail.
MAX_LINES = 60
#: The output format of a Jupyter widget.
WIDGET = "application/vnd.jupyter.widget-view+json"
#: An HTML output larger than this falls back to its text/plain form.
MAX_HTML = 60_000


def _final_state(text: str) -> str:
    """Each line as its last carriage-return redraw left it (tqdm's progress bars)."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def trim(text: str, max_lines: int = MAX_LINES) -> str:
    """``text`` with its middle cut to ``max_lines`` lines, the cut said in a line."""
    lines = text.split("\n")
    if len(lines) <= max_lines:
        return text
    head, tail = lines[: max_lines - 10], lines[-9:]
    return "\n".join([*head, f"... {len(lines) - len(head) - len(tail)} lines trimmed ...", *tail])


def _slim(output: Any, max_lines: int) -> Any | None:
    kind = output.get("output_type")
    if kind == "stream":
        text = trim(_final_state(output.get("text", "")), max_lines)
        if not text.strip():
            return None
        output["text"] = text
        return output
    if kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        if WIDGET in data:
            # a widget (tqdm's notebook progress bar): its text/plain is its state when it was
            # created ("0%| 0/272"), never its final one, and the widget renders nowhere without
            # a kernel
            return None
        kept = {k: data[k] for k in ("image/png",) if k in data}
        html = data.get("text/html")
        if html is not None and len(html) <= MAX_HTML:
            kept["text/html"] = html
        for key in ("text/markdown", "text/plain"):
            if key in data and not ({"image/png", "text/html", "text/markdown"} & set(kept)):
                value = data[key]
                kept[key] = trim(value if isinstance(value, str) else "".join(value), max_lines)
                break
        if not kept:
            return None
        output["data"] = kept
        output.get("metadata", {}).pop(WIDGET, None)
        return output
    if kind == "error":
        output["traceback"] = output.get("traceback", [])[-8:]
        return output
    return output


def chapter_index(notebooks_root: Path, relative_to: Path) -> str:
    """Markdown: each chapter with a link to its executed copy in every run that has one."""
    by_chapter: dict[str, list[Path]] = {}
    for path in sorted(notebooks_root.glob("*/*.ipynb")):
        by_chapter.setdefault(path.stem, []).append(path)
    if not by_chapter:
        return "(the executed chapters appear here once `make report` has run)\n"
    lines = []
    for stem, paths in sorted(by_chapter.items()):
        links = ", ".join(f"[{p.parent.name}]({p.relative_to(relative_to).as_posix()})" for p in paths)
        lines.append(f"- `{stem}`: {links}")
    return "\n".join(lines) + "\n"


def export_notebook(src: str | Path, dst: str | Path, max_lines: int = MAX_LINES) -> Path:
    """Write the executed notebook ``src`` to ``dst`` slimmed for reading (module docstring)."""
    # nbformat (with its JSON-schema validator) takes seconds to import: only when exporting,
    # not for every `python -m llmrec` command that imports the results module
    import nbformat

    nb = nbformat.read(str(src), as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in (_slim(o, max_lines) for o in cell.outputs) if o is not None]
    return atomic_write_text(dst, without_machine_paths(nbformat.writes(nb), _roots(nb)))


def _roots(nb: Any) -> dict[str, str]:
    """Absolute folder -> what a published chapter says instead (longest first)."""
    made_in = nb.metadata.get("papermill", {}).get("input_path")  # <repo>/notebooks/NN_x.ipynb
    roots = {str(cache_dir()): "$LLMREC_CACHE", str(repo_root()): "."}
    if made_in and Path(made_in).is_absolute():
        roots[str(Path(made_in).parent.parent)] = "."
    roots.setdefault(str(Path.home()), "~")
    return dict(sorted(roots.items(), key=lambda kv: -len(kv[0])))


def without_machine_paths(text: str, roots: dict[str, str]) -> str:
    """``text`` with each absolute folder of ``roots`` written as its stand-in: ``/repo/runs``
    becomes ``runs``, ``/home/me/.cache/llmrec/x`` becomes ``$LLMREC_CACHE/x``."""
    for folder, stand_in in roots.items():
        if folder in ("", "/"):
            continue
        text = text.replace(folder + "/", "" if stand_in == "." else stand_in + "/")
        text = text.replace(folder, stand_in)
    return text
