"""The GPU estimate: its arithmetic, its inputs against the data and the notebooks, and the
parameter files' hardware lines against it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmrec.cli import main
from llmrec.costs import (
    A100,
    ARCHS,
    CHAPTERS,
    GB,
    ML100K,
    SIZES,
    SWEEPS,
    Pass,
    estimate,
    pass_seconds,
    passes,
    training,
    weight_bytes,
)
from llmrec.params import load_params

ROOT = Path(__file__).resolve().parent.parent
GPU_FILES = ["llama-7b", "llama-13b", "llama-30b", "llama-65b", "gpt-j-6b"]


def _params(stem):
    return load_params(ROOT / "params" / f"{stem}.yaml")


def test_weights_in_memory():
    llama7 = ARCHS["huggyllama/llama-7b"]
    assert weight_bytes(llama7, "bfloat16") == 2 * llama7.params
    assert weight_bytes(llama7, "float32") == 4 * llama7.params
    # 4-bit: linear layers at about half a byte, the embeddings and output layer in 16 bits
    assert 32 * GB < weight_bytes(ARCHS["huggyllama/llama-65b"], "bfloat16", "4bit") < 37 * GB


def test_training_arithmetic_and_the_blogs_adapter_size():
    params = _params("llama-7b")
    arch = ARCHS["huggyllama/llama-7b"]
    t = training(params, arch)
    assert t["adapter_params"] == 4_194_304  # what alpaca-lora prints for r 8 on q_proj, v_proj
    tokens = 10 * (3511 + 3935) * ML100K.record_tokens
    valid = 11 * (703 + 256) * ML100K.record_tokens
    assert t["tokens"] == pytest.approx(tokens)
    assert t["seconds"] == pytest.approx((6 * tokens + 2 * valid) * arch.params / (312e12 * 0.4))


def test_a_decoding_step_waits_for_memory_or_flops():
    arch = ARCHS["huggyllama/llama-7b"]
    w = weight_bytes(arch)
    one = Pass("02_zero_shot", "x", n=1, prompt_tokens=0, beams=1, new_tokens=10, batch_size=1)
    # one sequence: each of 10 steps reads the weights (and a tiny KV cache)
    assert pass_seconds(one, arch, w) == pytest.approx(10 * w / A100.bytes_per_s, rel=0.01)
    big = Pass("02_zero_shot", "x", n=4096, prompt_tokens=100, beams=4, new_tokens=48, batch_size=4096)
    flops = 2 * arch.params * 4096 * 4 * (100 + 48) / A100.flops
    assert pass_seconds(big, arch, w) == pytest.approx(flops, rel=0.05)  # compute-bound


def test_the_full_profile_passes():
    p = passes(_params("llama-7b"))
    count = {c: sum(x.chapter == c for x in p) for c in CHAPTERS}
    # 2 presets x 2 splits; 15 sweep points + greedy and beam4; per split: constrained,
    # 2 timing passes, 2 rerankers, 5 ablations
    assert count == {"02_zero_shot": 4, "03_few_shot": 4, "04_lora_finetune": 4,
                     "06_decoding": 17, "07_beyond": 20}
    assert {x.n for x in p if x.chapter == "02_zero_shot"} == {897, 920}
    assert all(x.beams == 4 for x in p if "beam4" in x.what)


def test_estimate_orders_the_models_and_splits_chapters():
    est = {stem: estimate(_params(stem)) for stem in GPU_FILES}
    hours = {stem: e["total_seconds"] / 3600 for stem, e in est.items()}
    assert hours["gpt-j-6b"] < hours["llama-7b"] < hours["llama-13b"] < hours["llama-30b"] < hours["llama-65b"]
    for e in est.values():
        assert e["total_seconds"] == pytest.approx(sum(e["seconds"].values()))
        assert e["seconds"]["04_lora_finetune"] > e["train_seconds"] > 0


@pytest.mark.parametrize("stem", GPU_FILES)
def test_hardware_lines_agree_with_the_estimate(stem):
    """A GPU file names a GPU the estimate's peak fits in, and the weights' size it loads."""
    params = _params(stem)
    e = estimate(params)
    gpu_gb = int(re.match(r"1 GPU with (\d+) GB", params["hardware"]).group(1))
    assert max(e["train_peak_bytes"], e["generate_peak_bytes"]) < gpu_gb * GB
    weights = float(re.search(r"weights (?:about )?([\d.]+) GB", params["hardware"]).group(1))
    assert weights == pytest.approx(e["weights_bytes"] / GB, abs=0.6)


def test_data_facts_match_ml100k(ml100k):
    from llmrec.records import build_records, split_records

    records = build_records(ml100k.ratings)
    for split in ("temporal", "blog"):
        parts = split_records(records, split, seed=0)
        assert (len(parts["train"]), len(parts["valid"]), len(parts["test"])) == (
            ML100K.n_train[split], ML100K.n_valid[split], ML100K.n_test[split])


def test_chapters_take_their_sizes_from_the_package():
    """Chapters 6 and 7 read the sizes the estimate uses (llmrec.params), not copies."""
    for name, use in (("06_decoding.ipynb", 'SWEEPS[P["profile"]]'), ("07_beyond.ipynb", 'SIZES[P["profile"]]')):
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        assert use in code and " = {" not in code.split(use)[0].rsplit("\n", 3)[-1]
    assert set(SWEEPS) == set(SIZES) == {"smoke", "quick", "cpu", "full"}



def test_costs_command_prints_one_row_per_file(capsys):
    files = [str(ROOT / "params" / f"{s}.yaml") for s in ("llama-7b", "llama-65b")]
    assert main(["costs", *files]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| llama-")]
    assert [r.split("|")[1].strip() for r in rows] == ["llama-7b.yaml", "llama-65b.yaml"]
    assert "312 TFLOP/s" in out and "40%" in out
