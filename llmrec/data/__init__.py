"""The data room: MovieLens as tidy frames, the blog's records and the seeded samples.

Embedded assets fetched and checked (``assets``), the MovieLens loaders (``movielens``), how
a movie is written (``formats``), records of 6 liked movies in and 4 out with their splits
(``records``), and seeded nested samples of test records (``samples``). Nothing here knows
of language models or recommenders.
"""

from llmrec.data.formats import title_map, titles_for
from llmrec.data.movielens import MovieLens, load_movielens
from llmrec.data.records import (
    LIKE_THRESHOLD,
    N_INPUT,
    SPLITS,
    WINDOW,
    build_records,
    describe_counts,
    item_popularity,
    likes,
    split_records,
    to_alpaca,
)
from llmrec.data.samples import sample_label, sample_records

__all__ = [
    "LIKE_THRESHOLD", "N_INPUT", "SPLITS", "WINDOW", "MovieLens", "build_records",
    "describe_counts", "item_popularity", "likes", "load_movielens", "sample_label",
    "sample_records", "split_records", "title_map", "titles_for", "to_alpaca",
]
