"""Choosing one mixing weight on validation: a grid of weights, the best score, ties to the smaller.

Shared by every method with a single weight to set on validation records (the collaborative
prior of constrained decoding, :func:`llmrec.recommenders.constrained.choose_prior_weight`, and score
fusion): the caller supplies ``score_at(weight)``, the validation metric at that weight.
A plain loop over a handful of weights, each a full evaluation: a search library would add
nothing at this size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pandas as pd
from tqdm.auto import tqdm

from llmrec.errors import LlmrecError


def choose_weight(score_at: Callable[[float], float], grid: Iterable[float],
                  progress: bool = False) -> tuple[float, pd.DataFrame]:
    """``(best weight, frame)``: ``score_at`` evaluated at each weight of ``grid`` (higher is
    better); the best, ties going to the smaller weight. ``frame`` has ``weight`` and
    ``score``, one row per weight in increasing order, and ``chosen`` (True on the best).
    Put the weight that means "off" (0) in the grid and the choice is never worse than it."""
    weights = sorted({float(w) for w in grid})
    if not weights:
        raise LlmrecError("choose_weight got an empty grid; give the weights to try, e.g. (0, 0.5, 1)")
    bad = [w for w in weights if not math.isfinite(w)]
    if bad:
        raise LlmrecError(f"weight {bad[0]} in the grid is not a finite number; use finite weights")
    scores = []
    for w in tqdm(weights, desc="weights", disable=not progress):
        s = float(score_at(w))
        if math.isnan(s):
            raise LlmrecError(f"the score at weight {w} is NaN; check the validation records")
        scores.append(s)
    best = weights[max(range(len(weights)), key=lambda i: (scores[i], -weights[i]))]
    frame = pd.DataFrame({"weight": weights, "score": scores})
    frame["chosen"] = frame["weight"] == best
    return best, frame
