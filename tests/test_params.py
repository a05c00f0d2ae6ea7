"""Parameter files: every file in params/ validates; bad keys and types fail with one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from llmrec.errors import LlmrecError
from llmrec.report.params import SCHEMA, load_params, validate

PARAMS_DIR = Path(__file__).resolve().parent.parent / "params"
FILES = sorted(PARAMS_DIR.glob("*.yaml"))
EXPECTED = {"smollm2-135m", "gemma3-270m", "llama-7b", "llama-13b", "llama-30b", "llama-65b",
            "gpt-j-6b", "smoke"}


def test_the_expected_files_exist():
    assert EXPECTED <= {p.stem for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_params_file_validates(path):
    raw = yaml.safe_load(path.read_text())
    assert set(raw) <= set(SCHEMA)  # every key written in the file is a schema key
    params = load_params(path)
    assert params["name"] == path.stem  # the run folder is named after the file
    for key, value in raw.items():
        assert params[key] == value


def test_blog_models_name_their_hub_id_and_gpu():
    for stem in ("llama-7b", "llama-13b", "llama-30b", "llama-65b", "gpt-j-6b"):
        p = load_params(PARAMS_DIR / f"{stem}.yaml")
        assert p["profile"] == "full"
        assert p["model"] == p["hf_id"] and "/" in p["hf_id"]
        assert "GB" in p["hardware"] and "GPU" in p["hardware"]
    assert load_params(PARAMS_DIR / "llama-7b.yaml")["hf_id"] == "huggyllama/llama-7b"
    assert load_params(PARAMS_DIR / "gpt-j-6b.yaml")["hf_id"] == "EleutherAI/gpt-j-6b"


def test_smoke_is_small():
    p = load_params(PARAMS_DIR / "smoke.yaml")
    assert p["profile"] == "smoke" and p["model"] == "tiny-llama"
    assert p["splits"] == ["temporal"] and 0 < p["eval_limit"] <= 16


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("text, words", [
    ("name: x\nmodel: x\nlearning_rat: 0.1\n", ("'learning_rat'", "unknown key")),
    ("name: x\nbatch_size: sixteen\n", ("'batch_size'", "int", "sixteen")),
], ids=["unknown key", "wrong type"])
def test_a_bad_file_is_one_clear_error_naming_it(tmp_path, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    msg = _one_line(err)
    assert str(bad) in msg and all(w in msg for w in words), msg


def test_bool_is_not_an_int_and_interactive_is_a_bool():
    with pytest.raises(LlmrecError, match="'seed'"):
        validate({"seed": True})
    with pytest.raises(LlmrecError, match="'interactive'"):
        validate({"interactive": "yes"})
    assert validate({})["interactive"] is False


def test_bad_choice_names_key():
    with pytest.raises(LlmrecError, match="'profile'"):
        validate({"profile": "huge"})
    with pytest.raises(LlmrecError, match="'splits'"):
        validate({"splits": ["random"]})


def test_prompt_style_and_curve_are_checked(tmp_path):
    with pytest.raises(LlmrecError, match="'prompt_style' must be 'alpaca' or 'compact', got 'chat'") as err:
        validate({"prompt_style": "chat"})
    _one_line(err)
    with pytest.raises(LlmrecError, match="'prompt_style'.*str"):
        validate({"prompt_style": 1})
    for bad in ([128, 0], [-5], [1.5], [True], ["all"]):
        with pytest.raises(LlmrecError, match="'curve' lists") as err:
            validate({"curve": bad})
        assert "null for all" in _one_line(err)
    with pytest.raises(LlmrecError, match="'curve'"):
        validate({"curve": 128})  # a list, not a number
    assert validate({"curve": [128, None]})["curve"] == [128, None]
    assert validate({})["curve"] is None and validate({})["prompt_style"] == "alpaca"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncurve: [64, 0]\n")
    with pytest.raises(LlmrecError, match=f"{re.escape(str(bad))}: key 'curve' lists 0"):
        load_params(bad)
    long = load_params(PARAMS_DIR / "smollm2-135m-long.yaml")
    assert long["profile"] == "long" and long["prompt_style"] == "compact"


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(LlmrecError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(LlmrecError, match="not valid YAML"):
        load_params(bad)


def test_beam_limit_caps_beam_passes_only():
    import pandas as pd

    from llmrec.report.params import records_for

    test = pd.DataFrame({"record_id": [f"r{i}" for i in range(10)]})
    p = validate({"beam_limit": 3})
    assert len(records_for(test, "greedy", p)) == 10
    beam = list(records_for(test, "beam4", p)["record_id"])
    assert len(beam) == 3 and beam != ["r0", "r1", "r2"]  # a seeded sample, not the first N
    assert beam == list(records_for(test.iloc[::-1], "beam4", p)["record_id"])[::-1]  # same records
    assert set(records_for(test, "beam4", validate({"beam_limit": 2}))["record_id"]) < set(beam)
    p = validate({"beam_limit": 3, "eval_limit": 2})
    assert len(records_for(test, "beam4", p)) == 2 and len(records_for(test, "greedy", p)) == 2
    assert len(records_for(test, "beam4", validate({}))) == 10
    with pytest.raises(LlmrecError, match="beam_limit"):
        validate({"beam_limit": "200"})


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m", "tiny-llama", "huggyllama/llama-7b",
                                   "EleutherAI/gpt-j-6b"])
def test_model_names_that_validate(model):
    assert validate({"model": model})["model"] == model


def test_a_model_folder_validates_and_a_bare_folder_does_not(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert validate({"model": str(tmp_path)})["model"] == str(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LlmrecError) as err:
        validate({"model": str(empty)})
    assert "'model'" in _one_line(err) and "config.json" in str(err.value)


@pytest.mark.parametrize("model", ["llama-7b", "smollm2", "/no/such/folder", "./weights"])
def test_unknown_model_fails_in_validation_with_the_fix(tmp_path, model):
    """A typo in ``model`` stops the parameter file, before any chapter loads anything."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: bad\nmodel: {model}\n")
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    msg = _one_line(err)
    assert str(bad) in msg and "'model'" in msg and repr(model) in msg
    assert "smollm2-135m" in msg and "owner/name" in msg  # the fix: what a model can be


#: What every parameter file writes out under ``lora``: the LoRA shape and every option a
#: profile sets, so the file shows what it trains.
SHOWN_LORA = {"r", "alpha", "dropout", "target_modules", "learning_rate", "warmup_steps",
              "epochs", "batch_size", "grad_accum", "cutoff_len", "max_train_records",
              "max_valid_records"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_lora_block_shows_its_profile(path):
    from llmrec.llm.train import PROFILES, config_for

    p = load_params(path)
    # the common options, and whatever else the profile sets (long: early stopping)
    assert set(p["lora"]) == SHOWN_LORA | set(PROFILES[p["profile"]])
    assert config_for(p["profile"], **p["lora"]) == config_for(p["profile"])  # its profile's values


def test_quantization_named_is_the_one_set():
    """The hardware line and the header comments name only the precision the file loads
    (an alternative goes on the quantization line, as what it "would" do)."""
    # "a 4-bit GGUF": the embedded checkpoint's file, loaded dequantized, not a precision
    bits = re.compile(r"\b([48])[- ]?bits?\b(?! GGUF)", re.IGNORECASE)
    for path in FILES:
        p = load_params(path)
        said = [p["hardware"]] + [line for line in path.read_text().splitlines() if line.startswith("#")]
        named = {f"{m}bit" for text in said for m in bits.findall(text)}
        assert named <= {p["quantization"]}, (path.name, named)
        for line in path.read_text().splitlines():
            if line.startswith("quantization:") and "#" in line and bits.search(line.split("#", 1)[1]):
                assert "would" in line, line


def test_lora_options_are_checked_with_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nlora:\n  rank: 8\n")
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    assert "'lora'" in _one_line(err) and "'rank'" in str(err.value)
    bad.write_text("name: bad\nlora:\n  seed: 3\n")
    with pytest.raises(LlmrecError, match="top level"):
        load_params(bad)


def test_cli_profile_override_keeps_only_a_files_own_changes():
    from llmrec.llm.train import config_for
    from llmrec.report.commands import lora_overrides

    p = load_params(PARAMS_DIR / "smollm2-135m.yaml")
    assert lora_overrides(p) == {}  # it writes out the cpu profile, changes nothing
    p["lora"] = {**p["lora"], "r": 16}
    assert lora_overrides(p) == {"r": 16}
    assert config_for("smoke", **lora_overrides(p)).epochs == config_for("smoke").epochs
