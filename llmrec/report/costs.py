"""What a parameter file's run needs on a GPU: memory, and hours per chapter, from FLOPs.

An estimate by arithmetic, not a measurement; every assumption is a named constant here:

- Training (chapter 4's adapter per split, again per ``lora_seeds``, its learning curve's
  points, chapter 8's ranker): 6 FLOPs per parameter per token, the usual figure (forward 2, backward 4), for
  ``epochs`` passes over the training records, plus a forward pass (2 per parameter per
  token) over the validation records at each validation (``validations_per_epoch`` an
  epoch) and once before training. Early stopping is not counted: every epoch runs, so
  those hours are a ceiling. LoRA skips the frozen weights' gradients (about 2 of the 4),
  so 6 is an upper figure that leaves room for what the count leaves out (padding,
  attention, the optimizer, dequantizing 4-bit weights).
- Generation: the prompt costs 2 FLOPs per parameter per token (per beam: beam search
  copies the prompt to every beam); each new token 2 per parameter per sequence, but a
  decoding step cannot be faster than reading the weights and the KV cache once from GPU
  memory, so a step takes the longer of the two. Every completion is counted at its full
  ``max_new_tokens``: a batch runs until its longest completion stops.
- The GPU (:data:`A100`): 312 TFLOP/s bf16 peak at 40 % use, 2.0 TB/s memory bandwidth at
  60 % use, weights loaded from disk at 1 GB/s by every chapter that loads the model.
  8-bit and 4-bit weights (bitsandbytes) are counted at their size, not their speed: their
  kernels dequantize on the fly and run slower, so those hours are a floor.
- The data: ml-100k's record counts and prompt lengths in tokens (:data:`ML100K`),
  measured with SmolLM2's tokenizer (49k vocabulary; LLaMA's 32k vocabulary, which also
  splits numbers into digits, gives somewhat more tokens).
- The chapters' own sizes are the package's, read here, not copied: :data:`SWEEPS` of
  chapter 6, :data:`SIZES` of chapter 7, the learning curve's :data:`CURVES` of chapter 4,
  :data:`RANKING` and the prior weights of chapter 8 (a test checks that the notebooks
  read the same names). Chapters 1 and 5 use no LLM.
- Chapter 8: the ranker trains on the retriever's 20 candidates of the training records
  that keep a held-out like among them (:attr:`Data.ranker_kept`), then scores the
  validation records the fusion weight is chosen on and the test records, one forward pass
  each (the fusion reuses those scores); constrained greedy decoding with the prior runs
  once per prior weight on its validation sample, then plain and with the prior on its
  test sample.

``python -m llmrec costs params/llama-7b.yaml ...`` prints the table the README quotes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec.errors import LlmrecError
from llmrec.llm.decoding import PRESETS
from llmrec.llm.learning_curve import CURVES, label, point_config
from llmrec.llm.models import EMBEDDED_MODELS
from llmrec.llm.train import TrainConfig, config_for
from llmrec.recommenders.constrained import PRIOR_WEIGHTS
from llmrec.recommenders.ranker import ranker_config
from llmrec.report.params import PREVIEW_PROFILES, RANKING, SIZES, SWEEPS, load_params

GB = 1e9


@dataclass(frozen=True)
class Gpu:
    """Throughput assumed for one GPU."""

    name: str
    peak_flops: float  # dense bf16 FLOP/s
    flops_share: float  # the share of the peak a real run reaches
    bandwidth: float  # memory bytes/s
    bandwidth_share: float
    load_bytes_per_s: float  # weights read from disk when a chapter loads the model

    @property
    def flops(self) -> float:
        return self.peak_flops * self.flops_share

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth * self.bandwidth_share


A100 = Gpu("A100 80 GB", peak_flops=312e12, flops_share=0.40, bandwidth=2.0e12,
           bandwidth_share=0.60, load_bytes_per_s=1e9)


@dataclass(frozen=True)
class Arch:
    """What the estimate needs of a model: parameters and the shapes behind the KV cache
    and activations (from each model's published ``config.json``)."""

    params: float
    layers: int
    hidden: int
    heads: int
    kv_dim: int  # key (= value) width per token and layer: kv heads x head size
    vocab: int
    tied_embeddings: bool = False


#: Keyed by Hugging Face id (a parameter file's ``hf_id``).
ARCHS: dict[str, Arch] = {
    "huggyllama/llama-7b": Arch(6_738_415_616, 32, 4096, 32, 4096, 32000),
    "huggyllama/llama-13b": Arch(13_015_864_320, 40, 5120, 40, 5120, 32000),
    "huggyllama/llama-30b": Arch(32_528_943_616, 60, 6656, 52, 6656, 32000),
    "huggyllama/llama-65b": Arch(65_285_660_672, 80, 8192, 64, 8192, 32000),
    "EleutherAI/gpt-j-6b": Arch(6_053_381_344, 28, 4096, 16, 4096, 50400),
    "HuggingFaceTB/SmolLM2-135M-Instruct": Arch(134_515_008, 30, 576, 9, 192, 49152, True),
    "google/gemma-3-270m": Arch(268_098_176, 18, 640, 4, 256, 262144, True),
    # as converted from their GGUF files: the output matrix is not tied to the input
    # embeddings, so they hold more than the published 494 M and 1.54 B parameters
    "Qwen/Qwen2.5-Coder-0.5B-Instruct": Arch(630_167_424, 24, 896, 14, 128, 151936),
    "Qwen/Qwen2.5-Coder-1.5B-Instruct": Arch(1_777_088_000, 28, 1536, 12, 256, 151936),
}


@dataclass(frozen=True)
class Data:
    """Record counts per split and mean lengths in tokens."""

    n_train: Mapping[str, int]
    n_valid: Mapping[str, int]
    n_test: Mapping[str, int]
    prompt_tokens: Mapping[str, float]  # per prompt style (``ranker``: chapter 8's letters)
    record_tokens: float  # a training record: Alpaca prompt + answer
    title_tokens: float  # one catalog title with its year
    compact_record_tokens: float  # a training record in the compact prompt
    ranker_tokens: float  # a ranker example: 6 liked titles, 20 candidates, the letter
    ranker_max_tokens: int  # the longest ranker example (its batch is padded to it)
    #: the share of a part's records (``train``, ``valid``) that keep a held-out like among
    #: the retriever's top 20: the ranker's examples (the others are dropped)
    ranker_kept: Mapping[str, float]


#: ml-100k (seed 0): counts from ``split_records``; tokens are means over 300 temporal test
#: prompts (500 training records, every title) with SmolLM2's tokenizer. The compact and
#: ranker figures: the same records (ranker: 500 temporal training examples of item-kNN's
#: top 20, the longest over both splits); ``ranker_kept``: 87-92 % of the training records,
#: 49-55 % of the validation records, for item-kNN and EASE on both splits.
ML100K = Data(
    n_train={"temporal": 3511, "blog": 3935},
    n_valid={"temporal": 703, "blog": 256},
    n_test={"temporal": 897, "blog": 920},
    prompt_tokens={"zero-shot": 83.1, "chat": 125.1, "few-shot": 342.1, "alpaca": 137.4,
                   "dislikes": 138.2, "compact": 75.2, "ranker": 383.3},
    record_tokens=183.3,
    title_tokens=10.9,
    compact_record_tokens=121.4,
    ranker_tokens=385.3,
    ranker_max_tokens=472,
    ranker_kept={"train": 0.89, "valid": 0.5},
)

N_CANDIDATES = 20  # chapter 7's retriever proposes 20 candidates
N_ABLATIONS = 5  # with-year, no-year, dislikes, 2 inputs, 4 inputs
CHAPTERS = ("02_zero_shot", "03_few_shot", "04_lora_finetune", "06_decoding", "07_beyond",
            "08_llm_with_cf")
RANKER_BATCH = 8  # llmrec.recommenders.ranker.TrainedRanker's prompts per forward pass (chapter 8's default)
CUDA_CONTEXT_BYTES = 1 * GB  # the CUDA context and the allocator's slack


@dataclass(frozen=True)
class Pass:
    """One generation (or scoring) pass: ``n`` prompts of ``prompt_tokens`` each."""

    chapter: str
    what: str
    n: int
    prompt_tokens: float
    beams: int = 1
    new_tokens: int = 0
    batch_size: int = 16


def weight_bytes(arch: Arch, dtype: str = "bfloat16", quantization: str | None = None) -> float:
    """The weights in GPU memory. bitsandbytes quantizes the linear layers only: the
    embeddings (and an untied output layer) stay in 16 bits; NF4 adds its scales."""
    full = 4 if dtype == "float32" else 2
    embed = arch.vocab * arch.hidden * (1 if arch.tied_embeddings else 2)
    per_param = {None: full, "8bit": 1.0, "4bit": 0.5 * 1.07}[quantization]
    return (arch.params - embed) * per_param + embed * full


def _cap(n: int, preset: str, params: Mapping[str, Any]) -> int:
    """``llmrec.report.params.records_for``'s count: ``eval_limit``, and ``beam_limit`` for beams."""
    caps = [n, params.get("eval_limit")]
    if "beam" in preset:
        caps.append(params.get("beam_limit"))
    return min(c for c in caps if c is not None)


def _beams(preset: str) -> int:
    return int(PRESETS[preset].get("num_beams", 1))


def passes(params: Mapping[str, Any], data: Data = ML100K, instruct: bool = False) -> list[Pass]:
    """Every generation and scoring pass the report's LLM chapters make for ``params``."""
    profile, splits = params["profile"], params["splits"]
    new, bs = params["max_new_tokens"], params["batch_size"]
    tok = data.prompt_tokens
    out: list[Pass] = []

    def gen(chapter, what, n, style, preset):
        out.append(Pass(chapter, what, n, tok[style], _beams(preset), new, bs))

    tuned = params["prompt_style"]  # the tuned model's prompt (alpaca or compact)
    for split in splits:
        n_test = data.n_test[split]
        for preset in params["presets"]:
            gen("02_zero_shot", f"zero-shot {preset} ({split})", _cap(n_test, preset, params),
                "zero-shot", preset)
            if instruct:
                gen("02_zero_shot", f"chat {preset} ({split})", _cap(n_test, preset, params),
                    "chat", preset)
            gen("03_few_shot", f"few-shot {preset} ({split})", _cap(n_test, preset, params),
                "few-shot", preset)
        for preset in params["lora_presets"]:
            gen("04_lora_finetune", f"LoRA {preset} ({split})", _cap(n_test, preset, params),
                tuned, preset)
    first = splits[0]
    if "greedy" in params["lora_presets"]:  # the adapter trained with lora_seeds: greedy, first split
        for seed in params["lora_seeds"]:
            gen("04_lora_finetune", f"LoRA seed {seed} greedy ({first})",
                _cap(data.n_test[first], "greedy", params), tuned, "greedy")
    for name, _ in curve_points(params, data):  # section 4.6: every point, greedy, compact prompt
        gen("04_lora_finetune", f"curve {name} greedy ({first})",
            _cap(data.n_test[first], "greedy", params), "compact", "greedy")
    sweep = SWEEPS[profile]
    style = "chat" if instruct else "few-shot"
    grid = min(sweep["n_records"], data.n_valid[first])
    for _ in range(len(sweep["temperature"]) * len(sweep["top_p"])):
        gen("06_decoding", f"sweep point ({first} validation)", grid, style, "sample")
    for preset in ("greedy", "beam4"):
        gen("06_decoding", f"cost {preset}", min(sweep["n_cost"], grid), style, preset)
    sizes = SIZES[profile]
    chapter_splits = splits if profile == "full" else [s for s in splits if s == "temporal"] or splits[:1]
    lp = params["lora_presets"]
    cpreset = "beam4" if "beam4" in lp else lp[0]
    letters = 40 + 6 * data.title_tokens + N_CANDIDATES * (data.title_tokens + 4)

    def size(part, split, preset="greedy"):
        n = data.n_test[split] if sizes[part] is None else min(sizes[part], data.n_test[split])
        return _cap(n, preset, params)

    for split in chapter_splits:
        gen("07_beyond", f"constrained {cpreset} ({split})", size("constrained", split, cpreset),
            "alpaca", cpreset)
        for mode in ("free", "constrained"):
            gen("07_beyond", f"timing {mode} ({split})", size("timing", split, cpreset), "alpaca", cpreset)
        n = size("rerank", split)
        out.append(Pass("07_beyond", f"rerank likelihood ({split})", n,
                        tok["alpaca"] + N_CANDIDATES * data.title_tokens, 1, 0, bs))
        out.append(Pass("07_beyond", f"rerank letters ({split})", n, letters, 1, 1, bs))
        for variant in range(N_ABLATIONS):
            gen("07_beyond", f"ablation {variant + 1} ({split})", size("ablation", split),
                "dislikes" if variant == 2 else ("chat" if instruct else "zero-shot"), "greedy")

    rank = RANKING[profile]  # chapter 8, on the first split

    def upto(n, cap):
        return n if cap is None else min(n, cap)

    n_test = data.n_test[first]
    scored = n_test if profile not in PREVIEW_PROFILES else _cap(n_test, "greedy", params)
    for what, n in (("fusion validation", upto(data.n_valid[first], rank["fusion_valid"])),
                    ("test", scored)):
        out.append(Pass("08_llm_with_cf", f"ranker {what} ({first})", n, tok["ranker"], 1, 0,
                        RANKER_BATCH))
    prior_valid = upto(data.n_valid[first], rank["prior_valid"])
    for weight in PRIOR_WEIGHTS:
        gen("08_llm_with_cf", f"constrained greedy, prior weight {weight:g} ({first} validation)",
            prior_valid, tuned, "greedy")
    gen_test = _cap(upto(n_test, rank["generation_test"]), "greedy", params)
    for what in ("constrained greedy", "constrained greedy + prior"):
        gen("08_llm_with_cf", f"{what} ({first})", gen_test, tuned, "greedy")
    return out


def curve_points(params: Mapping[str, Any], data: Data = ML100K) -> list[tuple[str, int | None]]:
    """Chapter 4's learning-curve points of the first split, ``(name, training records)`` in
    size order (``llmrec.llm.learning_curve``: the file's ``curve``, else the profile's
    :data:`CURVES`; None: all)."""
    n_train = data.n_train[params["splits"][0]]
    sizes = params["curve"] if params.get("curve") is not None else CURVES[params["profile"]]
    points: dict[str, int | None] = {}
    for n in sorted(sizes, key=lambda x: math.inf if x is None else x):
        points.setdefault(label(n, n_train), n)
    return list(points.items())


def pass_seconds(p: Pass, arch: Arch, wbytes: float, gpu: Gpu = A100) -> float:
    """Prefill at the FLOP rate; each decoding step at the slower of FLOPs and memory reads."""
    seqs = p.n * p.beams
    prefill = 2 * arch.params * seqs * p.prompt_tokens / gpu.flops
    if not p.new_tokens:
        return prefill
    flops = 2 * arch.params * seqs * p.new_tokens / gpu.flops
    steps = math.ceil(p.n / p.batch_size) * p.new_tokens
    kv_per_step = kv_bytes(arch, p.prompt_tokens + p.new_tokens / 2, min(p.n, p.batch_size) * p.beams)
    reads = steps * (wbytes + kv_per_step) / gpu.bytes_per_s
    return prefill + max(flops, reads)


def kv_bytes(arch: Arch, tokens: float, sequences: int) -> float:
    """The KV cache of ``sequences`` sequences of ``tokens`` tokens (16-bit keys and values)."""
    return 2 * arch.layers * arch.kv_dim * 2 * tokens * sequences


def train_config(params: Mapping[str, Any]):
    """The chapter-4 :class:`llmrec.llm.train.TrainConfig` of ``params``."""
    return config_for(params["profile"], seed=params["seed"], quantization=params["quantization"],
                      **params["lora"])


def _run(cfg: TrainConfig, n_train: int, n_valid: int, record: float) -> tuple[float, float]:
    """One training run's tokens: ``(trained, validated)`` (``record``: tokens a record,
    cut at ``cutoff_len``; a validation before training and ``validations_per_epoch`` an epoch)."""
    record = min(record, cfg.cutoff_len)
    train_tokens = cfg.epochs * n_train * record
    if cfg.max_steps is not None:
        train_tokens = min(train_tokens, cfg.max_steps * cfg.batch_size * cfg.grad_accum * record)
    return train_tokens, (cfg.epochs * cfg.validations_per_epoch + 1) * n_valid * record


def _seconds(train_tokens: float, valid_tokens: float, arch: Arch, gpu: Gpu) -> float:
    return (6 * train_tokens + 2 * valid_tokens) * arch.params / gpu.flops


def _peak(cfg: TrainConfig, arch: Arch, seq: float) -> tuple[float, int]:
    """Training memory besides the weights, for batches of ``seq`` tokens: the adapter, its
    gradients and AdamW states in float32, activations, logits; and the adapter's size."""
    s, b = seq, cfg.batch_size
    adapter = cfg.r * 2 * arch.hidden * arch.layers * len(cfg.target_modules)
    if cfg.gradient_checkpointing:  # each layer's input kept, one layer's activations live
        acts = arch.layers * 2 * s * b * arch.hidden + 34 * s * b * arch.hidden + 5 * arch.heads * s * s * b
    else:  # per layer: 34 s b h + 5 a s^2 b bytes (Korthikanti et al. 2022, 16-bit activations)
        acts = arch.layers * (34 * s * b * arch.hidden + 5 * arch.heads * s * s * b)
    logits = 2 * s * b * arch.vocab * 4  # float32 logits and their gradient
    return 16 * adapter + acts + logits, adapter


def _record_tokens(style: str, data: Data) -> float:
    return data.compact_record_tokens if style == "compact" else data.record_tokens


def training(params: Mapping[str, Any], arch: Arch, data: Data = ML100K, gpu: Gpu = A100) -> dict[str, float]:
    """Chapter 4's training, every split: ``tokens``, ``seconds``, ``peak_bytes`` (weights
    excluded: adapter, its gradients and AdamW states in float32, activations, logits)."""
    cfg = train_config(params)
    tokens = seconds = 0.0
    for split in params["splits"]:
        n_train = min(data.n_train[split], cfg.max_train_records or data.n_train[split])
        n_valid = min(data.n_valid[split], cfg.max_valid_records or data.n_valid[split])
        train_tokens, valid_tokens = _run(cfg, n_train, n_valid, _record_tokens(params["prompt_style"], data))
        tokens += train_tokens
        seconds += _seconds(train_tokens, valid_tokens, arch, gpu)
    peak, adapter = _peak(cfg, arch, cfg.cutoff_len)
    return {"tokens": tokens, "seconds": seconds, "peak_bytes": peak, "adapter_params": adapter}


def curve_training(params: Mapping[str, Any], arch: Arch, data: Data = ML100K,
                   gpu: Gpu = A100) -> dict[str, float]:
    """Chapter 4's learning curve (section 4.6): one training per point of
    :func:`curve_points` on its records, in the compact prompt, with the profile's
    configuration (:func:`llmrec.llm.learning_curve.point_config`) and the file's quantization.
    In the compact prompt chapter 4's own adapter of the first split is the point of its
    ``max_train_records`` (one training serves both: not counted twice). ``trained``: the
    points trained here."""
    first = params["splits"][0]
    own = label(train_config(params).max_train_records, data.n_train[first])
    cfg = point_config(params["profile"], None, params["seed"], params["quantization"],
                       **params["lora"])
    n_valid = min(data.n_valid[first], cfg.max_valid_records or data.n_valid[first])
    tokens = seconds = 0.0
    trained = 0
    for name, n in curve_points(params, data):
        if params["prompt_style"] == "compact" and name == own:
            continue
        trained += 1
        train_tokens, valid_tokens = _run(cfg, data.n_train[first] if n is None else min(n, data.n_train[first]),
                                          n_valid, data.compact_record_tokens)
        tokens += train_tokens
        seconds += _seconds(train_tokens, valid_tokens, arch, gpu)
    return {"tokens": tokens, "seconds": seconds, "peak_bytes": _peak(cfg, arch, cfg.cutoff_len)[0],
            "trained": trained}


def ranker_training(params: Mapping[str, Any], arch: Arch, data: Data = ML100K,
                    gpu: Gpu = A100) -> dict[str, float]:
    """Chapter 8's ranker training on the first split: the training records that keep a
    held-out like among the retriever's 20 candidates (:attr:`Data.ranker_kept`), capped by
    :func:`ranker_config`'s ``max_train_records``; its batches padded to the longest example."""
    cfg = ranker_config(params)
    first = params["splits"][0]

    def kept(part, n, cap):
        n = round(data.ranker_kept[part] * n)
        return n if cap is None else min(n, cap)

    train_tokens, valid_tokens = _run(cfg, kept("train", data.n_train[first], cfg.max_train_records),
                                      kept("valid", data.n_valid[first], cfg.max_valid_records),
                                      data.ranker_tokens)
    return {"tokens": train_tokens, "seconds": _seconds(train_tokens, valid_tokens, arch, gpu),
            "peak_bytes": _peak(cfg, arch, min(cfg.cutoff_len, data.ranker_max_tokens))[0]}


def estimate(params: Mapping[str, Any], data: Data = ML100K, gpu: Gpu = A100) -> dict[str, Any]:
    """Memory (bytes) and seconds per LLM chapter for one validated parameter file."""
    hf_id = params.get("hf_id") or EMBEDDED_MODELS.get(params["model"], {}).get("hf_id")
    if hf_id not in ARCHS:
        raise LlmrecError(f"no architecture facts for model {params['model']!r} (hf_id {hf_id!r}); "
                          f"add them to llmrec.report.costs.ARCHS or use one of {', '.join(ARCHS)}")
    arch = ARCHS[hf_id]
    instruct = EMBEDDED_MODELS.get(params["model"], {}).get("kind") == "instruct"
    wbytes = weight_bytes(arch, params["dtype"], params["quantization"])
    all_passes = passes(params, data, instruct)
    seconds = dict.fromkeys(CHAPTERS, 0.0)
    for p in all_passes:
        seconds[p.chapter] += pass_seconds(p, arch, wbytes, gpu)
    train = training(params, arch, data, gpu)
    curve = curve_training(params, arch, data, gpu)
    ranker = ranker_training(params, arch, data, gpu)
    n_splits = len(params["splits"])
    # lora_seeds: the first split's adapter again per seed (the splits' mean: close enough)
    n_seeds = len(params["lora_seeds"]) if "greedy" in params["lora_presets"] else 0
    seconds["04_lora_finetune"] += train["seconds"] * (1 + n_seeds / n_splits) + curve["seconds"]
    seconds["08_llm_with_cf"] += ranker["seconds"]
    # chapter 4: a training and a tuned model per split, per curve point (trained or not) the
    # tuned model; chapter 8: the ranker's training, the tuned ranker, the tuned generator
    loads = {"02_zero_shot": 1, "03_few_shot": 1,
             "04_lora_finetune": 2 * (n_splits + n_seeds) + curve["trained"] + len(curve_points(params, data)),
             "06_decoding": 1, "07_beyond": 1 + n_splits, "08_llm_with_cf": 3}
    checkpoint = arch.params * (4 if params["dtype"] == "float32" else 2)
    for chapter, n in loads.items():
        seconds[chapter] += n * checkpoint / gpu.load_bytes_per_s
    kv = max(kv_bytes(arch, p.prompt_tokens + p.new_tokens, min(p.n, p.batch_size) * p.beams)
             for p in all_passes)
    return {
        "name": params["name"], "hf_id": hf_id, "params": arch.params,
        "precision": params["quantization"] or params["dtype"],
        "weights_bytes": wbytes,
        "train_peak_bytes": wbytes + max(train["peak_bytes"], curve["peak_bytes"], ranker["peak_bytes"])
        + CUDA_CONTEXT_BYTES,
        "generate_peak_bytes": wbytes + kv + CUDA_CONTEXT_BYTES,
        "train_tokens": train["tokens"], "train_seconds": train["seconds"],
        "curve_seconds": curve["seconds"], "ranker_seconds": ranker["seconds"],
        "ranker_peak_bytes": wbytes + ranker["peak_bytes"] + CUDA_CONTEXT_BYTES,
        "seconds": seconds, "total_seconds": sum(seconds.values()),
    }


def cost_table(param_files: Sequence[str | Path], data: Data = ML100K, gpu: Gpu = A100) -> str:
    """A markdown table: one row per parameter file."""
    head = ("| parameter file | weights | GPU memory, training / generation | "
            + " | ".join(f"{c[:2]} hours" for c in CHAPTERS) + " | total hours |")
    lines = [head, "|" + "---|" * 2 + "---:|" * (len(CHAPTERS) + 2)]
    for path in param_files:
        e = estimate(load_params(path), data, gpu)
        hours = [e["seconds"][c] / 3600 for c in CHAPTERS]
        lines.append(
            f"| {Path(path).name} | {e['params'] / 1e9:.1f} B, {e['precision']} "
            f"({e['weights_bytes'] / GB:.0f} GB) "
            f"| {e['train_peak_bytes'] / GB:.0f} / {e['generate_peak_bytes'] / GB:.0f} GB | "
            + " | ".join(f"{h:.1f}" for h in hours)
            + f" | {e['total_seconds'] / 3600:.1f} |")
    return "\n".join(lines)


def assumptions(gpu: Gpu = A100) -> str:
    """One line naming what the table assumes."""
    return (f"{gpu.name}: {gpu.peak_flops / 1e12:.0f} TFLOP/s bf16 at {gpu.flops_share:.0%}, "
            f"{gpu.bandwidth / 1e12:.1f} TB/s at {gpu.bandwidth_share:.0%}, weights loaded at "
            f"{gpu.load_bytes_per_s / GB:.0f} GB/s; training 6 FLOPs and generation 2 FLOPs per "
            f"parameter per token; ml-100k, both splits; 8-bit and 4-bit hours are a floor")


def _cli_costs(args: Any) -> int:
    print(cost_table(args.params))
    print()
    print(assumptions())
    return 0


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser("costs", help="GPU memory and hours per chapter of parameter files "
                                            "(an estimate from FLOPs)")
    p.add_argument("params", nargs="+", help="parameter files (params/*.yaml)")
    p.set_defaults(func=_cli_costs)
