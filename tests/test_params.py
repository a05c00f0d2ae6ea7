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
            "gpt-j-6b", "smoke", "smollm2-135m-paper", "gemma3-270m-paper", "qwen2.5-coder-0.5b",
            "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b-lora", "qwen2.5-coder-1.5b-lora",
            "gemma3-270m-lora"}


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


def test_the_paper_files_ask_every_model_on_the_same_records():
    """The size axis is paired: every paper-profile file scores the same seeded sample
    (eval_limit and seed), on the same split, with the same decoding budget."""
    papers = [load_params(PARAMS_DIR / f"{stem}.yaml") for stem in (
        "smollm2-135m-paper", "gemma3-270m-paper", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")]
    assert {p["profile"] for p in papers} == {"paper"}
    for key in ("eval_limit", "seed", "splits", "max_new_tokens", "n_shots", "matcher"):
        assert len({str(p[key]) for p in papers}) == 1, key
    assert papers[0]["eval_limit"] >= 300
    for p in papers[2:]:
        assert p["chapters"] == ["10"] and p["dtype"] == "float32"


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
    with pytest.raises(LlmrecError, match="'prompt_style' is 'chat'; use one of alpaca, compact") as err:
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


def test_lora_seeds_are_other_distinct_seeds():
    assert validate({})["lora_seeds"] == [] and validate({"lora_seeds": [1, 2]})["lora_seeds"] == [1, 2]
    for bad in ([0], [1, 1], [-1], [1.5], [True]):  # 0: the run's own seed
        with pytest.raises(LlmrecError, match="'lora_seeds' lists") as err:
            validate({"lora_seeds": bad})
        assert "other than the run's seed (0)" in _one_line(err)
    assert validate({"seed": 7, "lora_seeds": [0]})["lora_seeds"] == [0]


def test_missing_file(tmp_path):
    with pytest.raises(LlmrecError, match="not found"):
        load_params(tmp_path / "nope.yaml")


#: (file text, the line the YAML error is on, the parser's words for it)
BAD_YAML = [
    # the parser notices the missing ':' on the next line, and names where the key began
    ("name: x\nmodel: smollm2-135m\nbatch_size 16\nseed: 0\n", 4,
     "could not find expected ':' (while scanning a simple key on line 3)"),
    ("name: [unclosed\nseed: 0\n", 2, "expected ',' or ']', but got ':' (while parsing a flow "
                                        "sequence on line 1)"),
    ("name: x\n  seed: 0\n", 2, "mapping values are not allowed here"),
    ("name: x\nsplits: [temporal\n\tblog]\n", 3, "found character '\\t'"),
]


@pytest.mark.parametrize("text, line, words", BAD_YAML, ids=["missing colon", "unclosed list",
                                                              "bad indent", "tab"])
def test_yaml_syntax_error_gives_the_file_and_line(tmp_path, text, line, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    msg = _one_line(err)
    assert msg.startswith(f"{bad} line {line}: ") and words in msg, msg
    assert msg.endswith("; fix the YAML there"), msg


@pytest.mark.parametrize("text, words", [
    ("", ("is empty", "key: value")),
    ("# only a comment\n", ("is empty", "key: value")),
    ("- name: x\n- seed: 0\n", ("YAML list", "not a mapping", "key: value")),
    ("model smollm2-135m\n", ("YAML str", "'model smollm2-135m'", "not a mapping")),
], ids=["empty", "only comments", "a list", "a bare string"])
def test_a_file_that_is_not_a_mapping_is_one_line(tmp_path, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    msg = _one_line(err)
    assert msg.startswith(f"{bad}: ") and all(w in msg for w in words), msg


@pytest.mark.parametrize("key, near", [("batchsize", "batch_size"), ("eval_limt", "eval_limit"),
                                       ("lora_preset", "lora_presets"), ("matchr", "matcher")])
def test_a_key_typo_suggests_the_nearest_key(tmp_path, key, near):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: bad\n{key}: 1\n")
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    msg = _one_line(err)
    assert f"unknown key {key!r} (did you mean {near!r}?)" in msg, msg


@pytest.mark.parametrize("key, option", [("epochs", "epochs"), ("learning_rat", "learning_rate")])
def test_a_lora_option_at_the_top_level_says_where_it_goes(key, option):
    with pytest.raises(LlmrecError) as err:
        validate({key: 1}, source="x.yaml")
    msg = _one_line(err)
    assert f"unknown key {key!r} (the lora option {option!r}? it goes under lora:)" in msg, msg


#: (key, value, the bad part the message shows, what the message says is accepted)
BAD_VALUES = [
    ("matcher", "fuzzy", "'fuzzy'", ["common_chars, levenshtein, normalized, embedding"]),
    ("batch_size", 0, "0", [">= 1"]),
    ("batch_size", -4, "-4", [">= 1"]),
    ("eval_limit", -1, "-1", [">= 1", "null"]),
    ("eval_limit", 0, "0", [">= 1", "null"]),
    ("beam_limit", 0, "0", [">= 1", "null"]),
    ("n_shots", -1, "-1", [">= 1"]),
    ("max_new_tokens", 0, "0", [">= 1"]),
    ("seed", -1, "-1", [">= 0"]),
    ("presets", ["greedy", "beam5"], "'beam5'", ["greedy, beam4, sample", "did you mean 'beam4'"]),
    ("presets", [], "[]", ["greedy, beam4, sample"]),
    ("lora_presets", ["Greedy"], "'Greedy'", ["greedy, beam4, sample"]),
    ("splits", ["temporal", "random"], "'random'", ["temporal, blog"]),
    ("splits", [], "[]", ["temporal, blog"]),
    ("prompt_style", "chat", "'chat'", ["alpaca, compact"]),
    ("profile", "fast", "'fast'", ["smoke", "quick", "cpu", "full"]),
    ("dtype", "fp16", "'fp16'", ["float32", "bfloat16", "float16"]),
    ("quantization", "3bit", "'3bit'", ["null", "8bit", "4bit"]),
    ("device", "gpu", "'gpu'", ["auto", "cpu", "cuda"]),
    ("curve", [128, 0], "0", [">= 1", "null for all"]),
    ("curve", [-5], "-5", [">= 1", "null for all"]),
    ("chapters", ["11"], "'11'", ["01_data", "10_model_size"]),
    ("chapters", ["02", "lora"], "'lora'", ["01_data", "08_llm_with_cf"]),
    ("chapters", [11], "11", ["01_data", "10_model_size"]),
    ("chapters", [], "[]", ["null for all"]),
]


@pytest.mark.parametrize("key, value, shown, words", BAD_VALUES,
                         ids=[f"{k}={v!r}" for k, v, _, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_accepted(tmp_path, key, value, shown, words):
    """Each of these passed validation once and failed minutes into a chapter (or ran nothing)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", key: value}))
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    msg = _one_line(err)
    assert msg.startswith(f"{bad}: key {key!r} ") and f" {shown}" in msg, msg
    assert all(w in msg for w in words), msg


@pytest.mark.parametrize("option, value, words", [
    ("r", -8, "at least 1"),
    ("epochs", 0, "at least 1"),
    ("learning_rate", -0.001, "above 0"),
    ("learning_rate", 0, "above 0"),
    ("learning_rate", float("nan"), "above 0"),
    ("dropout", 1.5, "[0, 1)"),
    ("warmup_steps", -1, "at least 0"),
    ("weight_decay", -0.1, "0 or more"),
    ("max_grad_norm", 0, "above 0"),
    ("max_train_records", 0, "null or at least 1"),
    ("max_valid_records", -16, "null or at least 1"),
    ("max_steps", 0, "null or at least 1"),
    ("keep_checkpoints", 0, "at least 1"),
])
def test_lora_values_out_of_range_fail_with_the_file(tmp_path, option, value, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "lora": {option: value}}))
    with pytest.raises(LlmrecError) as err:
        load_params(bad)
    msg = _one_line(err)
    assert msg.startswith(f"{bad}: key 'lora': ") and repr(option) in msg and str(value) in msg, msg
    assert words in msg, msg


def test_lora_option_typo_suggests_the_nearest():
    with pytest.raises(LlmrecError) as err:
        validate({"lora": {"learning_rat": 0.1}})
    assert "unknown lora option 'learning_rat' (did you mean 'learning_rate'?)" in _one_line(err)


@pytest.mark.parametrize("chapters", [["04", "08"], [2, "03"], ["02_zero_shot"], ["zero_shot"],
                                      ["lora_finetune", "08_llm"], None])
def test_chapter_selectors_that_validate(chapters):
    assert validate({"chapters": chapters})["chapters"] == chapters


def test_the_declared_chapters_are_the_notebooks():
    from llmrec.report.params import CHAPTERS

    notebooks = sorted(p.stem for p in (PARAMS_DIR.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert CHAPTERS == notebooks


@pytest.mark.parametrize("files, target, words", [
    ((), "missing", "no such folder"),
    ((), ".", "no MovieLens files in it (found nothing)"),
    (("ratings.csv",), ".", "no MovieLens files in it (found ratings.csv)"),
    (("u.data", "u.item"), "u.data", "a file, not a folder"),
], ids=["missing", "empty", "ratings without movies", "a file"])
def test_a_dataset_without_a_movielens_layout_fails_with_the_file(tmp_path, files, target, words):
    for name in files:
        (tmp_path / name).touch()
    dataset = str(tmp_path / target) if target != "." else str(tmp_path)
    with pytest.raises(LlmrecError) as err:
        validate({"dataset": dataset}, source="x.yaml")
    msg = _one_line(err)
    assert msg.startswith(f"x.yaml: key 'dataset' is {dataset!r}: {words}"), msg
    assert "u.data + u.item" in msg and "ratings.csv + movies.csv" in msg and "null" in msg


@pytest.mark.parametrize("files, layout", [(("u.data", "u.item"), "ml-100k"),
                                           (("ratings.dat", "movies.dat"), "ml-1m"),
                                           (("ratings.csv", "movies.csv"), "ml-latest"),
                                           (("ml.inter", "ml.item"), "recbole")])
def test_a_dataset_folder_of_each_layout_validates(tmp_path, files, layout):
    from llmrec.data.movielens import layout_of

    for name in files:
        (tmp_path / name).touch()
    assert layout_of(tmp_path) == layout
    assert validate({"dataset": str(tmp_path)})["dataset"] == str(tmp_path)


def _no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("path", [p for p in FILES if "device: cuda" in p.read_text()],
                         ids=lambda p: p.name)
def test_a_gpu_file_loads_without_a_gpu_and_fails_when_it_would_run(monkeypatch, path):
    """A GPU file is read and costed on a laptop (``load_params(path)``); running it there
    (``check_hardware=True``: the runner, and every notebook's ``collect``) is one clear line."""
    _no_cuda(monkeypatch)
    assert load_params(path)["device"] == "cuda"
    with pytest.raises(LlmrecError) as err:
        load_params(path, check_hardware=True)
    msg = _one_line(err)
    assert msg.startswith(f"{path}: key 'device' is 'cuda' but torch") and "device: auto or cpu" in msg


def test_the_hardware_check_passes_with_cuda_and_ignores_other_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert validate({"device": "cuda"}, check_hardware=True)["device"] == "cuda"
    _no_cuda(monkeypatch)
    for device in ("auto", "cpu"):
        assert validate({"device": device}, check_hardware=True)["device"] == device


def test_collect_checks_the_device_a_notebook_would_run_on(monkeypatch):
    from llmrec.report.params import collect

    _no_cuda(monkeypatch)
    assert collect({"params_file": "params/smoke.yaml"})["device"] != "cuda"
    with pytest.raises(LlmrecError) as err:
        collect({"params_file": "params/smoke.yaml", "device": "cuda"})
    assert _one_line(err).startswith("notebook parameters: key 'device' is 'cuda'")


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
    assert set(p["lora"]) - {"gradient_checkpointing"} == SHOWN_LORA | set(PROFILES[p["profile"]])
    mine, profile = config_for(p["profile"], **p["lora"]), config_for(p["profile"])
    differs = {k for k in p["lora"] if getattr(mine, k) != getattr(profile, k)}
    # its profile's values; a larger model's LoRA point (a "-lora" file) trains on a sample
    # of the records, and recomputes activations where a step would not fit otherwise
    assert differs <= ({"max_train_records", "gradient_checkpointing"} if p["name"].endswith("-lora") else set())
    if differs:
        assert p["curve"] == [p["lora"]["max_train_records"]]  # chapter 4's adapter is the curve's one point


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
