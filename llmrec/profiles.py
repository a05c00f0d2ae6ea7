"""How much each profile runs: the sizes every chapter reads, by profile.

A profile (``smoke``, ``quick``, ``cpu``, ``long``, ``paper``, ``full``) names how much
training and evaluation a parameter file asks for. ``paper`` is the published report's
full-strength run on 2 CPU cores: every generation claim on a seeded 300 test records
(``eval_limit``), paired; LoRA on every training record to validation early stopping;
made in resumable stages (docs/running.md). These tables are plain data, below every layer that
reads them: the chapters (through :mod:`llmrec.report.params`), the trained ranker
(:mod:`llmrec.recommenders.ranker`) and the cost estimate (:mod:`llmrec.report.costs`).
The training profiles themselves (LoRA's steps, epochs, records) are
:data:`llmrec.llm.train.PROFILES`.
"""

from __future__ import annotations

from typing import Any

PROFILES = ("smoke", "quick", "cpu", "long", "paper", "full")
#: Chapter 6's decoding sweep per profile: validation records of the grid, its temperatures
#: and top-p values, and how many of those records the greedy/4-beam cost comparison times.
#: cpu: measured on SmolLM2 (2 busy cores), about 2.4 s a sampled record, 6.4 s a 4-beam one.
SWEEPS: dict[str, dict[str, Any]] = {
    "smoke": {"n_records": 3, "temperature": [0.5, 1.2], "top_p": [0.9, 1.0], "n_cost": 2},
    "quick": {"n_records": 6, "temperature": [0.3, 1.2], "top_p": [0.9], "n_cost": 4},
    "cpu": {"n_records": 6, "temperature": [0.3, 1.2], "top_p": [0.8, 1.0], "n_cost": 3},
    "long": {"n_records": 12, "temperature": [0.3, 0.7, 1.2], "top_p": [0.8, 1.0], "n_cost": 8},
    "paper": {"n_records": 100, "temperature": [0.3, 0.7, 1.0, 1.3], "top_p": [0.9, 1.0],
              "n_cost": 100},
    "full": {"n_records": 300, "temperature": [0.2, 0.5, 0.8, 1.1, 1.5], "top_p": [0.7, 0.9, 1.0],
             "n_cost": 100},
}
#: Chapter 7's test records per experiment and profile (None: all, before eval_limit/beam_limit).
SIZES: dict[str, dict[str, int | None]] = {
    "smoke": {"constrained": 8, "rerank": 8, "ablation": 8, "timing": 4},
    "quick": {"constrained": None, "rerank": 12, "ablation": 8, "timing": 4},
    "cpu": {"constrained": None, "rerank": 30, "ablation": 12, "timing": 4},
    "long": {"constrained": None, "rerank": 200, "ablation": 50, "timing": 16},
    "paper": {"constrained": 300, "rerank": 300, "ablation": 300, "timing": 16},
    "full": {"constrained": None, "rerank": None, "ablation": None, "timing": 64},
}
#: Chapter 8's sizes per profile: the trained ranker's examples (``train``; ``valid`` for its
#: validation loss) and epochs, the validation records the fusion weight is chosen on
#: (``fusion_valid``: the ranker scores them, one forward pass each) and those the constrained
#: generator's prior weight is chosen on (``prior_valid``: a generation per record and weight),
#: and the seeded sample of test records constrained generation is scored on
#: (``generation_test``, inside ``eval_limit``'s). None: all. ``with_year``: the ranker's
#: prompt lists titles with their year (LlamaRec's listing) or without (``-no-year``
#: settings): fewer tokens a pass (llmrec.recommenders.ranker.listing_lengths), so that the 2-core
#: report's ranker scores every test record in time.
RANKING: dict[str, dict[str, Any]] = {
    "smoke": {"train": 8, "valid": 4, "epochs": 1, "fusion_valid": 8, "prior_valid": 4,
              "generation_test": 4, "with_year": False},
    "quick": {"train": 8, "valid": 4, "epochs": 1, "fusion_valid": 12, "prior_valid": 4,
              "generation_test": 8, "with_year": False},
    "cpu": {"train": 32, "valid": 8, "epochs": 1, "fusion_valid": 200, "prior_valid": 4,
            "generation_test": 20, "with_year": False},
    "long": {"train": 1024, "valid": 64, "epochs": 1, "fusion_valid": None, "prior_valid": 48,
             "generation_test": 300, "with_year": True},
    "paper": {"train": 1024, "valid": 64, "epochs": 1, "fusion_valid": None, "prior_valid": 100,
              "generation_test": 300, "with_year": True},
    "full": {"train": None, "valid": None, "epochs": 1, "fusion_valid": None, "prior_valid": 200,
             "generation_test": None, "with_year": True},
}
#: Baseline options per profile: the previews train SASRec for a fixed 8 epochs (seconds)
#: instead of choosing its epochs on validation (up to 60, minutes).
BASELINE_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"sasrec": {"epochs": 8}},
    "quick": {"sasrec": {"epochs": 8}},
}
#: Profiles whose numbers are a preview (a code check, a notebook's own run), never the report's.
PREVIEW_PROFILES = ("smoke", "quick")
#: Chapter 9's choices per profile: the item texts encoded (``title``, ``genres``: each a pass
#: of the model over the catalog, about 2 to 5 minutes on one busy core for the embedded
#: models), and the well-known movies whose nearest neighbours the chapter shows. Every
#: system of the chapter scores every test record, and every choice is made on every
#: validation record.
ENCODERS: dict[str, dict[str, Any]] = {
    "smoke": {"variants": ["title"], "neighbours": 2},
    "quick": {"variants": ["title"], "neighbours": 3},
    "cpu": {"variants": ["title"], "neighbours": 5},
    "long": {"variants": ["title", "genres"], "neighbours": 5},
    "paper": {"variants": ["title", "genres"], "neighbours": 5},
    "full": {"variants": ["title", "genres"], "neighbours": 5},
}
#: The published report's parameter files, in the order ``make paper`` runs them (the
#: Makefile's ``PAPER_PARAMS``; a test keeps the two alike). The README's cost table is
#: the wall time of these files' runs.
PUBLISHED_PARAMS = (
    "params/smollm2-135m-paper.yaml", "params/gemma3-270m-paper.yaml",
    "params/qwen2.5-coder-0.5b.yaml", "params/qwen2.5-coder-1.5b.yaml",
    "params/gemma3-270m-lora.yaml",
    "params/qwen2.5-coder-0.5b-lora.yaml", "params/qwen2.5-coder-1.5b-lora.yaml",
)
