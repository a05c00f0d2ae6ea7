"""The language-model room: loading a model, prompting it, decoding, parsing, training.

``models`` loads a model and its tokenizer (embedded name, Hugging Face id or folder);
``prompts`` and ``prompt_variants`` write what a model sees; ``decoding``, ``heads`` and
``tokens`` generate and score text; ``parsing`` turns a completion into titles; ``embeddings`` pools hidden states into item
vectors; ``train``
fine-tunes a LoRA adapter and ``learning_curve`` trains one per sample size. It reads data
from :mod:`llmrec.data` and knows nothing of recommenders or of the report.
"""

from llmrec.llm.decoding import PRESETS, generate
from llmrec.llm.embeddings import VARIANTS, candidate_layers, item_embeddings, item_texts, nearest
from llmrec.llm.learning_curve import (
    CURVES,
    curve_table,
    label,
    point_rows,
    setting_for,
    train_curve,
    training_pairs,
)
from llmrec.llm.models import load_model, load_tokenizer, process_memory, resolve_model
from llmrec.llm.parsing import parse_completion
from llmrec.llm.prompt_variants import with_n_inputs
from llmrec.llm.prompts import blog_examples, build_prompts, shots_from_records
from llmrec.llm.train import (
    PROFILES,
    TrainingPaused,
    config_for,
    default_out_dir,
    history_frame,
    kept_dir,
    load_tuned,
    restore_state,
    save_state,
    seed_dir,
    train_lora,
)

__all__ = [
    "CURVES", "PRESETS", "PROFILES", "TrainingPaused", "VARIANTS", "candidate_layers", "blog_examples", "build_prompts", "config_for",
    "curve_table", "default_out_dir", "generate", "history_frame", "item_embeddings", "item_texts", "kept_dir", "label", "load_model",
    "load_tokenizer", "load_tuned", "nearest", "parse_completion", "point_rows", "process_memory",
    "resolve_model", "restore_state", "save_state", "seed_dir",
    "setting_for", "shots_from_records", "train_curve", "train_lora", "training_pairs",
    "with_n_inputs",
]
