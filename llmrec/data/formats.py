"""How a movie is written, in one place: the list separator, ``Title (Year)``, id -> title.

PROTOCOL.md section 1: a movie is shown as MovieLens shows it, ``Title (Year)`` with the
trailing article kept (``Usual Suspects, The (1995)``), and lists are joined by ``" => "``.
Every module that writes or reads a title goes through here: the data loader (catalog
titles), the prompts, the Alpaca export, the parser and matchers (generated titles), the
constrained decoder and the reranker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmrec.errors import LlmrecError

#: The list separator of every prompt, training answer and constrained completion.
SEPARATOR = " => "

# "Title (1995)", also "Title (2006-2007)" (ml-25m series) and a trailing "(V)" (ml-100k)
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)"
                         r"(?:\s*\(V\))?\s*$")


def split_year(title: str) -> tuple[str, int | None]:
    """``"Usual Suspects, The (1995)"`` -> ``("Usual Suspects, The", 1995)``.

    No trailing year, or nothing before it (``"(1995)"``) -> ``(title, None)``. Catalog
    titles and generated titles are split by this one rule."""
    title = title.strip()
    m = _TITLE_YEAR.match(title)
    if not m or not m.group("title"):
        return title, None
    return m.group("title"), int(m.group("year"))


def display_title(title: str, year: int | None) -> str:
    """``Title (Year)``, or the bare title when the year is unknown."""
    return f"{title} ({year})" if year is not None and not pd.isna(year) else title


def join_titles(titles: Sequence[str]) -> str:
    """``["A (1995)", "B (1996)"]`` -> ``"A (1995) => B (1996)"``."""
    return SEPARATOR.join(titles)


def title_map(movies: Any, with_year: bool = True) -> dict[int, str]:
    """item id -> the title a model sees: ``Title (Year)``, or ``Title`` without years.

    ``movies`` is a movies frame, a :class:`~llmrec.data.movielens.MovieLens` or already a mapping."""
    frame = movies.movies if hasattr(movies, "movies") else movies
    if isinstance(frame, Mapping):
        return {int(k): str(v) for k, v in frame.items()}
    col = "display_title" if with_year else "title"
    return dict(zip(frame["item_id"].astype(int).tolist(), frame[col].astype(str).tolist(),
                    strict=True))


def titles_for(ids: Sequence[int], movies: Any, with_year: bool = True) -> list[str]:
    """The titles of ``ids`` as shown to a model (MovieLens' trailing article kept)."""
    names = movies if isinstance(movies, Mapping) else title_map(movies, with_year)
    try:
        return [names[int(i)] for i in ids]
    except KeyError as err:
        raise LlmrecError(f"item id {err.args[0]} is not in the movies table; "
                          "load records and movies from the same dataset") from None
