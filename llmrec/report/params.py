"""Parameter files: one YAML file per model in ``params/``, validated before anything runs.

The keys are flat (``lora`` and ``decoding`` are small dicts) so that papermill can inject
a file straight into a notebook's ``parameters`` cell
(``papermill nb.ipynb out.ipynb -f params/gemma3-270m.yaml``). A notebook's first code
cell after the parameters is ``P = collect(globals())``: it picks the schema's keys from
the notebook's variables, fills defaults, and validates. An unknown key or a wrong type
is one :class:`LlmrecError` naming the key, and so is a ``model`` that names no model
(:func:`llmrec.llm.models.model_name_problem`): before anything runs, not when a chapter
loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llmrec.data.samples import sample_records
from llmrec.errors import LlmrecError
from llmrec.llm.models import model_name_problem
from llmrec.llm.train import config_for
from llmrec.paths import in_repo, slug
from llmrec.profiles import (  # noqa: F401 (a chapter reads them from here)
    BASELINE_OPTIONS,
    PREVIEW_PROFILES,
    PROFILES,
    RANKING,
    SIZES,
    SWEEPS,
)

# key: (allowed types, default, meaning)
SCHEMA: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "name": ((str,), "smollm2-135m", "run name: the run folder and the system names carry it"),
    "model": ((str,), "smollm2-135m", "embedded name, Hugging Face id, or a local folder"),
    "hf_id": ((str, type(None)), None, "the Hugging Face id this file stands for (documentation)"),
    "hardware": ((str,), "CPU, 2 cores", "the hardware this file needs (documentation)"),
    "profile": ((str,), "cpu", "smoke | quick | cpu | full: how much training and evaluation"),
    "dtype": ((str,), "auto", "auto | float32 | bfloat16 | float16"),
    "quantization": ((str, type(None)), None, "null | 8bit | 4bit (bitsandbytes)"),
    "device": ((str,), "auto", "auto | cpu | cuda"),
    "dataset": ((str, type(None)), None, "null for the embedded ml-100k, else a MovieLens folder"),
    "seed": ((int,), 0, "seed for everything random"),
    "splits": ((list,), ["temporal", "blog"], "splits evaluated (temporal is primary)"),
    "eval_limit": ((int, type(None)), None,
                   "score a seeded sample of N test records (null: all; llmrec.data.samples)"),
    "beam_limit": ((int, type(None)), None,
                   "beam-search passes (LoRA beam, constrained beam) score a seeded sample of N "
                   "test records, inside eval_limit's (null: all); a cost cap, stated in n_records"),
    "batch_size": ((int,), 16, "generation batch size"),
    "max_new_tokens": ((int,), 48, "generation budget per completion"),
    "presets": ((list,), ["greedy"], "decoding presets for zero- and few-shot"),
    "n_shots": ((int,), 2, "worked examples in the few-shot prompt"),
    "matcher": ((str,), "normalized", "title matcher: common_chars | levenshtein | normalized | embedding"),
    "lora": ((dict,), {}, "LoRA training options over the profile's (see llmrec.llm.train.TrainConfig)"),
    "lora_presets": ((list,), ["beam4", "greedy"], "decoding presets for the tuned model"),
    "prompt_style": ((str,), "alpaca",
                     "the tuned model's prompt: alpaca (the blog's) | compact (ours, no preamble)"),
    "curve": ((list, type(None)), None,
              "learning-curve sizes in training records, null in the list for all "
              "(null: the profile's, llmrec.llm.learning_curve.CURVES)"),
    "chapters": ((list, type(None)), None, "notebooks to run (null: all)"),
    "run_dir": ((str,), "runs/dev", "where this run writes its artefacts (relative: to the repository)"),
    "common_dir": ((str, type(None)), None,
                   "the model-independent run whose baselines a chapter compares with "
                   "(null: runs/common-<dataset>-<profile>)"),
    "interactive": ((bool,), False, "build widgets (set True in JupyterLab; papermill runs keep False)"),
}

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
    if out["prompt_style"] not in ("alpaca", "compact"):
        raise LlmrecError(f"{source}: key 'prompt_style' must be 'alpaca' or 'compact', got {out['prompt_style']!r}")
    for n in out["curve"] or []:
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise LlmrecError(f"{source}: key 'curve' lists {n!r}; give training-record counts >= 1, or null for all")
    for split in out["splits"]:
        if split not in ("temporal", "blog"):
            raise LlmrecError(f"{source}: key 'splits' has {split!r}; use 'temporal' and/or 'blog'")
    problem = model_name_problem(out["model"])
    if problem:
        raise LlmrecError(f"{source}: key 'model' is {out['model']!r}: {problem}")
    for key in sorted(set(out["lora"]) & {"seed", "quantization"}):
        raise LlmrecError(f"{source}: key 'lora' sets {key!r}; set it once, at the top level of the file")
    try:
        config_for(out["profile"], **out["lora"])
    except LlmrecError as err:
        raise LlmrecError(f"{source}: key 'lora': {err}") from None
    return out


def records_for(test, preset: str, params: Mapping[str, Any]):
    """The test records a decoding ``preset`` is scored on: ``eval_limit`` caps every pass,
    ``beam_limit`` caps beam-search passes; a cap takes the protocol's seeded, nested
    sample (:func:`llmrec.data.samples.sample_records`, seed 0), the same records for every
    system, so systems stay paired and a smaller cap's records lie inside a larger one's."""
    caps = [params.get("eval_limit")]
    if "beam" in preset:
        caps.append(params.get("beam_limit"))
    caps = [n for n in caps if n is not None]
    return sample_records(test, min(caps)) if caps else test


#: The keys a model-independent chapter receives from the parameter file.
COMMON_KEYS = ("dataset", "seed", "splits", "eval_limit", "profile")


def common_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of the model-independent run a parameter file needs."""
    out = {k: params[k] for k in COMMON_KEYS}
    if params["profile"] not in PREVIEW_PROFILES:
        # PROTOCOL.md section 2 reports both splits; the model-independent chapters cost a
        # minute, so they always cover both, whatever the LLM chapters can afford.
        out["splits"] = ["temporal", "blog"]
    dataset = "ml-100k" if params["dataset"] is None else Path(params["dataset"]).name
    out["name"] = f"common-{slug(dataset)}-{params['profile']}"
    return out


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
    """A notebook's parameters: its ``params_file`` (the chapter's own defaults,
    ``params/quick.yaml``) overridden by the schema's keys among its globals (set in the
    parameters cell, or injected by papermill from a parameter file); validated. ``run_dir``
    comes back absolute: a relative one is the repository's, wherever the notebook was opened."""
    base: dict[str, Any] = {}
    if namespace.get("params_file"):
        base = load_params(in_repo(namespace["params_file"]))
    own = {k: namespace[k] for k in SCHEMA if k in namespace}
    if own.get("profile", base.get("profile")) != base.get("profile"):
        base.pop("lora", None)  # the file's lora block is its own profile's, not the one asked for
    params = validate({**base, **own}, source="notebook parameters")
    params["run_dir"] = str(in_repo(params["run_dir"]))  # the repository's, wherever opened
    return params
