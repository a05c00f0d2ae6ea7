"""Record transforms for the prompt ablations: the same records with less in them.

The blog's untested ideas are compared on the same records by changing what a prompt
shows: fewer input movies (:func:`with_n_inputs`), here; titles without years and the
user's dislikes are options of :func:`llmrec.llm.prompts.build_prompts` (``with_year``,
``dislikes``).
"""

from __future__ import annotations

import pandas as pd

from llmrec.errors import LlmrecError


def with_n_inputs(records: pd.DataFrame, n: int) -> pd.DataFrame:
    """The records with only their ``n`` most recent input likes (targets unchanged)."""
    if n < 1:
        raise LlmrecError(f"the number of input movies must be at least 1, got {n}")
    out = records.copy()
    out["input_ids"] = [list(ids)[-n:] for ids in records["input_ids"]]
    return out
