"""The recommenders room: every system of the report, one module per family.

``base`` is the one interface (``predict(records)``) and the registry; ``fitted`` the base
of systems fitted on training records; ``baselines`` (random, popularity, item-kNN, content,
ALS) and ``strong_baselines`` (RecBole's EASE and SASRec); ``generation`` (free generation),
``constrained`` (catalog-constrained decoding, with a collaborative prior), ``rerank``
(an LLM reorders a retriever's list), ``ranker`` (LlamaRec's trained letter ranker) and
``fusion`` (retriever scores plus the ranker's), ``encoder`` (similarity search on item
vectors, and its fusion with a collaborative baseline). Importing the room registers every family,
so :func:`build` knows each name.
"""

from llmrec.recommenders import strong_baselines  # noqa: F401 (registers ease and sasrec)
from llmrec.recommenders.base import REGISTRY, Recommender, build, ranked_predictions, register
from llmrec.recommenders.baselines import BASELINES, fit_baseline
from llmrec.recommenders.constrained import (
    PRIOR_WEIGHTS,
    CatalogTrie,
    ConstrainedGeneration,
    choose_prior_weight,
    constrained_generate,
)
from llmrec.recommenders.encoder import (
    FUSION_WEIGHTS,
    ScoreFusion,
    Similarity,
    choose_vectors,
    tuned_fusion,
)
from llmrec.recommenders.fitted import Baseline
from llmrec.recommenders.fusion import Fusion, llm_changes
from llmrec.recommenders.generation import FreeGeneration, example_outputs
from llmrec.recommenders.ranker import (
    LetterOrder,
    TrainedRanker,
    chance_loss,
    first_picks,
    listing_lengths,
    ranker_config,
    recall_at,
    scores_file,
    setting_suffix,
    stats_frame,
    train_ranker,
)
from llmrec.recommenders.rerank import Rerank
from llmrec.recommenders.strong_baselines import SasrecBaseline, validation_map

__all__ = [
    "BASELINES", "FUSION_WEIGHTS", "PRIOR_WEIGHTS", "REGISTRY", "Baseline", "CatalogTrie", "ConstrainedGeneration",
    "FreeGeneration", "Fusion", "LetterOrder", "Recommender", "Rerank", "SasrecBaseline", "ScoreFusion", "Similarity", "TrainedRanker", "build",
    "chance_loss", "choose_prior_weight", "choose_vectors", "constrained_generate", "example_outputs",
    "first_picks", "fit_baseline", "listing_lengths", "llm_changes", "ranked_predictions",
    "ranker_config", "recall_at", "register", "scores_file", "setting_suffix", "stats_frame",
    "train_ranker", "tuned_fusion", "validation_map",
]
