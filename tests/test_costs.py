"""The GPU estimate: its arithmetic, its inputs against the data and the notebooks, and the
parameter files' hardware lines against it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmrec.cli import main
from llmrec.llm.learning_curve import CURVES
from llmrec.profiles import PROFILES
from llmrec.recommenders.constrained import PRIOR_WEIGHTS
from llmrec.recommenders.ranker import ranker_config
from llmrec.report.costs import (
    A100,
    ARCHS,
    CHAPTERS,
    GB,
    ML100K,
    SIZES,
    SWEEPS,
    Pass,
    curve_points,
    curve_training,
    estimate,
    pass_seconds,
    passes,
    ranker_training,
    training,
    weight_bytes,
)
from llmrec.report.params import RANKING, load_params

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
    # 2 timing passes, 2 rerankers, 5 ablations. Chapter 4 adds a greedy pass per point of
    # the learning curve (4), chapter 8 the ranker on validation and test records, 7 prior
    # weights on validation records, plain and prior constrained decoding on test records
    assert count == {"02_zero_shot": 4, "03_few_shot": 4, "04_lora_finetune": 4 + 4,
                     "06_decoding": 17, "07_beyond": 20, "08_llm_with_cf": 2 + len(PRIOR_WEIGHTS) + 2}
    assert {x.n for x in p if x.chapter == "02_zero_shot"} == {897, 920}
    assert all(x.beams == 4 for x in p if "beam4" in x.what)
    curve = [x for x in p if x.what.startswith("curve ")]
    assert [x.what for x in curve] == [f"curve {n} greedy (temporal)" for n in ("128", "512", "2048", "all")]
    assert all(x.n == 897 and x.prompt_tokens == ML100K.prompt_tokens["compact"] for x in curve)
    ch8 = {x.what: x for x in p if x.chapter == "08_llm_with_cf"}
    ranker = [x for x in ch8.values() if x.what.startswith("ranker")]
    # full: every validation record for the fusion weight, every test record, one forward pass
    assert [(x.n, x.new_tokens, x.beams) for x in ranker] == [(703, 0, 1), (897, 0, 1)]
    assert all(x.prompt_tokens == ML100K.prompt_tokens["ranker"] for x in ranker)
    prior = [x for x in ch8.values() if "prior weight" in x.what]
    assert [x.n for x in prior] == [RANKING["full"]["prior_valid"]] * len(PRIOR_WEIGHTS)
    generated = [x for x in ch8.values() if x.what.startswith("constrained greedy (")
                 or x.what.startswith("constrained greedy + prior (")]
    assert [x.n for x in generated] == [897, 897]  # generation_test None: every test record
    assert all(x.prompt_tokens == ML100K.prompt_tokens["alpaca"] for x in prior + generated)


def test_the_long_profile_passes_use_its_sizes_and_the_compact_prompt():
    params = _params("smollm2-135m-long")
    p = passes(params, instruct=True)
    assert params["prompt_style"] == "compact" and params["eval_limit"] == 300
    lora = [x for x in p if x.what.startswith("LoRA ")]
    assert {x.prompt_tokens for x in lora} == {ML100K.prompt_tokens["compact"]}
    assert {x.what: x.n for x in lora} == {"LoRA greedy (temporal)": 300, "LoRA beam4 (temporal)": 100}
    size = RANKING["long"]
    ch8 = [x for x in p if x.chapter == "08_llm_with_cf"]
    # the ranker scores every test record outside the previews; generation its sample
    assert [x.n for x in ch8] == [703, 897] + [size["prior_valid"]] * len(PRIOR_WEIGHTS) + [size["generation_test"]] * 2
    assert curve_points(params) == [("128", 128), ("512", 512), ("1024", 1024), ("all", None)]
    # the smoke file names no curve: the profile's
    assert curve_points(_params("smoke")) == [(str(n), n) for n in CURVES["smoke"]]


def test_curve_and_ranker_training_arithmetic():
    arch = ARCHS["huggyllama/llama-7b"]
    flops = arch.params / (312e12 * 0.4)
    record = ML100K.compact_record_tokens
    # llama-7b (Alpaca adapter): every point of the full curve trains, 10 epochs, validated
    # on every validation record before training and after each epoch
    curve = curve_training(_params("llama-7b"), arch)
    tokens = 10 * (128 + 512 + 2048 + 3511) * record
    assert curve["trained"] == 4 and curve["tokens"] == pytest.approx(tokens)
    assert curve["seconds"] == pytest.approx((6 * tokens + 2 * 4 * 11 * 703 * record) * flops)
    # the long file (compact): chapter 4's own adapter is the curve's last point, trained
    # once; one epoch, 128 validation records 4 times an epoch and once before
    long = curve_training(_params("smollm2-135m-long"), arch)
    tokens = (128 + 512 + 1024) * record
    assert long["trained"] == 3 and long["tokens"] == pytest.approx(tokens)
    assert long["seconds"] == pytest.approx((6 * tokens + 2 * 3 * 5 * 128 * record) * flops)
    # the ranker: the training records that keep a target among the 20 candidates, one epoch
    ranker = ranker_training(_params("llama-7b"), arch)
    n_train, n_valid = round(0.89 * 3511), round(0.5 * 703)
    tokens = n_train * ML100K.ranker_tokens
    assert ranker["tokens"] == pytest.approx(tokens)
    assert ranker["seconds"] == pytest.approx((6 * tokens + 2 * 2 * n_valid * ML100K.ranker_tokens) * flops)
    capped = ranker_training(_params("smollm2-135m-long"), arch)
    assert capped["tokens"] == pytest.approx(RANKING["long"]["train"] * ML100K.ranker_tokens)


def test_estimate_orders_the_models_and_splits_chapters():
    est = {stem: estimate(_params(stem)) for stem in GPU_FILES}
    hours = {stem: e["total_seconds"] / 3600 for stem, e in est.items()}
    assert hours["gpt-j-6b"] < hours["llama-7b"] < hours["llama-13b"] < hours["llama-30b"] < hours["llama-65b"]
    for e in est.values():
        assert e["total_seconds"] == pytest.approx(sum(e["seconds"].values()))
        assert e["seconds"]["04_lora_finetune"] > e["train_seconds"] + e["curve_seconds"]
        assert e["train_seconds"] > 0 and e["curve_seconds"] > 0
        assert e["seconds"]["08_llm_with_cf"] > e["ranker_seconds"] > 0
        assert e["train_peak_bytes"] >= e["ranker_peak_bytes"]


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
    from llmrec.data.records import build_records, split_records
    from llmrec.recommenders.baselines import fit_baseline
    from llmrec.recommenders.ranker import ranker_examples

    records = build_records(ml100k.ratings)
    for split in ("temporal", "blog"):
        parts = split_records(records, split, seed=0)
        assert (len(parts["train"]), len(parts["valid"]), len(parts["test"])) == (
            ML100K.n_train[split], ML100K.n_valid[split], ML100K.n_test[split])
        # the ranker's examples: the records with a target among item-kNN's top 20
        knn = fit_baseline("item_knn", parts["train"], ml100k.movies)
        for part in ("train", "valid"):
            _, stats = ranker_examples(parts[part], knn, ml100k.movies)
            assert stats["kept_share"] == pytest.approx(ML100K.ranker_kept[part], abs=0.03)


def _code(name):
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_chapters_take_their_sizes_from_the_package():
    """Chapters 6, 7 and 8 read the sizes the estimate uses (llmrec.report.params, the prior weights
    of llmrec.recommenders.constrained), not copies; chapter 4's curve takes the file's or CURVES."""
    for name, uses in (("06_decoding.ipynb", ['SWEEPS[P["profile"]]']),
                       ("07_beyond.ipynb", ['SIZES[P["profile"]]']),
                       ("08_llm_with_cf.ipynb", ['RANKING[P["profile"]]', "PRIOR_WEIGHTS)"])):
        code = _code(name)
        for use in uses:
            assert use in code and " = {" not in code.split(use)[0].rsplit("\n", 3)[-1]
    assert 'P["curve"]' in _code("04_lora_finetune.ipynb")  # train_curve: None is CURVES[profile]
    assert set(SWEEPS) == set(SIZES) == set(RANKING) == set(CURVES) == set(PROFILES)


def test_ranker_config_is_chapter_8s():
    """Notebook 08 trains with the configuration the estimate uses (one function)."""
    assert "rank_config = ranker_config(P)" in _code("08_llm_with_cf.ipynb")


@pytest.mark.parametrize("stem", ["llama-7b", "llama-65b", "smollm2-135m-long"])
def test_ranker_config_on_a_gpu_recomputes_activations(stem):
    cfg = ranker_config(_params(stem))
    assert cfg.cutoff_len == 1024 and cfg.patience is None
    assert cfg.gradient_checkpointing == (_params(stem)["profile"] == "full")



def test_costs_command_prints_one_row_per_file(capsys):
    files = [str(ROOT / "params" / f"{s}.yaml") for s in ("llama-7b", "llama-65b")]
    assert main(["costs", *files]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| llama-")]
    assert [r.split("|")[1].strip() for r in rows] == ["llama-7b.yaml", "llama-65b.yaml"]
    assert all(len(r.strip("|").split("|")) == 3 + len(CHAPTERS) + 1 for r in rows)  # a chapter each
    assert "| 07 hours | 08 hours | total hours |" in out
    assert "312 TFLOP/s" in out and "40%" in out
