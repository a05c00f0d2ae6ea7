"""MovieLens loading: every layout from small files written here, bad input, and the real ml-100k."""

from __future__ import annotations

import pandas as pd
import pytest

from llmrec.data.formats import display_title, split_year
from llmrec.data.movielens import ML100K_GENRES, load_movielens
from llmrec.errors import LlmrecError

# one small dataset, written below in each layout: (id, title as MovieLens shows it, genres)
MOVIES = [
    (1, "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    (2, "Usual Suspects, The (1995)", ["Crime", "Thriller"]),
    (5, "Misérables, Les (1995)", ["Drama", "Musical"]),
    (7, "Independence Day (ID4) (1996)", ["Action", "Sci-Fi", "War"]),
]
RATINGS = [(1, 1, 5.0, 881250949), (1, 2, 3.0, 881250950), (2, 5, 4.0, 881250000),
           (2, 7, 1.0, 881250001), (3, 1, 4.0, 891717742)]
EXPECTED_TITLES = {1: ("Toy Story", 1995), 2: ("Usual Suspects, The", 1995),
                   5: ("Misérables, Les", 1995), 7: ("Independence Day (ID4)", 1996)}


def write_ml100k(folder, with_genre_file=True):
    folder.mkdir()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in RATINGS))
    lines = []
    for mid, title, genres in MOVIES:
        flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
        lines.append(f"{mid}|{title}|01-Jan-1995||http://us.imdb.com/x|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    if with_genre_file:
        (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n")
    return folder


def write_ml1m(folder):
    folder.mkdir()
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in RATINGS))
    (folder / "movies.dat").write_bytes(
        "".join(f"{m}::{t}::{'|'.join(g)}\n" for m, t, g in MOVIES).encode("latin-1"))
    return folder


def write_csv(folder):
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in RATINGS))
    rows = [f'{m},"{t}",{"|".join(g)}\n' if "," in t else f"{m},{t},{'|'.join(g)}\n"
            for m, t, g in MOVIES]
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(rows), encoding="utf-8")
    return folder


def write_recbole(folder):
    folder.mkdir()
    (folder / "mini.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in RATINGS))
    rows = [f"{m}\t{EXPECTED_TITLES[m][0]}\t{EXPECTED_TITLES[m][1]}\t{' '.join(g)}\n"
            for m, _, g in MOVIES]
    (folder / "mini.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + "".join(rows))
    return folder


WRITERS = {"ml-100k": write_ml100k, "ml-1m": write_ml1m, "ml-latest": write_csv, "recbole": write_recbole}


@pytest.mark.parametrize("layout", list(WRITERS))
def test_every_layout_gives_the_same_frames(tmp_path, layout):
    ml = load_movielens(WRITERS[layout](tmp_path / f"my-{layout}"))
    assert f"{layout} layout" in ml.source and ml.name == f"my-{layout}"
    r = ml.ratings
    assert list(r.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert [str(t) for t in r.dtypes] == ["int64", "int64", "float64", "int64"]
    assert list(r.itertuples(index=False, name=None)) == RATINGS
    m = ml.movies
    assert list(m.columns) == ["item_id", "title", "year", "genres", "display_title"]
    assert str(m["year"].dtype) == "Int64"
    assert m["item_id"].tolist() == [1, 2, 5, 7]
    for row in m.itertuples(index=False):
        assert (row.title, row.year) == EXPECTED_TITLES[row.item_id]
    assert m["display_title"].tolist() == [t for _, t, _ in MOVIES]  # "Title (Year)" as MovieLens
    assert m["genres"].tolist() == [g for _, _, g in MOVIES]
    assert ml.display_titles()[2] == "Usual Suspects, The (1995)"


def test_ml100k_without_genre_file(tmp_path):
    ml = load_movielens(write_ml100k(tmp_path / "ml-100k", with_genre_file=False))
    assert ml.movies["genres"].tolist() == [g for _, _, g in MOVIES]


def test_csv_odd_titles(tmp_path):
    folder = write_csv(tmp_path / "ml-latest-small")
    with open(folder / "movies.csv", "a", encoding="utf-8") as fh:
        fh.write("8,Cosmos,(no genres listed)\n")
        fh.write('9,"Fawlty Towers (1975-1979) ",Comedy\n')
    ml = load_movielens(folder)
    row8 = ml.movies.set_index("item_id").loc[8]
    assert row8.title == "Cosmos" and pd.isna(row8.year) and row8.genres == []
    assert row8.display_title == "Cosmos"
    row9 = ml.movies.set_index("item_id").loc[9]
    assert (row9.title, row9.year) == ("Fawlty Towers", 1975)


@pytest.mark.parametrize("raw, expected", [
    ("Usual Suspects, The (1995)", ("Usual Suspects, The", 1995)),
    ("Seven (Se7en) (1995)", ("Seven (Se7en)", 1995)),
    ("Land Before Time III: The Time of the Great Giving (1995) (V)",
     ("Land Before Time III: The Time of the Great Giving", 1995)),
    ("unknown", ("unknown", None)),
    ("(1995)", ("(1995)", None)),
    ("Babylon 5", ("Babylon 5", None)),
])
def test_split_year(raw, expected):
    assert split_year(raw) == expected


def test_display_title():
    assert display_title("Fargo", 1996) == "Fargo (1996)"
    assert display_title("unknown", None) == "unknown"
    assert display_title("unknown", pd.NA) == "unknown"


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(LlmrecError, match="does not exist"):
        load_movielens(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(LlmrecError, match="is a file"):
        load_movielens(tmp_path / "file.txt")


def test_unknown_layout_lists_expected_files(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "ratings.txt").write_text("1 2 3 4\n")
    with pytest.raises(LlmrecError) as err:
        load_movielens(folder)
    msg = str(err.value)
    assert "ratings.txt" in msg and "u.data" in msg and "ratings.dat" in msg and "ratings.csv" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("layout, file, line", [
    ("ml-100k", "u.data", 3), ("ml-1m", "ratings.dat", 3), ("ml-latest", "ratings.csv", 4),
    ("recbole", "mini.inter", 4),
])
def test_non_numeric_rating_names_file_and_line(tmp_path, layout, file, line):
    folder = WRITERS[layout](tmp_path / layout)
    path = folder / file
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].replace("881250000", "soon")
    path.write_text("".join(lines))
    with pytest.raises(LlmrecError, match=rf"{file}, line {line}: timestamp is 'soon', not a number"):
        load_movielens(folder)


def test_ratings_of_unknown_movies(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    with open(folder / "ratings.dat", "a") as fh:
        fh.write("4::99::5::881250949\n")
    with pytest.raises(LlmrecError, match="1 ratings name movies missing .*item 99"):
        load_movielens(folder)


def test_malformed_movies_file(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995\n")
    with pytest.raises(LlmrecError, match="u.item: expected 24"):
        load_movielens(folder)


def test_embedded_ml100k(ml100k):
    assert ml100k.name == "ml-100k" and "recbole==1.2.1" in ml100k.source
    assert len(ml100k.ratings) == 100_000
    assert ml100k.ratings["user_id"].nunique() == 943
    assert len(ml100k.movies) == 1682 and ml100k.ratings["item_id"].nunique() == 1682
    assert set(ml100k.ratings["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    movies = ml100k.movies.set_index("item_id")
    assert movies.loc[12, "display_title"] == "Usual Suspects, The (1995)"
    assert movies.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert movies.loc[267, "title"] == "unknown" and pd.isna(movies.loc[267, "year"])
    assert movies.loc[1412, "year"] == 1995  # RecBole left this year inside the title
    assert int(movies["year"].isna().sum()) == 1
    # 18 titles appear twice under two ids (ASSETS.md)
    assert int(movies["display_title"].duplicated().sum()) == 18


def test_fractional_id_and_empty_field(tmp_path):
    folder = write_csv(tmp_path / "ml-latest")
    text = (folder / "ratings.csv").read_text().replace("2,5,4.0,", "2.5,5,4.0,")
    (folder / "ratings.csv").write_text(text)
    with pytest.raises(LlmrecError, match=r"ratings.csv, line 4: user_id is 2.5, not a whole number"):
        load_movielens(folder)
    (folder / "ratings.csv").write_text(text.replace("2.5,5,4.0,", "2,5,,"))
    with pytest.raises(LlmrecError, match=r"ratings.csv, line 4: rating is '', not a number"):
        load_movielens(folder)


def test_csv_wrong_header(tmp_path):
    folder = write_csv(tmp_path / "ml-latest")
    text = (folder / "ratings.csv").read_text().replace("userId,movieId", "user,movie")
    (folder / "ratings.csv").write_text(text)
    with pytest.raises(LlmrecError, match="header must start with userId,movieId,rating,timestamp"):
        load_movielens(folder)
