"""Parameter files: one YAML file per model in ``params/``, validated before anything runs.

The keys are flat (``lora`` and ``decoding`` are small dicts) so that papermill can inject
a file straight into a notebook's ``parameters`` cell
(``papermill nb.ipynb out.ipynb -f params/gemma3-270m.yaml``). A notebook's first code
cell after the parameters is ``P = collect(globals())``: it picks the schema's keys from
the notebook's variables, fills defaults, and validates. An unknown key or a wrong type
is one :class:`LlmrecError` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llmrec.errors import LlmrecError
from llmrec.paths import resolve_run_dir

# key: (allowed types, default, meaning)
SCHEMA: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "name": ((str,), "smollm2-135m", "run name: the run folder and the system names carry it"),
    "model": ((str,), "smollm2-135m", "embedded name, Hugging Face id, or a local folder"),
    "hf_id": ((str, type(None)), None, "the Hugging Face id this file stands for (documentation)"),
    "hardware": ((str,), "CPU, 2 cores", "the hardware this file needs (documentation)"),
    "profile": ((str,), "cpu", "smoke | cpu | full: how much training and evaluation"),
    "dtype": ((str,), "auto", "auto | float32 | bfloat16 | float16"),
    "quantization": ((str, type(None)), None, "null | 8bit | 4bit (bitsandbytes)"),
    "device": ((str,), "auto", "auto | cpu | cuda"),
    "dataset": ((str, type(None)), None, "null for the embedded ml-100k, else a MovieLens folder"),
    "seed": ((int,), 0, "seed for everything random"),
    "splits": ((list,), ["temporal", "blog"], "splits evaluated (temporal is primary)"),
    "eval_limit": ((int, type(None)), None, "evaluate only the first N test records (smoke only)"),
    "beam_limit": ((int, type(None)), None,
                   "beam-search passes (LoRA beam, constrained beam) score only the first N test "
                   "records (null: all); the cpu profile's cost cap, stated in n_records"),
    "batch_size": ((int,), 16, "generation batch size"),
    "max_new_tokens": ((int,), 48, "generation budget per completion"),
    "presets": ((list,), ["greedy"], "decoding presets for zero- and few-shot"),
    "n_shots": ((int,), 2, "worked examples in the few-shot prompt"),
    "matcher": ((str,), "normalized", "title matcher: common_chars | levenshtein | normalized | embedding"),
    "lora": ((dict,), {}, "LoRA training options (see llmrec.train.LoraConfig)"),
    "lora_presets": ((list,), ["beam4", "greedy"], "decoding presets for the tuned model"),
    "chapters": ((list, type(None)), None, "notebooks to run (null: all)"),
    "run_dir": ((str,), "runs/dev", "where this run writes its artefacts"),
    "interactive": ((bool,), False, "build widgets (set True in JupyterLab; papermill runs keep False)"),
}

PROFILES = ("smoke", "cpu", "full")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANT = (None, "8bit", "4bit")
DEVICES = ("auto", "cpu", "cuda")


def defaults() -> dict[str, Any]:
    import copy

    return {k: copy.deepcopy(v[1]) for k, v in SCHEMA.items()}


def validate(params: Mapping[str, Any], source: str = "parameters") -> dict[str, Any]:
    """Check keys and types, fill defaults; return a new dict. One clear error per problem."""
    unknown = sorted(set(params) - set(SCHEMA))
    if unknown:
        raise LlmrecError(
            f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(SCHEMA)}"
        )
    out = defaults()
    for key, value in params.items():
        types = SCHEMA[key][0]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise LlmrecError(
                f"{source}: key {key!r} must be {want}, got {type(value).__name__} {value!r}"
            )
        out[key] = value
    for key, allowed in (("profile", PROFILES), ("dtype", DTYPES), ("quantization", QUANT),
                         ("device", DEVICES)):
        if out[key] not in allowed:
            raise LlmrecError(f"{source}: key {key!r} must be one of {list(allowed)}, got {out[key]!r}")
    for split in out["splits"]:
        if split not in ("temporal", "blog"):
            raise LlmrecError(f"{source}: key 'splits' has {split!r}; use 'temporal' and/or 'blog'")
    return out


def records_for(test, preset: str, params: Mapping[str, Any]):
    """The test records a decoding ``preset`` is scored on: ``eval_limit`` caps every pass,
    ``beam_limit`` caps beam-search passes (the first N records, so systems stay paired)."""
    caps = [params.get("eval_limit")]
    if "beam" in preset:
        caps.append(params.get("beam_limit"))
    caps = [n for n in caps if n is not None]
    return test.head(min(caps)) if caps else test


def load_params(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML parameter file."""
    path = Path(path)
    if not path.is_file():
        raise LlmrecError(f"parameter file {path} not found; pick one of params/*.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise LlmrecError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise LlmrecError(f"{path}: must be a mapping of key: value, got {type(data).__name__}")
    return validate(data, source=str(path))


def collect(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Pick the schema's keys from a notebook's globals (after papermill injection); validate.
    ``run_dir`` comes back absolute (:func:`llmrec.paths.resolve_run_dir`): a relative one is
    the repository's, wherever the notebook was opened."""
    params = validate({k: namespace[k] for k in SCHEMA if k in namespace}, source="notebook parameters")
    params["run_dir"] = str(resolve_run_dir(params["run_dir"]))
    return params
