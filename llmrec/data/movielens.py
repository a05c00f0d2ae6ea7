"""MovieLens loading: the embedded ml-100k and the GroupLens layouts, into the same tidy frames.

``load_movielens(path=None)`` returns a :class:`MovieLens` with

- ``ratings``: ``user_id:int64, item_id:int64, rating:float64, timestamp:int64``
- ``movies``: ``item_id:int64, title:str, year:Int64 (nullable), genres:list[str],
  display_title:str`` where ``display_title`` is ``Title (Year)`` as MovieLens shows it,
  trailing article kept (``Usual Suspects, The (1995)``), or the bare title when the year
  is unknown.

``path=None`` loads the embedded MovieLens 100K (RecBole's copy, fetched by
:mod:`llmrec.data.assets`): its three files are checked against the sha256 recorded when
they were extracted at every load (3 ms), and extracted again from the wheel, with a notice,
when one differs. A folder is recognised by its files:

=================  ===========================================  =====================
layout             files                                        format
=================  ===========================================  =====================
``recbole``        ``*.inter``, ``*.item``                      typed tab-separated
``ml-100k``        ``u.data``, ``u.item`` (``u.genre``)          tab / ``|``, latin-1
``ml-1m``          ``ratings.dat``, ``movies.dat``              ``::``, latin-1
``ml-latest``      ``ratings.csv``, ``movies.csv``              CSV (ml-latest-small, ml-25m, ml-32m)
=================  ===========================================  =====================
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llmrec.data.assets import movielens_dir
from llmrec.data.formats import display_title, split_year, title_map
from llmrec.errors import LlmrecError

#: The 19 genre flags of ml-100k's ``u.item``, in file order (also in ``u.genre``).
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]

#: Files that identify each layout (all must be present).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "ml-100k": ("u.data", "u.item"),
    "ml-1m": ("ratings.dat", "movies.dat"),
    "ml-latest": ("ratings.csv", "movies.csv"),
    "recbole": ("*.inter", "*.item"),
}

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
MOVIE_COLUMNS = ["item_id", "title", "year", "genres", "display_title"]



@dataclass
class MovieLens:
    """A MovieLens dataset in tidy frames (see the module docstring for the columns)."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    name: str
    source: str

    def display_titles(self) -> dict[int, str]:
        """item_id -> ``Title (Year)``."""
        return title_map(self.movies)

    def __repr__(self) -> str:
        return (f"MovieLens({self.name!r}: {len(self.ratings):,} ratings, "
                f"{self.ratings['user_id'].nunique():,} users, {len(self.movies):,} movies)")


def _movies_frame(item_ids, titles, years, genres) -> pd.DataFrame:
    movies = pd.DataFrame({
        "item_id": pd.Series(item_ids, dtype="int64"),
        "title": pd.Series(titles, dtype="object"),
        "year": pd.Series(years, dtype="Int64"),
        "genres": pd.Series(genres, dtype="object"),
    })
    movies["display_title"] = [display_title(t, y) for t, y in
                               zip(movies["title"], movies["year"], strict=True)]
    return movies.sort_values("item_id", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- numeric checks
def _numeric(frame: pd.DataFrame, columns: list[str], path: Path, header_lines: int) -> pd.DataFrame:
    """Convert ``columns`` to numbers; the first bad value is an error naming file and line."""
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            line = i + 1 + header_lines
            raise LlmrecError(f"{path}, line {line}: {col} is {frame[col].iloc[i]!r}, not a number; "
                              f"fix or remove that line")
        frame[col] = values
    return frame


def _ratings_frame(raw: pd.DataFrame, path: Path, header_lines: int) -> pd.DataFrame:
    """The 4 rating columns of ``raw`` (read as text) as numbers; a bad value names its line."""
    if raw.shape[1] < 4:
        raise LlmrecError(f"{path}: expected 4 fields a line (user, item, rating, timestamp), "
                          f"found {raw.shape[1]}; is this a MovieLens ratings file?")
    raw = raw.iloc[:, :4].copy()
    raw.columns = RATING_COLUMNS
    raw = _numeric(raw, RATING_COLUMNS, path, header_lines)
    return _typed_ratings(raw, path, header_lines)


def _typed_ratings(raw: pd.DataFrame, path: Path, header_lines: int) -> pd.DataFrame:
    for col in ("user_id", "item_id", "timestamp"):
        bad = (raw[col] % 1 != 0).to_numpy()
        if bad.any():
            i = int(bad.argmax())
            raise LlmrecError(f"{path}, line {i + 1 + header_lines}: {col} is {raw[col].iloc[i]:g}, "
                              f"not a whole number; fix or remove that line")
    return pd.DataFrame({
        "user_id": raw["user_id"].astype("int64"),
        "item_id": raw["item_id"].astype("int64"),
        "rating": raw["rating"].astype("float64"),
        "timestamp": raw["timestamp"].astype("int64"),
    })


def _source(path: Path, sep: str, encoding: str):
    """pandas' C parser takes one-character separators: ``::`` files are read as tabs."""
    if sep == "::":
        return io.StringIO(path.read_text(encoding=encoding).replace("::", "\t")), "\t"
    return path, sep


def _read_table(path: Path, sep: str, header: int | None, encoding: str = "utf-8",
                **kw) -> pd.DataFrame:
    """Read a file as text (every field a string), or a one-line error."""
    try:
        src, sep = _source(path, sep, encoding)
        return pd.read_csv(src, sep=sep, header=header, dtype=str, encoding=encoding,
                           keep_default_na=False, **kw)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise LlmrecError(f"{path}: cannot be read as a MovieLens file ({msg})") from None


def _read_ratings(path: Path, sep: str, header: int | None, encoding: str = "utf-8",
                  select: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """A ratings file as the tidy frame. Fast path: parse numbers directly (ml-25m fits in
    memory this way); on any bad value, a second pass reads text to name the file and line.
    ``select`` picks the 4 columns (user, item, rating, timestamp) from the raw frame."""
    header_lines = 0 if header is None else 1
    pick = select or (lambda raw: raw)
    try:
        src, one_sep = _source(path, sep, encoding)
        raw = pick(pd.read_csv(src, sep=one_sep, header=header, dtype="float64",
                               encoding=encoding, quoting=3))
        if raw.shape[1] >= 4:
            raw = raw.iloc[:, :4].copy()
            raw.columns = RATING_COLUMNS
            if not raw.isna().to_numpy().any():
                return _typed_ratings(raw, path, header_lines)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        pass  # the text pass below says what is wrong
    return _ratings_frame(pick(_read_table(path, sep, header, encoding, quoting=3)), path,
                          header_lines)


# ---------------------------------------------------------------- layouts
def _load_recbole(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    inter = sorted(folder.glob("*.inter"))[0]
    item = sorted(folder.glob("*.item"))[0]
    def select(raw: pd.DataFrame) -> pd.DataFrame:
        cols = {c.split(":")[0]: c for c in raw.columns}
        if not all(c in cols for c in RATING_COLUMNS):
            raise LlmrecError(f"{inter}: header needs {', '.join(RATING_COLUMNS)} (RecBole typed "
                              f"columns), has {', '.join(raw.columns)}")
        return raw[[cols[c] for c in RATING_COLUMNS]]

    ratings = _read_ratings(inter, "\t", header=0, select=select)

    items = _read_table(item, "\t", header=0, quoting=3)
    icols = {c.split(":")[0]: c for c in items.columns}
    for need_col in ("item_id", "movie_title"):
        if need_col not in icols:
            raise LlmrecError(f"{item}: header needs item_id and movie_title, has {', '.join(items.columns)}")
    items = _numeric(items, [icols["item_id"]], item, header_lines=1)
    titles, years = [], []
    for raw_title, raw_year in zip(items[icols["movie_title"]],
                                   items.get(icols.get("release_year", ""), [""] * len(items)),
                                   strict=True):
        title, year = raw_title.strip(), None
        if str(raw_year).strip().isdigit():
            year = int(raw_year)
        else:  # RecBole's copy has one title with the year still inside (and "V" as year)
            title, year = split_year(title)
        if title == "unkonwn":  # RecBole's typo for GroupLens' "unknown" (item 267)
            title = "unknown"
        titles.append(title)
        years.append(year)
    genres = [g.split() for g in items[icols["class"]]] if "class" in icols else [[]] * len(items)
    return ratings, _movies_frame(items[icols["item_id"]], titles, years, genres)


def _load_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = folder / "u.data"
    ratings = _read_ratings(path, "\t", header=None)
    genre_names = ML100K_GENRES
    if (folder / "u.genre").is_file():
        gen = _read_table(folder / "u.genre", "|", header=None, encoding="latin-1", quoting=3)
        gen = gen[gen[0].str.len() > 0]
        genre_names = gen.sort_values(1, key=lambda s: s.astype(int))[0].tolist()
    path = folder / "u.item"
    items = _read_table(path, "|", header=None, encoding="latin-1", quoting=3)
    if items.shape[1] != 5 + len(genre_names):
        raise LlmrecError(f"{path}: expected {5 + len(genre_names)} '|'-separated fields "
                          f"(id, title, dates, URL, {len(genre_names)} genre flags), found {items.shape[1]}")
    items = _numeric(items, [0], path, 0)
    flags = items.iloc[:, 5:].to_numpy() == "1"
    genres = [[g for g, f in zip(genre_names, row, strict=True) if f] for row in flags]
    parts = [split_year(t) for t in items[1]]
    return ratings, _movies_frame(items[0], [p[0] for p in parts], [p[1] for p in parts], genres)


def _load_ml1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = folder / "ratings.dat"
    ratings = _read_ratings(path, "::", header=None, encoding="latin-1")
    path = folder / "movies.dat"
    items = _read_table(path, "::", header=None, encoding="latin-1", quoting=3)
    if items.shape[1] != 3:
        raise LlmrecError(f"{path}: expected 3 '::'-separated fields (id, title, genres), found {items.shape[1]}")
    items = _numeric(items, [0], path, 0)
    parts = [split_year(t) for t in items[1]]
    genres = [[g for g in s.split("|") if g and g != "(no genres listed)"] for s in items[2]]
    return ratings, _movies_frame(items[0], [p[0] for p in parts], [p[1] for p in parts], genres)


def _load_csv(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = folder / "ratings.csv"
    need = ["userId", "movieId", "rating", "timestamp"]

    def select(raw: pd.DataFrame) -> pd.DataFrame:
        if list(raw.columns[:4]) != need:
            raise LlmrecError(f"{path}: header must start with {','.join(need)}, has "
                              f"{','.join(map(str, raw.columns))}")
        return raw

    ratings = _read_ratings(path, ",", header=0, select=select)
    path = folder / "movies.csv"
    items = _read_table(path, ",", header=0)
    if list(items.columns[:3]) != ["movieId", "title", "genres"]:
        raise LlmrecError(f"{path}: header must be movieId,title,genres, has {','.join(items.columns)}")
    items = _numeric(items, ["movieId"], path, 1)
    parts = [split_year(t) for t in items["title"]]
    genres = [[g for g in s.split("|") if g and g != "(no genres listed)"] for s in items["genres"]]
    return ratings, _movies_frame(items["movieId"], [p[0] for p in parts], [p[1] for p in parts], genres)


_LOADERS = {"ml-100k": _load_ml100k, "ml-1m": _load_ml1m, "ml-latest": _load_csv,
            "recbole": _load_recbole}


def layout_of(folder: str | Path) -> str | None:
    """The layout ``folder`` holds (a key of :data:`LAYOUTS`: every file of it is there), or
    None when it holds none of them or is not a folder. Reads names only, not the files."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return None
    for layout, files in LAYOUTS.items():
        if all(any(folder.glob(f)) if "*" in f else (folder / f).is_file() for f in files):
            return layout
    return None


def expected_layouts() -> str:
    """The layouts and their files, for a message: ``ml-100k: u.data + u.item; ...``."""
    return "; ".join(f"{k}: {' + '.join(v)}" for k, v in LAYOUTS.items())


def detect_layout(folder: Path) -> str:
    """The layout of a MovieLens folder (a key of :data:`LAYOUTS`), or an error listing them."""
    layout = layout_of(folder)
    if layout is not None:
        return layout
    expected = expected_layouts()
    found = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
    raise LlmrecError(f"{folder}: not a MovieLens folder I know (found {found}); expected one of "
                      f"{expected}")


def load_movielens(path: str | Path | None = None) -> MovieLens:
    """Load MovieLens from ``path`` (a folder of a known layout), or the embedded ml-100k."""
    if path is None:
        folder = movielens_dir()
        name, source = "ml-100k", "embedded: recbole==1.2.1 wheel (GroupLens MovieLens 100K)"
    else:
        folder = Path(path).expanduser()
        if not folder.exists():
            raise LlmrecError(f"dataset folder {folder} does not exist; give a MovieLens folder "
                              f"(e.g. the unzipped ml-100k) or leave dataset empty for the embedded one")
        if not folder.is_dir():
            raise LlmrecError(f"{folder} is a file; give the folder that holds the MovieLens files")
        name, source = folder.name, str(folder)
    layout = detect_layout(folder)
    ratings, movies = _LOADERS[layout](folder)
    if ratings.empty:
        raise LlmrecError(f"{folder}: the ratings file has no ratings")
    dup = movies["item_id"].duplicated()
    if dup.any():
        raise LlmrecError(f"{folder}: movie id {int(movies['item_id'][dup].iloc[0])} is listed twice "
                          f"in the movies file; remove the duplicate")
    unknown = ~ratings["item_id"].isin(movies["item_id"])
    if unknown.any():
        raise LlmrecError(f"{folder}: {int(unknown.sum())} ratings name movies missing from the movies "
                          f"file (e.g. item {int(ratings['item_id'][unknown].iloc[0])}); use a matching pair")
    return MovieLens(ratings=ratings.reset_index(drop=True), movies=movies, name=name,
                     source=f"{source} ({layout} layout)")
