"""Model loading: folders, the tiny name, errors, dtype, padding, context length."""

from __future__ import annotations

import pytest

from llmrec.errors import LlmrecError
from llmrec.llm.models import (
    EMBEDDED_MODELS,
    context_length,
    describe,
    is_instruct,
    load_model,
    load_tokenizer,
    resolve_model,
)


def test_load_folder(tiny_model_dir):
    import torch

    model, tok = load_model(tiny_model_dir)
    assert not model.training
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert next(model.parameters()).dtype == torch.float32
    assert str(next(model.parameters()).device) == "cpu"
    assert context_length(model, tok) == 1024  # the tiny config's max_position_embeddings
    info = describe(model)
    assert info["params"] == sum(p.numel() for p in model.parameters()) and info["params"] > 10_000
    assert not is_instruct(str(tiny_model_dir), tok)


def test_dtype_choice(tiny_model_dir):
    import torch

    model, _ = load_model(tiny_model_dir, dtype="bfloat16", device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(LlmrecError, match="dtype"):
        load_model(tiny_model_dir, dtype="float8")
    with pytest.raises(LlmrecError, match="quantization"):
        load_model(tiny_model_dir, quantization="3bit")


def test_pad_token_falls_back_to_eos(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.pad_token = None
    tok.padding_side = "right"
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(str(tmp_path))
    assert again.pad_token == again.eos_token == "</s>"
    assert again.padding_side == "left"


def test_unknown_name_lists_known_ones():
    with pytest.raises(LlmrecError) as err:
        load_model("no such model")
    msg = str(err.value)
    assert "\n" not in msg and all(name in msg for name in [*EMBEDDED_MODELS, "tiny-llama"])


def test_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("someone/some-model") == "someone/some-model"
    with pytest.raises(LlmrecError, match="Hugging Face hub") as err:
        load_model("someone/some-model-that-is-not-cached")
    assert "\n" not in str(err.value)


def test_folder_without_config(tmp_path):
    with pytest.raises(LlmrecError, match="config.json"):
        load_model(tmp_path)


def test_tiny_name_builds_once(tmp_path, monkeypatch):
    import llmrec.llm.models

    monkeypatch.setattr(llmrec.llm.models, "cache_dir", lambda: tmp_path)
    model, tok = load_model("tiny-llama")
    folder = tmp_path / "models" / "tiny-llama"
    assert (folder / "config.json").is_file()
    stamp = (folder / "config.json").stat().st_mtime_ns
    load_model("tiny-llama")
    assert (folder / "config.json").stat().st_mtime_ns == stamp  # not rebuilt
    assert tok.decode(tok("Usual Suspects, The (1995)")["input_ids"]) == "Usual Suspects, The (1995)"


def test_embedded_facts():
    assert EMBEDDED_MODELS["smollm2-135m"]["kind"] == "instruct"
    assert EMBEDDED_MODELS["gemma3-270m"]["kind"] == "base"


def test_pick_threads(monkeypatch):
    import torch

    from llmrec.llm.models import pick_threads

    before = torch.get_num_threads()
    try:
        assert pick_threads(1) == 1
        monkeypatch.setenv("LLMREC_THREADS", "1")
        assert pick_threads() == 1
        monkeypatch.delenv("LLMREC_THREADS")
        assert 1 <= pick_threads() <= (__import__("os").cpu_count() or 1)
    finally:
        torch.set_num_threads(before)
