"""LoRA training: the blog's parameter count, loss masking, learning, resume, NaN guard, options."""

from __future__ import annotations

import random

import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.llm import train
from llmrec.llm.train import IGNORE_INDEX, config_for, tokenize_pair, train_lora

TITLES = [
    "Toy Story (1995)", "GoldenEye (1995)", "Usual Suspects, The (1995)", "Star Wars (1977)",
    "Fargo (1996)", "Return of the Jedi (1983)", "Contact (1997)", "Scream (1996)",
    "Titanic (1997)", "Pulp Fiction (1994)", "Liar Liar (1997)", "Chasing Amy (1997)",
]


def _pairs(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.sample(TITLES, 10)
        out.append({"prompt": "### Input:\n" + " => ".join(t[:6]) + "\n\n### Response:\n",
                    "answer": " => ".join(t[6:])})
    return out


TRAIN, VALID = _pairs(16, 1), _pairs(8, 2)


def _config(**kw):
    # 16 records / batch 4 = 4 steps an epoch; lr high enough for the random tiny model
    base = dict(epochs=3, batch_size=4, max_train_records=None, max_valid_records=None,
                learning_rate=1e-2)
    return config_for("smoke", **{**base, **kw})


def test_llama7b_lora_r8_q_v_has_the_blogs_4194304_trainable_params():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                      intermediate_size=11008, vocab_size=32000)
    with torch.device("meta"):
        base = LlamaForCausalLM(cfg)
    peft_model = train.make_lora_model(base, config_for("full"))
    line = train.trainable_line(peft_model)
    assert line.startswith("trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.06")
    assert peft_model.get_nb_trainable_parameters()[0] == 8 * (4096 + 4096) * 2 * 32


def test_prompt_tokens_are_masked_and_loss_matches_full_logits(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pair = TRAIN[0]
    n_prompt = len(tok(pair["prompt"])["input_ids"])
    f = tokenize_pair(tok, pair["prompt"], pair["answer"], cutoff_len=512)
    assert f["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert f["labels"][n_prompt:] == f["input_ids"][n_prompt:]
    assert f["input_ids"][-1] == tok.eos_token_id and not f["truncated"]
    whole = tokenize_pair(tok, pair["prompt"], pair["answer"], cutoff_len=512, train_on_inputs=True)
    assert whole["labels"] == whole["input_ids"]
    cut = tokenize_pair(tok, pair["prompt"], pair["answer"], cutoff_len=10)
    assert len(cut["input_ids"]) == 10 and cut["truncated"]

    # the loss on a ragged batch (logits only from the first answer position) equals the
    # plain full-logits cross-entropy over the answer tokens
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    feats = [tokenize_pair(tok, p["prompt"], p["answer"], 512) for p in TRAIN[:3]]
    feats[1]["input_ids"] = feats[1]["input_ids"][3:]  # make the rows differ in length
    feats[1]["labels"] = feats[1]["labels"][3:]
    batch = train.collate(feats, tok.pad_token_id)
    with torch.no_grad():
        loss_sum, n = train._batch_loss(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ref = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum")
    assert n == sum(sum(1 for x in f["labels"] if x != IGNORE_INDEX) for f in feats)
    assert torch.allclose(loss_sum, ref, rtol=1e-5)


def test_smoke_training_lowers_loss_and_rerun_is_a_noop(tiny_model_dir, tmp_path):
    result = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(), progress=False)
    assert result.steps == 12 and len(result.step_log) == 12
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[1]["train_loss"]
    assert result.history[-1]["valid_loss"] < result.history[0]["valid_loss"]
    assert result.final_loss < result.first_loss
    assert result.tokens_per_s > 0 and result.train_tokens > 0
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert result.trainable_line.startswith(f"trainable params: {result.trainable_params:,d}")
    again = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(), progress=False)
    assert again.to_dict() == result.to_dict()
    with pytest.raises(LlmrecError, match="learning_rate=0.01"):
        train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(learning_rate=1e-3))


def test_interrupted_run_resumes_at_the_checkpoint_with_the_same_final_loss(tiny_model_dir, tmp_path):
    cfg = _config(save_every_steps=2)  # checkpoints at steps 2, 4 (epoch), 6, 8 (epoch), ...
    whole = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "whole", cfg, progress=False)

    def interrupt(step, loss):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "cut", cfg, callback=interrupt,
                   progress=False)
    kept = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("step-*"))
    assert kept == ["step-00000004", "step-00000006"]
    assert not (tmp_path / "cut" / "train_result.json").exists()

    steps_seen = []
    resumed = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "cut", cfg,
                         callback=lambda s, loss: steps_seen.append(s), progress=False)
    assert resumed.resumed_from_step == 6
    assert steps_seen == list(range(7, 13))
    assert [s["loss"] for s in resumed.step_log] == pytest.approx(
        [s["loss"] for s in whole.step_log], rel=1e-6)
    assert resumed.final_loss == pytest.approx(whole.final_loss, rel=1e-6)
    assert [h["valid_loss"] for h in resumed.history] == pytest.approx(
        [h["valid_loss"] for h in whole.history], rel=1e-6)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
        tiny_model_dir, tmp_path, monkeypatch):
    real = train._batch_loss
    calls = {"train": 0}

    def poisoned(model, batch):
        loss, n = real(model, batch)
        if model.training:
            calls["train"] += 1
            if calls["train"] == 6:  # grad_accum 1: the 6th training batch is step 6
                return loss * float("nan"), n
        return loss, n

    monkeypatch.setattr(train, "_batch_loss", poisoned)
    with pytest.raises(LlmrecError, match=r"at step 6 .*step-00000004 kept") as err:
        train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(save_every_steps=4),
                   progress=False)
    assert "\n" not in str(err.value)
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*")] == ["step-00000004"]
    assert not (tmp_path / "train_result.json").exists()


@pytest.mark.parametrize("options", [dict(quantization="4bit", gradient_checkpointing=True),
                                     dict(mixed_precision="bf16")], ids=["qlora-4bit", "bf16"])
def test_gpu_options_train_on_the_cpu_too(tiny_model_dir, tmp_path, options):
    # QLoRA (bitsandbytes 4-bit base + prepare_model_for_kbit_training) and bf16 autocast
    result = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(max_steps=3, **options),
                        progress=False)
    assert result.steps == 3 and result.history[-1]["epoch"] == 0.75  # stopped mid-epoch 1
    assert result.history[-1]["valid_loss"] < result.history[0]["valid_loss"]
    assert result.trainable_params == 3584  # r 8 on q_proj (64 -> 64) and v_proj (64 -> 32), 2 layers


def test_bad_lora_options_are_one_line_errors(tiny_model_dir, tmp_path, capsys):
    with pytest.raises(LlmrecError, match="unknown lora option 'rank'"):
        config_for("cpu", rank=8)
    with pytest.raises(LlmrecError, match="'r' has the wrong type"):
        config_for("cpu", r="8")
    with pytest.raises(LlmrecError, match="mixed_precision"):
        config_for("cpu", mixed_precision="fp8")
    with pytest.raises(LlmrecError, match="unknown training profile"):
        config_for("laptop")
    assert config_for("cpu", r=16, max_train_records=None).r == 16
    with pytest.raises(LlmrecError, match="cutoff_len=8 cuts every answer"):
        train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "cut", _config(cutoff_len=8),
                   progress=False)

    from llmrec.cli import main

    params = tmp_path / "bad.yaml"
    params.write_text("model: tiny-llama\nlora:\n  lora_rank: 4\n")
    capsys.readouterr()
    assert main(["train", "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    # found when the file is read, before any model loads: file, key and option named
    assert err.startswith(f"error: {params}: key 'lora': unknown lora option 'lora_rank'")
    assert "\n" not in err


def test_notebook_04_trains_evaluates_and_writes_results(smoke_report):
    """Chapter 4 as the smoke report ran it (the session's ``smoke_report``): the profile's
    adapter trained, each LoRA preset scored on its records, the figures drawn."""
    from llmrec.artifacts import read_json, read_jsonl, system_dir
    from llmrec.paths import repo_root
    from llmrec.report.params import load_params

    smoke = load_params(repo_root() / "params" / "smoke.yaml")
    run_dir, name = smoke_report.model, smoke_report.name
    result = read_json(run_dir / "train_result.json")
    assert result["config"]["max_train_records"] == smoke["lora"]["max_train_records"] == result["n_train"]
    assert [h["epoch"] for h in result["history"]] == list(range(smoke["lora"]["epochs"] + 1))
    assert all(h["valid_loss"] > 0 for h in result["history"])
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert set(smoke["lora_presets"]) == {"beam4", "greedy"}
    for preset, n in (("greedy", smoke["eval_limit"]), ("beam4", min(smoke["eval_limit"], smoke["beam_limit"]))):
        folder = system_dir(run_dir, name, f"lora/{preset}", "temporal")
        metrics = read_json(folder / "metrics.json")
        assert metrics["setting"] == f"lora/{preset}" and metrics["n_records"] == n
        assert 0.0 <= metrics["map_at_4_low"] <= metrics["map_at_4"] <= metrics["map_at_4_high"] <= 1.0
        assert metrics["train_steps"] == result["steps"]
        rows = read_jsonl(folder / "predictions.jsonl.gz")
        assert len(rows) == n and all("completion" in r for r in rows)
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert {"04_loss.png", "04_map_tuned_vs_untuned.png"} <= figures


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_launch_trains_on_two_processes(tiny_model_dir, tmp_path, ml100k):
    """The multi-GPU command of the README, on two CPU processes (torch DDP over gloo).

    ``accelerate launch --cpu`` starts one process (more need MPI), so this uses the launcher
    a multi-GPU machine uses (``--multi_gpu``: torchrun) with ``device: cpu`` in the file.
    With ``--keep``: the processes wait for the first one's restore in the same process
    group (once, each trained alone: a group set up without ``cpu``)."""
    import json
    import os
    import subprocess
    import sys
    import time

    from llmrec.paths import repo_root

    run_dir = tmp_path / "run"
    params = tmp_path / "ddp.yaml"
    params.write_text(f"name: ddp\nmodel: {tiny_model_dir}\nprofile: smoke\ndtype: float32\n"
                      f"device: cpu\nsplits: [temporal]\nrun_dir: {run_dir}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"),  # no accelerate config of this machine applies
           "PYTHONPATH": os.pathsep.join([str(repo_root()), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "llmrec", "train", "--params", str(params),
           "--keep", str(tmp_path / "keep")]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((run_dir / "train_result.json").read_text())
    # smoke: 16 records in batches of 4, 2 epochs; each process takes half of every epoch
    assert result["world_size"] == 2 and result["batches_per_process"] == [4, 4]
    assert result["steps"] == 4 and [h["epoch"] for h in result["history"]] == [0, 1, 2]
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert not list(run_dir.glob(".tmp-adapter-*"))  # one adapter, written by the first process
    kept = tmp_path / "keep" / "ddp" / "temporal"
    # a finished run is kept as its adapter, config and result (no checkpoint)
    assert (kept / "train_result.json").is_file() and (kept / "adapter" / "adapter_config.json").is_file()
    assert not (kept / "checkpoints").exists()
    assert [line for line in done.stdout.splitlines() if line.startswith("done:")] == [
        f"done: 4 steps on 2 process(es), loss {result['step_log'][0]['loss']:.4f} -> "
        f"{result['step_log'][-1]['loss']:.4f}, {result['tokens_per_s']:.0f} tokens/s, "
        f"adapter in {run_dir / 'adapter'}"]
    assert seconds < 300
    # chapter 4 of the report, same file and data: it finds the run finished and trains nothing
    from llmrec.data.records import build_records, split_records, to_alpaca
    from llmrec.report.params import load_params

    p = load_params(params)
    parts = split_records(build_records(ml100k.ratings), "temporal", seed=p["seed"])
    ex = {part: to_alpaca(parts[part], ml100k.movies) for part in ("train", "valid")}
    config = config_for(p["profile"], seed=p["seed"], quantization=p["quantization"], **p["lora"])
    again = train_lora(p["model"], ex["train"], ex["valid"], run_dir, config, progress=False)
    assert again.world_size == 2 and again.finished_utc == result["finished_utc"]
