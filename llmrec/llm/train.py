"""LoRA fine-tuning on the Alpaca records of a split's training part (the blog's main experiment).

In the spirit of tloen/alpaca-lora's ``finetune.py``: every hyper-parameter is a field of
:class:`TrainConfig` (defaults = the blog's full run, PROTOCOL.md section 6), a profile
(``smoke``, ``cpu``, ``full``) picks a set of them, and the whole config is echoed into the
run's record. The loop is plain PyTorch (AdamW, linear warm-up/decay, batches of similar
length to save padding on the CPU, tqdm), with :mod:`accelerate` handling devices,
mixed precision and several GPUs::

    python -m llmrec train --params params/smollm2-135m.yaml --profile cpu
    accelerate launch --multi_gpu --num_processes 4 -m llmrec train --params params/llama-65b.yaml

The second line trains on 4 GPUs, one process each (torch DDP): each process takes a
quarter of every epoch's batches and the first one writes the checkpoints and the adapter
(tested on two CPU processes). Both write where ``python -m llmrec report`` looks
(``runs/<name>``), so the report's chapter 4 then finds the adapter trained.

Safety (all tested): a checkpoint (adapter, optimizer, scheduler, step, RNG state, loss
history) at the end of every epoch and every ``save_every_steps`` steps, written to a
temporary folder then renamed; rerunning the same command resumes from the last checkpoint,
and a finished run is a no-op returning its stored result; a NaN or exploding loss stops
with an :class:`LlmrecError` naming the step and keeps the last good checkpoint; Ctrl-C
keeps the last checkpoint too. A time budget (``max_minutes``, ``--max-minutes``) ends a
session cleanly: past it, the step under way finishes, a checkpoint is written and
:class:`TrainingPaused` says where (the command exits with code 3; under ``accelerate
launch``, torchrun reports each process's 3 as a failure and exits with 1); the same command
continues, and a run paused any number of times ends with the weights and losses of one
never paused. A run longer than a machine's life (hours of the ``paper`` profile on 2 cores,
sessions of a few hours on fresh machines) keeps its state in a folder that outlives the
machine (never git: optimizer state): ``--keep DIR`` copies the last checkpoint,
``train_config.json`` and the best adapter so far into ``DIR/<name>/<split>/`` after every
session (:func:`save_state`),
and once the run has finished its adapter, config and ``train_result.json`` only; and back
into an ``out_dir`` that holds less (a fresh machine's) before the next session, or before
chapter 4 evaluates it (:func:`restore_state`); each copy is built in a temporary folder,
then renamed into place, and a kept state of another run is refused, not resumed. A
finished run's stored result names the adapter where it is now, not where it trained.

Only the answer tokens are scored by default (prompt tokens get label -100, alpaca-lora's
``train_on_inputs=False``); ``train_on_inputs=True`` trains on the whole text.

An ``out_dir`` holds ``checkpoints/step-XXXXXXXX/``, the final ``adapter/`` (loadable with
``peft.PeftModel.from_pretrained``) and ``train_result.json`` (config, loss history, speed).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.artifacts import read_json, write_json
from llmrec.errors import LlmrecError
from llmrec.llm.models import load_model
from llmrec.llm.prompts import alpaca_parts
from llmrec.side_by_side import follow_share

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

IGNORE_INDEX = -100
RESULT_FILE = "train_result.json"


@dataclass
class TrainConfig:
    """Every LoRA hyper-parameter in one place; defaults are the blog's full run.

    ``r``, ``alpha``, ``dropout``, ``target_modules``: the LoRA adapter (r 8 on q_proj and
    v_proj gives 4,194,304 trainable parameters on LLaMA-7B, the blog's printed figure).
    ``batch_size`` is the micro-batch; an optimizer step sees ``batch_size * grad_accum``
    records. ``cutoff_len`` truncates prompt + answer (tokens). ``max_train_records`` /
    ``max_valid_records``: a seeded random subset (None: all). ``train_on_inputs``: False
    masks the prompt tokens out of the loss. ``mixed_precision``: None, "bf16" or "fp16"
    (through accelerate). ``quantization``: None, "8bit" or "4bit" base weights (QLoRA via
    bitsandbytes + ``peft.prepare_model_for_kbit_training``). ``max_steps`` stops early
    (smoke). ``save_every_steps``: also checkpoint every N optimizer steps (None: per epoch
    only). ``max_loss``: a step loss above it counts as exploding and stops the run.
    ``validations_per_epoch``: validation passes per epoch, at evenly spaced steps (the last
    at the epoch's end). ``patience``: early stopping: stop after this many validations in a
    row without a lower validation loss, and keep the adapter of the lowest one (None: train
    every epoch and keep the last adapter). ``max_minutes``: this session's time budget: once
    the session's wall time passes it, the step under way finishes, a checkpoint is written
    and :class:`TrainingPaused` is raised (None: no budget); it does not change the result,
    so a rerun with another budget, or none, resumes the same run.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    epochs: int = 10
    batch_size: int = 4
    grad_accum: int = 32
    cutoff_len: int = 256
    max_train_records: int | None = None
    max_valid_records: int | None = None
    train_on_inputs: bool = False
    mixed_precision: str | None = None
    quantization: str | None = None
    gradient_checkpointing: bool = False
    seed: int = 0
    max_steps: int | None = None
    save_every_steps: int | None = None
    keep_checkpoints: int = 2
    max_loss: float = 100.0
    patience: int | None = None
    validations_per_epoch: int = 1
    max_minutes: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Profiles: ``full`` is the blog's scale (alpaca-lora: batch 128 = 4 x 32, 10 epochs, all
#: records). ``cpu`` is what 2 CPU cores train in a few minutes of the report: a seeded
#: sample of 32 of the 3,511 temporal training records and 16 of the 703 validation records,
#: one epoch of 8 records a step (4 steps), cutoff 256 tokens (an Alpaca record is about 185
#: SmolLM2 tokens, the longest about 220: nothing is cut), with a higher learning rate (1e-3,
#: warm-up 1 step) because it takes so few steps; it shows the path, and the ``long`` profile
#: is the run that can show learning. ``quick`` is a notebook's own preview (a minute of
#: training: 32 records, one epoch). ``smoke`` runs the code paths on the tiny model.
#: ``long`` is the CPU's decisive run (hours): every training record for one epoch, the loss
#: of 128 validation records measured 4 times an epoch, early stopping after 2 validations
#: without a new lowest (the adapter of the lowest kept), in the compact prompt
#: (``params/*-long.yaml``).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(epochs=1, batch_size=8, grad_accum=1, cutoff_len=512, max_train_records=32,
                  max_valid_records=8, warmup_steps=0, learning_rate=1e-3),
    "smoke": dict(epochs=2, batch_size=4, grad_accum=1, cutoff_len=512, max_train_records=16,
                  max_valid_records=8, warmup_steps=0, learning_rate=1e-3),
    "cpu": dict(epochs=1, batch_size=8, grad_accum=1, cutoff_len=256, max_train_records=32,
                max_valid_records=16, warmup_steps=1, learning_rate=1e-3),
    "long": dict(epochs=1, batch_size=8, grad_accum=1, cutoff_len=256, max_train_records=None,
                 max_valid_records=128, warmup_steps=8, learning_rate=1e-3, patience=2,
                 validations_per_epoch=4),
    # the published report on 2 CPU cores: every training record, up to 10 epochs (the
    # blog's), stopped when the validation loss has not reached a new lowest for 2 checks
    "paper": dict(epochs=10, batch_size=8, grad_accum=1, cutoff_len=256, max_train_records=None,
                  max_valid_records=256, warmup_steps=16, learning_rate=1e-3, patience=2,
                  validations_per_epoch=2),
    "full": dict(),
}

#: Fields that do not change the result: a rerun may change them and still resume.
_NOT_SEMANTIC = {"save_every_steps", "keep_checkpoints", "max_loss", "max_minutes"}


def _field_types(f: dataclasses.Field) -> tuple[tuple[type, ...], bool]:
    ann = str(f.type)
    base = ann.split("|")[0].strip()
    types = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
             "list[str]": (list,)}[base]
    return types, "None" in ann


def config_for(profile: str = "cpu", **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of ``profile`` with ``overrides`` (e.g. a params file's ``lora``).

    An unknown option, a wrong type or an impossible value raises one :class:`LlmrecError`.
    """
    if profile not in PROFILES:
        raise LlmrecError(f"unknown training profile {profile!r}; use one of {', '.join(PROFILES)}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise LlmrecError(f"unknown lora option {key!r}{hint}; known options: {', '.join(fields)}")
        types, optional = _field_types(fields[key])
        wrong_bool = isinstance(value, bool) and bool not in types
        if not ((value is None and optional) or (isinstance(value, types) and not wrong_bool)):
            raise LlmrecError(f"lora option {key!r} has the wrong type ({type(value).__name__} "
                              f"{value!r}); expected {str(fields[key].type)}")
    config = TrainConfig(**{**PROFILES[profile], **overrides})
    if config.mixed_precision not in (None, "bf16", "fp16"):
        raise LlmrecError(f"lora option 'mixed_precision' must be null, bf16 or fp16, got {config.mixed_precision!r}")
    if config.quantization not in (None, "8bit", "4bit"):
        raise LlmrecError(f"lora option 'quantization' must be null, 8bit or 4bit, got {config.quantization!r}")
    for key in ("r", "alpha", "epochs", "batch_size", "grad_accum", "cutoff_len",
                "validations_per_epoch"):
        if getattr(config, key) < 1:
            raise LlmrecError(f"lora option {key!r} must be at least 1, got {getattr(config, key)}")
    for key in ("patience", "max_train_records", "max_valid_records", "max_steps",
                "save_every_steps"):
        if getattr(config, key) is not None and getattr(config, key) < 1:
            raise LlmrecError(f"lora option {key!r} must be null or at least 1, got {getattr(config, key)}")
    for key in ("warmup_steps", "keep_checkpoints"):
        least = 0 if key == "warmup_steps" else 1
        if getattr(config, key) < least:
            raise LlmrecError(f"lora option {key!r} must be at least {least}, got {getattr(config, key)}")
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise LlmrecError(f"lora option 'learning_rate' must be a number above 0, got {config.learning_rate}")
    for key in ("max_grad_norm", "max_loss"):  # .inf switches clipping / the loss guard off
        if not getattr(config, key) > 0:  # NaN fails too
            raise LlmrecError(f"lora option {key!r} must be above 0 (.inf: no limit), got {getattr(config, key)}")
    if config.max_minutes is not None and not config.max_minutes > 0:  # NaN fails too
        raise LlmrecError(f"lora option 'max_minutes' must be null (no budget) or minutes above 0, "
                          f"got {config.max_minutes}")
    if not (math.isfinite(config.weight_decay) and config.weight_decay >= 0):
        raise LlmrecError(f"lora option 'weight_decay' must be 0 or more, got {config.weight_decay}")
    if not 0 <= config.dropout < 1:  # NaN fails too
        raise LlmrecError(f"lora option 'dropout' must be in [0, 1), got {config.dropout}")
    if not config.target_modules or not all(isinstance(m, str) for m in config.target_modules):
        raise LlmrecError("lora option 'target_modules' must be a non-empty list of module names")
    return config


@dataclass
class TrainResult:
    """What a training run produced (also ``out_dir/train_result.json``).

    ``history``: one dict per epoch (``epoch``, ``step``, ``train_loss`` = token-weighted
    mean over the epoch's steps, ``valid_loss``; epoch 0 is the untrained validation loss;
    a run stopped by ``max_steps`` mid-epoch ends with a fractional epoch). ``step_log``:
    one dict per optimizer step (``step``, ``epoch``, ``loss``, ``tokens``, ``lr``).
    ``world_size``: the processes that trained (``accelerate launch``: one per GPU), each on
    its own share of every epoch's batches; ``batches_per_process``: the training
    micro-batches each one ran in this session. ``best_epoch``: the epoch whose adapter was
    kept (the lowest validation loss under early stopping, else the last); ``stopped_early``:
    training stopped before its last epoch because the validation loss stopped falling.
    ``train_tokens``: non-padding tokens through forward and backward; ``tokens_per_s`` is
    that over ``train_seconds`` (training steps only); ``wall_seconds`` adds validation and
    checkpoints, summed over resumed sessions.
    """

    out_dir: str
    adapter_dir: str
    model_name: str
    config: dict[str, Any]
    n_train: int
    n_valid: int
    n_truncated: int
    steps: int
    history: list[dict[str, Any]]
    step_log: list[dict[str, Any]]
    train_tokens: int
    train_seconds: float
    wall_seconds: float
    tokens_per_s: float
    trainable_params: int
    all_params: int
    trainable_line: str
    resumed_from_step: int | None = None
    finished_utc: str = ""
    data_fingerprint: str = ""
    world_size: int = 1
    batches_per_process: list[int] = field(default_factory=list)
    best_epoch: float | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def first_loss(self) -> float | None:
        return self.step_log[0]["loss"] if self.step_log else None

    @property
    def final_loss(self) -> float | None:
        return self.step_log[-1]["loss"] if self.step_log else None


class TrainingPaused(LlmrecError):
    """The session's time budget (``max_minutes``) ran out: the run stopped after a step,
    with a checkpoint of it, and the same command continues it.

    Its message is one line: the step reached out of the total, the minutes the session
    took, the checkpoint, and "rerun the same command to continue". ``step``, ``total``,
    ``minutes`` and ``checkpoint`` carry the same for code (the ``train`` command exits
    with code 3 on it, after keeping the state with ``--keep``).
    """

    def __init__(self, step: int, total: int, minutes: float, checkpoint: Path) -> None:
        self.step, self.total, self.minutes, self.checkpoint = step, total, minutes, checkpoint
        super().__init__(f"training paused at step {step} of {total} after {minutes:.1f} minutes "
                         f"(the lora.max_minutes budget); checkpoint in {checkpoint}; "
                         "rerun the same command to continue")


# ---------------------------------------------------------------- data: text pairs -> tokens


def training_pairs(examples: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``{"prompt", "answer"}`` text pairs from Alpaca examples (``records.to_alpaca``).

    :func:`llmrec.llm.prompts.alpaca_parts`: the prompt is the Alpaca prompt of the input titles
    (ending with the response header, exactly what ``alpaca_prompt`` gives at evaluation),
    the answer the target titles joined by `` => ``. Pairs pass through.
    """
    pairs = []
    for ex in examples:
        if "prompt" in ex and "answer" in ex:
            pairs.append({"prompt": ex["prompt"], "answer": ex["answer"]})
            continue
        prompt, answer = alpaca_parts(ex["input"].split(" => "), ex["output"].split(" => "))
        pairs.append({"prompt": prompt, "answer": answer})
    return pairs


def tokenize_pair(tokenizer: Any, prompt: str, answer: str, cutoff_len: int,
                  train_on_inputs: bool = False) -> dict[str, list[int]]:
    """Token ids and labels for one pair: prompt and answer tokenized apart, EOS appended.

    Prompt tokens are labelled -100 (no loss) unless ``train_on_inputs``; the answer and EOS
    carry their ids. Tokenizing apart makes the boundary exact and matches evaluation, where
    the model continues the tokenized prompt. Truncated to ``cutoff_len`` on the right.
    """
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        answer_ids.append(tokenizer.eos_token_id)
    ids = (prompt_ids + answer_ids)[:cutoff_len]
    labels = (prompt_ids if train_on_inputs else [IGNORE_INDEX] * len(prompt_ids)) + answer_ids
    return {"input_ids": ids, "labels": labels[:cutoff_len],
            "truncated": len(prompt_ids) + len(answer_ids) > cutoff_len}


def _subset(items: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(items):
        return list(items)
    return random.Random(seed).sample(items, n)


def _batches(features: list[dict], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, in a seeded order per epoch.

    A seeded shuffle, then a stable sort by length, then chunks: little padding, and the
    order is a function of (seed, epoch) only, so a resumed run sees the same batches.
    """
    order = list(range(len(features)))
    rng = random.Random(seed * 100_003 + epoch)
    rng.shuffle(order)
    order.sort(key=lambda i: len(features[i]["input_ids"]))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    return chunks


def collate(features: Sequence[dict], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    import torch

    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.tensor(f["input_ids"])
        labels[row, :n] = torch.tensor(f["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _batch_loss(model: Any, batch: Mapping[str, Any]) -> tuple[Any, int]:
    """Summed cross-entropy over the labelled tokens of a batch, and their count.

    Logits are computed only from the first labelled position on (``logits_to_keep``): with
    the prompt masked this skips most of the vocabulary projection, a large share of the
    compute for models with big vocabularies (Gemma 3: 262k).
    """
    import torch.nn.functional as F

    labels = batch["labels"]
    labelled = labels != IGNORE_INDEX
    n_tokens = int(labelled.sum())
    width = labels.shape[1]
    if n_tokens == 0:
        start = width - 1
    else:
        first = labelled.int().argmax(dim=1)[labelled.any(dim=1)]
        start = max(int(first.min()) - 1, 0)
    keep = width - start
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                logits_to_keep=keep, use_cache=False)
    logits = out.logits
    if logits.shape[1] != keep:  # a model that ignores logits_to_keep
        logits = logits[:, start:]
    logits = logits[:, :-1].float()
    targets = labels[:, start + 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, n_tokens


# ---------------------------------------------------------------- model


def lora_config(config: TrainConfig):
    """The ``peft.LoraConfig`` of a :class:`TrainConfig`."""
    from peft import LoraConfig

    return LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), bias="none",
                      task_type="CAUSAL_LM")


def make_lora_model(base_model: Any, config: TrainConfig):
    """Wrap ``base_model`` with the LoRA adapter of ``config`` (seeded initialisation).

    For a quantized base, ``peft.prepare_model_for_kbit_training`` runs first (QLoRA).
    Works on a meta-device model too (the LLaMA-7B parameter count check).
    """
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    if getattr(base_model, "is_loaded_in_8bit", False) or getattr(base_model, "is_loaded_in_4bit", False):
        base_model = prepare_model_for_kbit_training(
            base_model, use_gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
        # bitsandbytes (0.50) repacks a 4-bit layer for its AVX512-BF16 CPU kernel the first
        # time it runs in eval mode, and that kernel has no backward: after the first
        # validation pass nothing would learn. Training keeps the differentiable layout.
        for module in base_model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    elif config.gradient_checkpointing:
        base_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(config.seed)
    try:
        return get_peft_model(base_model, lora_config(config))
    except ValueError as err:
        raise LlmrecError(f"LoRA could not wrap the model ({str(err).splitlines()[0]}); "
                          "set lora.target_modules to module names the model has") from None


def trainable_line(peft_model: Any) -> str:
    """peft's ``print_trainable_parameters`` line: ``trainable params: 4,194,304 || all params: ...``."""
    trainable, total = peft_model.get_nb_trainable_parameters()
    return (f"trainable params: {trainable:,d} || all params: {total:,d} || "
            f"trainable%: {100 * trainable / total:.4f}")


def load_tuned(model_name: str, adapter_dir: str | Path, dtype: str = "auto",
               quantization: str | None = None, device: str = "auto", merge: bool = True):
    """``(model, tokenizer)``: the base model with the trained adapter, ready to generate.

    ``merge`` folds the adapter into the weights (same outputs, faster generation); a
    quantized base keeps the adapter separate.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise LlmrecError(f"no trained adapter in {adapter_dir}; run `python -m llmrec train` first")
    model, tokenizer = load_model(model_name, dtype=dtype, quantization=quantization, device=device)
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    if merge and quantization is None:
        model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


# ---------------------------------------------------------------- checkpoints


def _checkpoints(out_dir: Path) -> list[Path]:
    folder = out_dir / "checkpoints"
    if not folder.is_dir():
        return []
    done = [p for p in folder.glob("step-*") if (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def _save_checkpoint(out_dir: Path, model: Any, optimizer: Any, scheduler: Any,
                     state: dict[str, Any], keep: int) -> Path:
    """Write a checkpoint into a temporary folder, then rename it: never half-written."""
    import torch

    folder = out_dir / "checkpoints"
    final = folder / f"step-{state['step']:08d}"
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": rng}, tmp / "trainer_state.pt")
    write_json(tmp / "state.json", state)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in _checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(folder / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    blob = torch.load(folder / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"]["torch"])
    random.setstate(blob["rng"]["python"])
    if "cuda" in blob["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["rng"]["cuda"])
    return read_json(folder / "state.json")


def _run_key(model_name: str, config: TrainConfig, fingerprint: str) -> dict[str, Any]:
    cfg = {k: v for k, v in config.to_dict().items() if k not in _NOT_SEMANTIC}
    return {"model_name": str(model_name), "config": cfg, "data_fingerprint": fingerprint}


def _check_same_run(stored: Mapping[str, Any], key: Mapping[str, Any], out_dir: Path,
                    fix: str = "pass another --out (out_dir) or delete that folder") -> None:
    for name in ("model_name", "data_fingerprint"):
        if stored.get(name) != key[name]:
            raise LlmrecError(f"{out_dir} holds a training run with a different {name.replace('_', ' ')}; "
                              f"{fix}")
    old = {k: v for k, v in stored.get("config", {}).items() if k not in _NOT_SEMANTIC}
    for name, value in key["config"].items():
        if old.get(name) != value:
            raise LlmrecError(f"{out_dir} holds a training run with {name}={old.get(name)!r}, not "
                              f"{value!r}; {fix}")


def run_key(model_name: str, train_examples: Sequence[Mapping[str, Any]],
            valid_examples: Sequence[Mapping[str, Any]], config: TrainConfig) -> dict[str, Any]:
    """What makes two trainings the same run (model, the options that change the result, the
    fingerprint of the records drawn), as :func:`train_lora` stores it in
    ``train_config.json``: lets :func:`restore_state` refuse a kept state of another run
    before hours are spent, without loading the model."""
    train_pairs = _subset(training_pairs(train_examples), config.max_train_records, config.seed)
    valid_pairs = _subset(training_pairs(valid_examples), config.max_valid_records, config.seed)
    return _run_key(model_name, config, _fingerprint(train_pairs + valid_pairs))


def _fingerprint(pairs: Sequence[Mapping[str, str]]) -> str:
    blob = json.dumps([[p["prompt"], p["answer"]] for p in pairs], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- the loop


def _valid_loss(model: Any, features: list[dict], batch_size: int, pad_id: int, device: Any,
                accelerator: Any) -> float | None:
    import torch

    if not features:
        return None
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    order = order[accelerator.process_index::accelerator.num_processes]  # each process its share
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            batch = collate([features[j] for j in order[i:i + batch_size]], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with accelerator.autocast():
                loss, n = _batch_loss(model, batch)
            total += float(loss)
            count += n
    model.train()
    stats = accelerator.reduce(torch.tensor([total, float(count)], device=device), reduction="sum")
    return float(stats[0] / stats[1]) if float(stats[1]) else None


BEST_ADAPTER = "best-adapter"


def _save_adapter(model: Any, folder: Path) -> None:
    """Save the adapter into a temporary folder, then rename it: never half-written."""
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _validation_points(steps: int, per_epoch: int) -> set[int]:
    """The steps of an epoch (1-based) after which the validation loss is measured: ``per_epoch``
    evenly spaced ones, the last at the epoch's end."""
    return {max(1, round(steps * (i + 1) / per_epoch)) for i in range(per_epoch)}


def _early_stopping(state: dict[str, Any], valid: float, epoch: float, patience: int,
                    save_best: Callable[[], None], last_epoch: int) -> None:
    """Track the lowest validation loss in ``state``; save the adapter when it falls; mark
    ``stopped_early`` after ``patience`` validations in a row without a new lowest (before the
    end of ``last_epoch``: after it there is nothing left to skip). ``epoch``: where the
    validation happened (fractional within an epoch)."""
    if state["best_valid"] is None or valid < state["best_valid"]:
        state["best_valid"], state["best_epoch"], state["bad_epochs"] = valid, epoch, 0
        save_best()
    else:
        state["bad_epochs"] += 1
        state["stopped_early"] = state["bad_epochs"] >= patience and epoch < last_epoch


def _epoch_entry(epoch: float, step: int, log: list[dict], valid: float | None) -> dict[str, Any]:
    tokens = sum(s["tokens"] for s in log)
    train = sum(s["loss"] * s["tokens"] for s in log) / tokens if tokens else None
    return {"epoch": epoch, "step": step, "train_loss": train, "valid_loss": valid}


def train_lora(
    model_name: str,
    train_examples: Sequence[Mapping[str, Any]],
    valid_examples: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    dtype: str = "auto",
    device: str = "auto",
    callback: Callable[[int, float], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a LoRA adapter of ``model_name`` on ``train_examples``; validate each epoch.

    Examples are Alpaca dicts (``records.to_alpaca``) or ``{"prompt", "answer"}`` pairs;
    pass only the split's training part here, its validation part as ``valid_examples``.
    Resumes from the last checkpoint in ``out_dir``; returns the stored result when the run
    there has finished. ``callback(step, loss)`` is called after every optimizer step.
    Raises :class:`TrainingPaused` when the session passes ``config.max_minutes``, after
    the step under way and its checkpoint.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    config = config or config_for("full")
    out_dir = Path(out_dir)
    train_pairs = _subset(training_pairs(train_examples), config.max_train_records, config.seed)
    valid_pairs = _subset(training_pairs(valid_examples), config.max_valid_records, config.seed)
    if not train_pairs:
        raise LlmrecError("no training examples; pass the split's training part")
    fingerprint = _fingerprint(train_pairs + valid_pairs)
    key = _run_key(model_name, config, fingerprint)

    result_path = out_dir / RESULT_FILE
    if result_path.is_file():
        stored = read_json(result_path)
        _check_same_run(stored, key, out_dir)
        print(f"training already finished in {out_dir}: returning the stored result")
        return _stored_result(stored, out_dir)

    session_start = time.perf_counter()
    # accelerate keeps one process-wide state; a notebook or test may train again with
    # another precision (the distributed set-up, PartialState, is kept)
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=config.mixed_precision or "no",
                              cpu=device == "cpu")
    load_device = "cpu"
    if config.quantization and accelerator.device.type == "cuda":
        load_device = f"cuda:{accelerator.local_process_index}"
    base, tokenizer = load_model(model_name, dtype=dtype, quantization=config.quantization,
                                 device=load_device)
    model = make_lora_model(base, config)
    line = trainable_line(model)
    n_trainable, n_all = model.get_nb_trainable_parameters()
    accelerator.print(line)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def features(pairs):
        return [tokenize_pair(tokenizer, p["prompt"], p["answer"], config.cutoff_len,
                              config.train_on_inputs) for p in pairs]

    train_feats, valid_feats = features(train_pairs), features(valid_pairs)
    n_truncated = sum(f["truncated"] for f in train_feats + valid_feats)
    if n_truncated:
        accelerator.print(f"warning: {n_truncated} examples longer than cutoff_len={config.cutoff_len} "
                          "were cut; those left with no answer token are skipped")
    train_feats = [f for f in train_feats if any(x != IGNORE_INDEX for x in f["labels"])]
    valid_feats = [f for f in valid_feats if any(x != IGNORE_INDEX for x in f["labels"])]
    if not train_feats:
        raise LlmrecError(f"cutoff_len={config.cutoff_len} cuts every answer off its prompt; "
                          "raise lora.cutoff_len above the prompt length in tokens")

    world, rank = accelerator.num_processes, accelerator.process_index

    def epoch_steps(epoch: int) -> list[list[list[int]]]:
        batches = _batches(train_feats, config.batch_size, config.seed, epoch)
        per_rank = len(batches) // world if world > 1 else len(batches)
        mine = batches[rank::world][:per_rank] if world > 1 else batches
        return [mine[i:i + config.grad_accum] for i in range(0, len(mine), config.grad_accum)]

    steps_per_epoch = len(epoch_steps(0))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    unwrapped = accelerator.unwrap_model(model)

    state: dict[str, Any] = {"step": 0, "epoch": 0, "step_in_epoch": 0, "history": [],
                             "step_log": [], "train_tokens": 0, "train_seconds": 0.0,
                             "wall_seconds": 0.0, "best_valid": None, "best_epoch": None,
                             "bad_epochs": 0, "stopped_early": False, **key}
    resumed_from = None
    done = _checkpoints(out_dir)
    if done:
        stored = read_json(done[-1] / "state.json")
        _check_same_run(stored, key, out_dir)
        state = _load_checkpoint(done[-1], unwrapped, optimizer, scheduler)
        resumed_from = state["step"]
        accelerator.print(f"resuming from {done[-1]} (step {resumed_from})")
    else:
        if accelerator.is_main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(out_dir / "train_config.json", {**key, "config": config.to_dict(),
                                                       "trainable_line": line})
        valid0 = _valid_loss(model, valid_feats, config.batch_size, pad_id, device, accelerator)
        state["history"].append({"epoch": 0, "step": 0, "train_loss": None, "valid_loss": valid0})

    def checkpoint() -> None:
        state["wall_seconds"] = wall_before + time.perf_counter() - session_start
        if accelerator.is_main_process:
            _save_checkpoint(out_dir, unwrapped, optimizer, scheduler, state,
                             config.keep_checkpoints)
        accelerator.wait_for_everyone()

    def out_of_time() -> bool:
        """Past the session's budget? Under several processes, one past it stops them all
        at the same step (each would otherwise wait for the others at the next one)."""
        if config.max_minutes is None:
            return False
        over = time.perf_counter() - session_start > config.max_minutes * 60
        if world > 1:
            over = bool(accelerator.reduce(torch.tensor(float(over), device=device),
                                           reduction="sum") > 0)
        return over

    wall_before = state["wall_seconds"]
    n_micro = 0  # training micro-batches this process ran
    model.train()
    bar = tqdm(total=total_steps, initial=state["step"], desc=f"LoRA {model_name}",
               unit="step", disable=not (progress and accelerator.is_local_main_process))
    try:
        for epoch in range(state["epoch"], config.epochs):
            if state["step"] >= total_steps or state.get("stopped_early"):
                break
            steps = epoch_steps(epoch)
            for k in range(state["step_in_epoch"], len(steps)):
                follow_share()  # a chain left alone takes the idle core (llmrec.side_by_side)
                t0 = time.perf_counter()
                micro = [collate([train_feats[i] for i in b], pad_id) for b in steps[k]]
                n_labelled = sum(int((m["labels"] != IGNORE_INDEX).sum()) for m in micro)
                step_loss, step_tokens = 0.0, 0
                for j, batch in enumerate(micro):
                    n_micro += 1
                    batch = {name: v.to(device) for name, v in batch.items()}
                    sync = j == len(micro) - 1
                    with nullcontext() if sync else accelerator.no_sync(model):
                        with accelerator.autocast():
                            loss_sum, _ = _batch_loss(model, batch)
                        loss = loss_sum / max(n_labelled, 1)
                        accelerator.backward(loss)
                    step_loss += float(loss.detach())
                    step_tokens += int(batch["attention_mask"].sum())
                step_loss = float(accelerator.reduce(torch.tensor(step_loss, device=device),
                                                     reduction="mean"))
                step_no = state["step"] + 1
                if not math.isfinite(step_loss) or step_loss > config.max_loss:
                    optimizer.zero_grad(set_to_none=True)
                    last = _checkpoints(out_dir)
                    kept = f"last good checkpoint {last[-1]} kept" if last else "no checkpoint yet"
                    raise LlmrecError(
                        f"training loss is {step_loss} at step {step_no} (epoch {epoch + 1}); "
                        f"stopped, {kept}; lower lora.learning_rate or use float32, then rerun")
                accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["train_seconds"] += time.perf_counter() - t0
                state["train_tokens"] += step_tokens * world
                state["step"], state["step_in_epoch"] = step_no, k + 1
                state["step_log"].append({"step": step_no, "epoch": epoch + 1, "loss": step_loss,
                                          "tokens": n_labelled, "lr": lr})
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.3f}", epoch=epoch + 1)
                if callback is not None:
                    callback(step_no, step_loss)
                at_end = k + 1 == len(steps)
                stop = step_no >= total_steps
                midway = (k + 1) in _validation_points(len(steps), config.validations_per_epoch)
                if at_end or stop or midway:
                    log = [s for s in state["step_log"] if s["epoch"] == epoch + 1
                           and s["step"] > state.get("last_validated_step", 0)]
                    state["last_validated_step"] = step_no
                    valid = _valid_loss(model, valid_feats, config.batch_size, pad_id, device,
                                        accelerator)
                    when = epoch + 1 if at_end else round(epoch + (k + 1) / len(steps), 4)
                    state["history"].append(_epoch_entry(when, step_no, log, valid))
                    if at_end:
                        state["epoch"], state["step_in_epoch"] = epoch + 1, 0
                    if config.patience is not None and valid is not None:
                        _early_stopping(state, valid, when, config.patience,
                                        lambda: _save_adapter(unwrapped, out_dir / BEST_ADAPTER)
                                        if accelerator.is_main_process else None,
                                        config.epochs)
                        stop = stop or state["stopped_early"]
                    checkpoint()
                    saved = True
                elif config.save_every_steps and step_no % config.save_every_steps == 0:
                    checkpoint()
                    saved = True
                else:
                    saved = False
                if stop:
                    break
                if out_of_time():
                    if not saved:
                        checkpoint()
                    minutes = (time.perf_counter() - session_start) / 60
                    last = out_dir / "checkpoints" / f"step-{step_no:08d}"
                    raise TrainingPaused(step_no, total_steps, minutes, last)
    except KeyboardInterrupt:
        last = _checkpoints(out_dir)
        where = f"{last[-1]} (step {last[-1].name.split('-')[1].lstrip('0') or 0})" if last else "none yet"
        accelerator.print(f"interrupted at step {state['step']}; last checkpoint: {where}; "
                          "rerun the same command to resume")
        raise
    finally:
        bar.close()

    wall = wall_before + time.perf_counter() - session_start
    per_process = accelerator.gather(torch.tensor([n_micro], device=device)).tolist()
    adapter_dir = out_dir / "adapter"
    best = out_dir / BEST_ADAPTER
    if accelerator.is_main_process:
        if config.patience is not None and best.is_dir():  # the best epoch's, not the last one's
            shutil.rmtree(adapter_dir, ignore_errors=True)
            shutil.copytree(best, adapter_dir)
        else:
            _save_adapter(unwrapped, adapter_dir)
    last_epoch = state["history"][-1]["epoch"] if state["history"] else None
    result = TrainResult(
        out_dir=str(out_dir), adapter_dir=str(adapter_dir), model_name=str(model_name),
        config=config.to_dict(), n_train=len(train_pairs), n_valid=len(valid_pairs),
        n_truncated=n_truncated, steps=state["step"], history=state["history"],
        step_log=state["step_log"], train_tokens=state["train_tokens"],
        train_seconds=round(state["train_seconds"], 3), wall_seconds=round(wall, 3),
        tokens_per_s=round(state["train_tokens"] / state["train_seconds"], 2)
        if state["train_seconds"] else 0.0,
        trainable_params=int(n_trainable), all_params=int(n_all), trainable_line=line,
        resumed_from_step=resumed_from,
        finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        data_fingerprint=fingerprint, world_size=world, batches_per_process=per_process,
        best_epoch=state["best_epoch"] if config.patience is not None and best.is_dir() else last_epoch,
        stopped_early=bool(state["stopped_early"]),
    )
    if accelerator.is_main_process:
        write_json(result_path, result.to_dict())
        for old in _checkpoints(out_dir)[:-1]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return result


def load_result(out_dir: str | Path) -> TrainResult:
    """The stored :class:`TrainResult` of a finished run in ``out_dir``."""
    path = Path(out_dir) / RESULT_FILE
    if not path.is_file():
        raise LlmrecError(f"no finished training run in {out_dir} ({RESULT_FILE} missing); "
                          "run `python -m llmrec train` or notebook 04 first")
    return _stored_result(read_json(path), Path(out_dir))


def _stored_result(stored: Mapping[str, Any], out_dir: Path) -> TrainResult:
    """A stored result whose paths are those of ``out_dir`` as it is now: a run restored from
    a kept state (:func:`restore_state`) or moved was trained in another folder, perhaps on
    another machine, and its adapter is the one beside the result."""
    return TrainResult(**{**stored, "out_dir": str(out_dir),
                          "adapter_dir": str(out_dir / "adapter")})


def history_frame(result: TrainResult | str | Path):
    """Loss per epoch in long form: ``epoch``, ``step``, ``part`` (train/valid), ``loss``.

    Takes a :class:`TrainResult` or a run's ``out_dir``: the data behind the blog's loss
    figure, one run or (concatenated, with a model column) several.
    """
    import pandas as pd

    if not isinstance(result, TrainResult):
        result = load_result(result)
    rows = [{"epoch": h["epoch"], "step": h["step"], "part": part, "loss": h[f"{part}_loss"]}
            for h in result.history for part in ("train", "valid")
            if h[f"{part}_loss"] is not None]
    return pd.DataFrame(rows, columns=["epoch", "step", "part", "loss"])


# ---------------------------------------------------------------- keeping the state elsewhere
#
# A long run outlives the machine it started on: the ``train`` command's ``--keep DIR`` copies
# what resuming needs out of ``out_dir`` after every session and back before the next one.


def kept_dir(keep: str | Path, name: str, split: str) -> Path:
    """Where ``--keep DIR`` keeps the state of the run ``name`` on ``split``: ``DIR/<name>/<split>``."""
    return Path(keep) / name / split


def _progress(folder: Path) -> tuple[bool, int]:
    """How far the run in ``folder`` got: (finished, its step): a finished run's steps from
    its result (it may be kept without checkpoints), else its last checkpoint's step, -1
    for none."""
    if (folder / RESULT_FILE).is_file():
        return True, int(read_json(folder / RESULT_FILE).get("steps", -1))
    done = _checkpoints(folder)
    return False, int(done[-1].name.split("-")[1]) if done else -1


def _state_items(folder: Path) -> list[Path]:
    """What a kept state holds, in the order it is put in place. An unfinished run: the
    last checkpoint (older ones add nothing to a resume), the run's config and the best
    adapter so far (early stopping goes on from it). A finished run: its config, the
    adapter and the result, no checkpoint (nothing resumes a finished run), so that the
    state of a published run stays a few MB. The result comes last, since its presence
    marks the run finished (a crash before it leaves an unfinished run, which resumes)."""
    if (folder / RESULT_FILE).is_file():
        names = ("train_config.json", "adapter", RESULT_FILE)
        return [p for p in (folder / n for n in names) if p.exists()]
    done = _checkpoints(folder)
    items = [done[-1]] if done else []
    items += [folder / n for n in ("train_config.json", "adapter", BEST_ADAPTER)]
    return [p for p in items if p.exists()]


def _swap_in(new: Path, final: Path) -> None:
    """Put ``new`` (file or folder) at ``final`` by renames: a folder there is renamed aside
    and deleted after, so ``final`` is at every moment the old whole or the new whole."""
    final.parent.mkdir(parents=True, exist_ok=True)
    aside = final.parent / f".old-{final.name}-{os.getpid()}"
    if final.is_dir():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
    os.replace(new, final)
    shutil.rmtree(aside, ignore_errors=True)


def _leftovers(saved: Path, kind: str) -> list[Path]:
    """The ``.<kind>-<name>-<pid>`` folders beside ``saved`` (``old``: renamed aside, ``tmp``:
    being built) that a save cut off left behind."""
    return [p for p in saved.parent.glob(f".{kind}-{saved.name}-*")
            if p.name.rsplit("-", 1)[0] == f".{kind}-{saved.name}" and p.name.rsplit("-", 1)[1].isdigit()]


def _kept_source(saved: Path) -> Path | None:
    """The kept state at ``saved``; a save cut off between its two renames leaves it beside,
    as ``.old-<name>-<pid>``, and that one is taken then."""
    found = [p for p in [saved, *_leftovers(saved, "old")]
             if p.is_dir() and _progress(p) > (False, -1)]
    return max(found, key=_progress) if found else None


def _same_run_files(a: Path, b: Path) -> bool:
    """Whether two folders' ``train_config.json`` describe the same run (True when either has none)."""
    if not ((a / "train_config.json").is_file() and (b / "train_config.json").is_file()):
        return True
    other = read_json(b / "train_config.json")
    key = {**other, "config": {k: v for k, v in other.get("config", {}).items() if k not in _NOT_SEMANTIC}}
    try:
        _check_same_run(read_json(a / "train_config.json"), key, a)
    except LlmrecError:
        return False
    return True


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _describe(step: int, finished: bool, size: int) -> str:
    return f"step {step}, {'finished' if finished else 'unfinished'}, {size / 2**20:.2f} MiB"


def restore_state(saved: str | Path, out_dir: str | Path,
                  key: Mapping[str, Any] | None = None) -> str | None:
    """Copy the kept state at ``saved`` (:func:`save_state`) into ``out_dir`` when it is
    further on than what ``out_dir`` holds (nothing, on a fresh machine); returns the line
    saying what was restored, or None when nothing was.

    ``key`` (:func:`run_key`): the run about to train; a kept state of another run raises a
    one-line :class:`LlmrecError` instead of being resumed or overwritten. A state ``out_dir``
    already holds of another run is left alone (:func:`train_lora` then names it). Each
    item is copied into a temporary folder inside ``out_dir`` and renamed into place, the
    result last: an interrupted restore leaves a run that resumes, or restores again.
    """
    saved, out_dir = Path(saved), Path(out_dir)
    source = _kept_source(saved)
    if source is None:
        return None
    if key is not None and (source / "train_config.json").is_file():
        _check_same_run(read_json(source / "train_config.json"), key, source,
                        fix="delete that folder to start afresh, or pass another --keep")
    if _progress(source) <= _progress(out_dir) or not _same_run_files(source, out_dir):
        return None
    items = _state_items(source)
    tmp = out_dir / f".tmp-restore-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for item in items:
        rel = item.relative_to(source)
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / rel)
    for item in items:
        rel = item.relative_to(source)
        _swap_in(tmp / rel, out_dir / rel)
    shutil.rmtree(tmp, ignore_errors=True)
    finished, step = _progress(source)
    return f"restored the kept training state ({_describe(step, finished, _size(source))}) from {source} into {out_dir}"


def save_state(out_dir: str | Path, saved: str | Path) -> str | None:
    """Keep the state of the run in ``out_dir`` at ``saved`` (e.g. ``DIR/<name>/<split>``):
    what resuming it or using its result needs, and no more: the last
    checkpoint only, ``train_config.json``, and ``adapter/``, the best adapter and
    ``train_result.json`` when present. Returns the line saying what was kept, or None
    when there was nothing to keep (no checkpoint yet) or ``saved`` holds the same run
    further on; either way the state at ``saved`` stays as it was.

    Built in a temporary folder beside ``saved``, then renamed into place (the old one
    renamed aside first and deleted after): a crash never leaves half a state there.
    """
    out_dir, saved = Path(out_dir), Path(saved)
    finished, step = _progress(out_dir)
    if (finished, step) == (False, -1):
        return None
    before = _kept_source(saved)
    if before is not None and _progress(before) > (finished, step) and _same_run_files(before, out_dir):
        return None
    tmp = saved.parent / f".tmp-{saved.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for item in _state_items(out_dir):
        rel = item.relative_to(out_dir)
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / rel)
    _swap_in(tmp, saved)
    for left in [*_leftovers(saved, "old"), *_leftovers(saved, "tmp")]:
        shutil.rmtree(left, ignore_errors=True)  # what saves cut off earlier left behind
    return f"kept the training state ({_describe(step, finished, _size(saved))}) in {saved}"


# ---------------------------------------------------------------- CLI


def default_out_dir(run_dir: str | Path, split: str) -> Path:
    """Where a run's training goes: ``run_dir`` itself for the primary (temporal) split,
    ``run_dir/lora-<split>`` for another split (so the two never mix)."""
    return Path(run_dir) if split == "temporal" else Path(run_dir) / f"lora-{split}"


def seed_dir(run_dir: str | Path, split: str, seed: int) -> Path:
    """Where chapter 4's adapter of ``split`` trains with another seed than the run's:
    ``run_dir/seeds/<split>-seed<seed>`` (the spread across training seeds)."""
    return Path(run_dir) / "seeds" / f"{split}-seed{seed}"


def curve_dir(run_dir: str | Path, split: str, style: str, name: str) -> Path:
    """Where a learning-curve point trains (:mod:`llmrec.llm.learning_curve`):
    ``run_dir/curve/<split>/<style>-<name>`` (``name``: its training records, or ``all``)."""
    return Path(run_dir) / "curve" / split / f"{style}-{name}"


def tuned_dir(run_dir: str | Path, split: str, style: str = "alpaca") -> Path:
    """Where chapter 4's tuned model of ``split`` trains: the Alpaca adapter (the blog's format)
    in :func:`default_out_dir`, a compact one at the learning curve's largest point (one
    training serves both)."""
    return default_out_dir(run_dir, split) if style == "alpaca" else curve_dir(run_dir, split, style, "all")


def adapter_in(run_dir: str | Path, split: str, style: str = "alpaca") -> Path | None:
    """The trained LoRA adapter of ``split`` in the run folder ``run_dir``, or None."""
    folder = tuned_dir(run_dir, split, style) / "adapter"
    return folder if (folder / "adapter_config.json").is_file() else None
