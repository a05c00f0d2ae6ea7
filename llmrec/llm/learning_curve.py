"""Would more training help? LoRA adapters trained on nested seeded samples of growing size.

Each point of the curve is one training run (:func:`llmrec.llm.train.train_lora`, cached and
resumable by configuration + data fingerprint) on a seeded sample of ``n`` training records
(the same permutation for every ``n``, so a smaller sample lies inside a larger one), with the
profile's epochs and early stopping on the validation loss; chapter 4 then scores each
adapter on the same test records through the one evaluation path. The sizes per profile are
:data:`CURVES`; ``None`` is every training record.

Stages: ``python -m llmrec curve params/<file>.yaml`` trains every point (hours in the
``long`` profile; rerun to resume), then chapter 4 finds the adapters trained and only
evaluates. Written here because the loop over sizes, the nested samples and the table of
points are this report's protocol, not a library's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.data.formats import title_map, titles_for
from llmrec.data.samples import sample_records
from llmrec.errors import LlmrecError
from llmrec.llm.prompts import alpaca_parts, compact_parts
from llmrec.llm.train import (
    TrainConfig,
    TrainResult,
    config_for,
    curve_dir,
    restore_state,
    run_key,
    save_state,
    train_lora,
)

#: Training records per point and profile (None: all of the split's training part).
CURVES: dict[str, tuple[int | None, ...]] = {
    "smoke": (8, 16),
    "quick": (16, 32),
    "cpu": (16,),
    "long": (128, 512, 1024, None),
    "paper": (128, 512, 1024, None),
    "full": (128, 512, 2048, None),
}
#: Prompt formats a tuned model can be trained on (``llmrec.llm.prompts``).
FORMATS = {"alpaca": alpaca_parts, "compact": compact_parts}
#: The curve's prompt format (chapter 4, section 4.6), whatever a file's ``prompt_style``.
CURVE_STYLE = "compact"


def training_pairs(records: pd.DataFrame, movies, style: str = "compact") -> list[dict[str, str]]:
    """``{"prompt", "answer"}`` pairs of ``records`` in prompt ``style`` (``alpaca`` or ``compact``)."""
    if style not in FORMATS:
        raise LlmrecError(f"unknown training format {style!r}; use one of {', '.join(FORMATS)}")
    names = title_map(movies)
    return [dict(zip(("prompt", "answer"),
                     FORMATS[style](titles_for(r.input_ids, names), titles_for(r.target_ids, names)),
                     strict=True))
            for r in records.itertuples(index=False)]


def label(n: int | None, n_available: int) -> str:
    """A point's name: its number of training records, or ``all``."""
    return "all" if n is None or n >= n_available else str(n)


def setting_for(style: str, name: str) -> str:
    """The results-table setting of a tuned model before its decoding preset: ``lora`` for the
    blog's Alpaca adapter, ``lora-<style>-<name>`` for a curve point (``lora-compact-512``)."""
    return "lora" if style == "alpaca" and name == "main" else f"lora-{style}-{name}"


def point_config(profile: str, n: int | None, seed: int = 0, quantization: str | None = None,
                 **lora: Any) -> TrainConfig:
    """The training configuration of a point: the profile's (and the file's ``lora`` and
    ``quantization``) with ``max_train_records = n``. The sample is drawn here, so the
    configuration says None."""
    return config_for(profile, **{**lora, "seed": seed, "quantization": quantization,
                                  "max_train_records": None})


def train_curve(model: str, parts: Mapping[str, pd.DataFrame], movies, run_dir: str | Path,
                split: str, profile: str, sizes: Sequence[int | None] | None = None,
                style: str = "compact", seed: int = 0, lora: Mapping[str, Any] | None = None,
                dtype: str = "auto", device: str = "auto",
                progress: bool = True, *, quantization: str | None = None,
                keep: str | Path | None = None) -> dict[str, TrainResult]:
    """Train (or load) one adapter per size; ``{point name: TrainResult}`` in size order.

    ``parts``: the split's ``train`` and ``valid`` records. Each point trains on the seeded
    sample :func:`llmrec.data.samples.sample_records` of ``n`` training records (nested); the
    validation records are the profile's ``max_valid_records`` sample, the same for all.
    ``keep``: a run's kept state (``reports/adapters/<name>``, the ``curve`` command's
    ``--keep``): each point is restored from ``keep/curve/<split>/<style>-<point>`` before
    it trains (a finished one then loads in seconds on a fresh machine) and kept there after
    (:func:`llmrec.llm.train.save_state`), the run folder's layout.
    """
    sizes = CURVES[profile] if sizes is None else tuple(sizes)
    if not sizes:
        raise LlmrecError("a learning curve needs at least one size; see llmrec.llm.learning_curve.CURVES")
    train, valid = parts["train"], parts["valid"]
    out: dict[str, TrainResult] = {}
    for n in sorted(sizes, key=lambda x: float("inf") if x is None else x):
        name = label(n, len(train))
        if name in out:
            continue
        records = train if name == "all" else sample_records(train, n)
        config = point_config(profile, n, seed, quantization, **dict(lora or {}))
        pairs, valid_pairs = training_pairs(records, movies, style), training_pairs(valid, movies, style)
        folder = curve_dir(run_dir, split, style, name)
        saved = curve_dir(keep, split, style, name) if keep is not None else None
        if saved is not None:
            line = restore_state(saved, folder, run_key(model, pairs, valid_pairs, config))
            if line and progress:
                print(line)
        try:
            out[name] = train_lora(model, pairs, valid_pairs, folder, config, dtype=dtype,
                                   device=device, progress=progress)
        finally:  # paused, interrupted or finished: what it reached is kept
            if saved is not None and (line := save_state(folder, saved)) and progress:
                print(line)
    return out


def point_rows(results: Mapping[str, TrainResult]) -> dict[str, dict[str, Any]]:
    """The columns a curve's metrics row carries about its training."""
    rows = {}
    for name, r in results.items():
        valid = [h["valid_loss"] for h in r.history if h["valid_loss"] is not None]
        rows[name] = {"train_records": r.n_train, "train_epochs": max(h["epoch"] for h in r.history),
                      "best_epoch": r.best_epoch, "stopped_early": r.stopped_early,
                      "train_steps": r.steps, "train_seconds": r.train_seconds,
                      "train_wall_seconds": r.wall_seconds, "valid_loss_best": min(valid) if valid else None}
    return rows


def curve_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One line per point: training records, epochs, wall minutes, MAP@4 with its interval,
    validity and hallucination rate, and the test records it was scored on."""
    cols = {"train_records": "training records", "train_epochs": "epochs run",
            "best_epoch": "epoch kept", "valid_loss_best": "validation loss",
            "train_wall_seconds": "training minutes", "n_records": "test records",
            "map_at_4": "MAP@4", "map_at_4_low": "MAP@4 low", "map_at_4_high": "MAP@4 high",
            "validity": "validity", "hallucination_rate": "hallucination"}
    frame = pd.DataFrame(list(rows)).sort_values("train_records")
    frame = frame[[c for c in cols if c in frame]].rename(columns=cols)
    if "training minutes" in frame:
        frame["training minutes"] = frame["training minutes"] / 60
    return frame.reset_index(drop=True).round(4)
