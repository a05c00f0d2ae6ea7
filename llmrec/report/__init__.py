"""The report room: parameter files, chapters, figures, the runner and the results table.

``params`` validates a parameter file; ``chapter`` is what a notebook does besides
narrating; ``plots`` draws every figure; ``sliders`` the decoding widgets (imported by name: they load torch); ``runner`` runs
the chapters with papermill per parameter file; ``results`` aggregates the runs into
``reports/`` and verifies them; ``summary`` and ``notebook_export`` write what a reader sees
first; ``published`` holds the blog's own numbers; ``costs`` estimates a GPU run;
``bench_report`` the speed benchmark's files; ``commands`` trains outside a report run.
"""

from llmrec.report.chapter import Chapter
from llmrec.report.params import (
    BASELINE_OPTIONS,
    ENCODERS,
    PREVIEW_PROFILES,
    RANKING,
    SIZES,
    SWEEPS,
    load_params,
    records_for,
)

__all__ = [
    "BASELINE_OPTIONS", "ENCODERS", "PREVIEW_PROFILES", "RANKING", "SIZES", "SWEEPS", "Chapter",
    "load_params", "records_for",
]
