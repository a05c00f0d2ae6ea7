"""A tiny, randomly initialised LLaMA-architecture model with a real BPE tokenizer.

Built from a config (no download), for tests and the ``smoke`` profile: every code path
(batched generation, LoRA, resume, constrained decoding) runs on it in seconds. Its
outputs are meaningless by design. The tokenizer is a byte-level BPE trained on the
movie titles it is given (or a built-in sample), so titles and ``=>`` tokenize the way
they would on a real model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

TINY_NAME = "tiny-llama"

_SAMPLE = [
    "Toy Story (1995)", "GoldenEye (1995)", "Usual Suspects, The (1995)", "Star Wars (1977)",
    "Fargo (1996)", "Return of the Jedi (1983)", "Contact (1997)", "English Patient, The (1996)",
    "Scream (1996)", "Liar Liar (1997)", "Air Force One (1997)", "Independence Day (ID4) (1996)",
    "Chasing Amy (1997)", "Titanic (1997)", "Godfather, The (1972)", "Pulp Fiction (1994)",
    "Below is an instruction that describes a task. Write a response.",
    "### Instruction:", "### Input:", "### Response:", "=>", "1. 2. 3. 4.",
    "def recommend(movies): return [m for m in movies]",
]


def build_tiny_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 512):
    """A byte-level BPE tokenizer (PreTrainedTokenizerFast) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(texts or []) + _SAMPLE
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        padding_side="left",
    )
    return fast


def build_tiny_model(tokenizer, seed: int = 0, hidden_size: int = 64, layers: int = 2):
    """A random LlamaForCausalLM sized for ``tokenizer`` (about 100k parameters)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def save_tiny(folder: str | Path, texts: Iterable[str] | None = None, seed: int = 0) -> Path:
    """Build the tiny tokenizer + model and save both to ``folder`` (loadable by from_pretrained)."""
    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(texts)
    model = build_tiny_model(tokenizer, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
