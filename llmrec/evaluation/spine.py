"""The one evaluation spine: any recommender, any records -> predictions, metrics, run files.

:func:`evaluate` asks a system (a :class:`System`: every
:class:`~llmrec.recommenders.base.Recommender` is one) for its predictions,
puts every generated completion through failure analysis (:mod:`llmrec.evaluation.failures`), and
scores the rows with :func:`llmrec.evaluation.metrics.score` (PROTOCOL.md section 4: MAP@4 and the
rest at K = 4 and 10, 95% bootstrap intervals with the run's seed, validity against K
titles, novelty from the training popularity, coverage of the catalog).
:func:`evaluate_and_save` also writes the system's ``predictions.jsonl.gz`` and
``metrics.json`` (PROTOCOL.md section 7) through :func:`llmrec.artifacts.save_system_run`;
that ``metrics.json`` is one row of ``reports/results.csv``, and
:func:`llmrec.report.results.recompute` re-scores it from the predictions file alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from llmrec.artifacts import save_system_run
from llmrec.data.records import item_popularity
from llmrec.errors import LlmrecError
from llmrec.evaluation.failures import analyse
from llmrec.evaluation.matching import Catalog
from llmrec.evaluation.metrics import score


class System(Protocol):
    """What the spine needs of a recommender: the room above implements it
    (:class:`llmrec.recommenders.base.Recommender`), this one does not import it."""

    kind: str
    system: str
    setting: str
    example_titles: Any

    def predict(self, records: pd.DataFrame) -> list[dict[str, Any]]: ...

    def settings(self) -> dict[str, Any]: ...


@dataclass
class Task:
    """What scoring needs besides the predictions: the movies (titles, years), the catalog
    predictions must belong to, the training records' popularity (novelty), K, the seed."""

    movies: pd.DataFrame
    catalog: Catalog
    popularity: Mapping[int, float]
    k: int = 4
    seed: int = 0
    k_values: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.k_values = (self.k, 10) if self.k != 10 else (self.k,)

    @classmethod
    def of(cls, movies: pd.DataFrame, train_records: pd.DataFrame, k: int = 4, seed: int = 0,
           catalog: Catalog | None = None) -> Task:
        """The task of one split: popularity from its training records."""
        return cls(movies, catalog or Catalog.from_movies(movies), item_popularity(train_records),
                   k, seed)


def record_fields(records: pd.DataFrame) -> list[dict[str, Any]]:
    """The fields of a prediction row that come from the record itself."""
    return [{"record_id": r.record_id, "user_id": int(r.user_id),
             "input_ids": [int(i) for i in r.input_ids],
             "target_ids": [int(i) for i in r.target_ids]} for r in records.itertuples()]


def evaluate(system: System, records: pd.DataFrame, task: Task
             ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Predict, analyse and score ``system`` on ``records``: ``(rows, metrics)``.

    ``rows`` are the predictions file's lines (the record's fields, then the system's).
    ``metrics`` is :func:`llmrec.evaluation.metrics.score`'s dict, the failure-mode rates of a
    generating system, the system's :meth:`System.settings`, and
    ``seconds`` (all of it) and ``seconds_per_record``."""
    if len(records) == 0:
        raise LlmrecError(f"no records to evaluate {system.system or system.kind!r} on; "
                          "check the split and the record limits")
    start = time.perf_counter()
    predicted = system.predict(records)
    if len(predicted) != len(records):
        raise LlmrecError(f"{system.kind or type(system).__name__} returned {len(predicted)} "
                          f"predictions for {len(records)} records")
    rows = [{**base, **pred} for base, pred in zip(record_fields(records), predicted, strict=True)]
    failures = analyse(rows, task.movies, system.example_titles)
    scores = score(rows, k_values=task.k_values, catalog_ids=task.catalog.item_ids,
                   item_popularity=task.popularity, n_titles_expected=task.k, seed=task.seed)
    seconds = time.perf_counter() - start
    n = len(rows)
    metrics = {**scores, **failures, **system.settings(), "seed": task.seed,
               "seconds": round(seconds, 3), "seconds_per_record": round(seconds / n, 4)}
    return rows, metrics


def evaluate_and_save(system: System, records: pd.DataFrame, task: Task,
                      run_dir: str | Path, split: str, extra: Mapping[str, Any] | None = None
                      ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`evaluate`, then write the predictions and the metrics row under ``run_dir``
    (``<system>__<setting>/<split>/``). Returns ``(rows, the saved metrics row)``."""
    rows, metrics = evaluate(system, records, task)
    saved = save_system_run(run_dir, system.system, system.setting, split, rows, metrics, extra)
    return rows, saved
