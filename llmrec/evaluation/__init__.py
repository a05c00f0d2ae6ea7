"""The evaluation room: how any system's lists are matched, scored and compared.

``matching`` maps a generated title to catalog items; ``failures`` names what went wrong in
generated text; ``metrics`` scores ranked lists (MAP@K and the rest, bootstrap intervals);
``comparison`` pairs systems on the records they share; ``slices`` measures them on cold
and long-tail items, cold users, and their lists' quality; ``weights`` chooses a mixing weight
on validation records; ``spine`` is the one path every system takes: predictions ->
failures -> metrics -> the run's files. It needs only a system's ``predict`` (the
:class:`~llmrec.evaluation.spine.System` protocol), not the recommenders themselves.
"""

from llmrec.evaluation.comparison import paired_table, seed_sentence, seed_spread
from llmrec.evaluation.failures import failure_examples, failure_frame, year_counts
from llmrec.evaluation.matching import Catalog, embed_texts, get_matcher
from llmrec.evaluation.metrics import bootstrap_ci, paired_bootstrap, score
from llmrec.evaluation.slices import item_slices, list_quality, training_windows, user_slices
from llmrec.evaluation.spine import Task, evaluate, evaluate_and_save

__all__ = [
    "Catalog", "Task", "bootstrap_ci", "embed_texts", "evaluate", "evaluate_and_save", "failure_examples",
    "failure_frame", "get_matcher", "item_slices", "list_quality", "paired_bootstrap", "paired_table", "score", "seed_sentence", "seed_spread",
    "training_windows", "user_slices", "year_counts",
]
