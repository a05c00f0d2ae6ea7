"""Parameter files: one YAML file per model in ``params/``, validated before anything runs.

The keys are flat (``lora`` and ``decoding`` are small dicts) so that papermill can inject
a file straight into a notebook's ``parameters`` cell
(``papermill nb.ipynb out.ipynb -f params/gemma3-270m.yaml``). A notebook's first code
cell after the parameters is ``P = collect(globals())``: it picks the schema's keys from
the notebook's variables, fills defaults, and validates.

Validation is the one place a parameter file can fail: every problem a chapter would meet
minutes in is one :class:`LlmrecError` line when the file is loaded, naming the file, the
key, the bad value and what is accepted: YAML syntax (with the line), a file that is not
a mapping, an unknown key (with the nearest known one), a wrong type, a choice outside its
list (profile, dtype, quantization, device, matcher, prompt style, splits, decoding
presets, chapters), a count out of range (batch size, token budget, shots, sample caps,
learning-curve sizes, the ``lora`` options through :func:`llmrec.llm.train.config_for`), a
``model`` that names no model (:func:`llmrec.llm.models.model_name_problem`) and a
``dataset`` folder that holds no MovieLens layout.

The hardware is checked only where something is about to run on it: ``device: cuda``
needs a CUDA GPU that torch sees. ``load_params(path)`` does not check it, so a GPU file
loads on a laptop to be read or costed (``python -m llmrec costs``);
``load_params(path, check_hardware=True)`` checks it (:func:`check_device`): the report's
runner loads every file this way before the first chapter starts, and :func:`collect`
checks it too, at the top of every notebook.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from llmrec.data.movielens import expected_layouts, layout_of
from llmrec.data.records import SPLITS
from llmrec.data.samples import sample_records
from llmrec.errors import LlmrecError
from llmrec.evaluation.matching import MATCHERS
from llmrec.llm.decoding import PRESETS
from llmrec.llm.models import model_name_problem
from llmrec.llm.train import TrainConfig, config_for
from llmrec.paths import in_repo, slug
from llmrec.profiles import (  # noqa: F401 (a chapter reads them from here)
    BASELINE_OPTIONS,
    ENCODERS,
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
    "profile": ((str,), "cpu", "smoke | quick | cpu | long | full: how much training and evaluation"),
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
    "lora_seeds": ((list,), [],
                   "more training seeds of chapter 4's adapter (primary split): each trains its "
                   "own adapter, scored greedy on the same records, and the spread across seeds "
                   "is shown beside the record-bootstrap interval"),
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
PROMPT_STYLES = ("alpaca", "compact")

#: The chapters of the report, in order: the notebooks ``notebooks/<stem>.ipynb``. A
#: parameter file's ``chapters`` selects among them (:func:`chapter_matches`); the runner
#: flags one of them without a notebook.
CHAPTERS = ["01_data", "02_zero_shot", "03_few_shot", "04_lora_finetune",
            "05_baselines", "06_decoding", "07_beyond", "08_llm_with_cf", "09_llm_as_encoder",
            "10_model_size"]

#: Whole-number keys and their least value, with what a value means (for the message).
COUNTS: dict[str, tuple[int, str]] = {
    "seed": (0, "a seed"),
    "batch_size": (1, "prompts generated at once"),
    "max_new_tokens": (1, "tokens generated per completion"),
    "n_shots": (1, "worked examples in the few-shot prompt"),
    "eval_limit": (1, "test records scored; null: all"),
    "beam_limit": (1, "test records beam search scores; null: all"),
}


def defaults() -> dict[str, Any]:
    """The schema's default for every key (fresh copies: a caller may change them)."""
    import copy

    return {k: copy.deepcopy(v[1]) for k, v in SCHEMA.items()}


def _did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the choice nearest to a string ``value``, else ''."""
    if not isinstance(value, str):
        return ""
    near = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _names(choices: Iterable[Any]) -> str:
    """``a, b, null``: choices as a message lists them."""
    return ", ".join("null" if c is None else str(c) for c in choices)


def chapter_matches(selector: Any, stem: str) -> bool:
    """True if a ``chapters`` entry selects the chapter ``stem``: a number (``2``, ``"02"``)
    matches its number, a string the stem (``"02_zero_shot"``), the topic after the number
    (``"zero_shot"``) or the stem's beginning."""
    sel = str(selector).strip()
    if not sel:
        return False
    if sel.isdigit():
        return stem.split("_", 1)[0] == sel.zfill(2)
    topic = stem.split("_", 1)[1] if "_" in stem else stem
    return stem == sel or topic == sel or stem.startswith(sel)


def _check_types(params: Mapping[str, Any], source: str) -> None:
    """Every key is the schema's (else the nearest one is named) and of its type."""
    unknown = sorted(set(params) - set(SCHEMA), key=str)
    if unknown:
        key = unknown[0]
        hint = _did_you_mean(key, SCHEMA)
        near_lora = difflib.get_close_matches(key, [f.name for f in dataclasses.fields(TrainConfig)], n=1)
        if not hint and near_lora:  # a LoRA option written at the top level
            hint = f" (the lora option {near_lora[0]!r}? it goes under lora:)"
        raise LlmrecError(f"{source}: unknown key {key!r}{hint}; known keys: {', '.join(SCHEMA)}")
    for key, value in params.items():
        types = SCHEMA[key][0]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise LlmrecError(
                f"{source}: key {key!r} must be {want}, got {type(value).__name__} {value!r}"
            )


def _check_choices(out: Mapping[str, Any], source: str) -> None:
    """Every named choice is one the code knows: the lists are the modules' own (matchers,
    decoding presets, splits), so a name added there is accepted here."""
    for key, allowed in (("profile", PROFILES), ("dtype", DTYPES), ("quantization", QUANT),
                         ("device", DEVICES), ("matcher", MATCHERS),
                         ("prompt_style", PROMPT_STYLES)):
        value = out[key]
        if value not in allowed:
            raise LlmrecError(f"{source}: key {key!r} is {value!r}{_did_you_mean(value, allowed)}; "
                              f"use one of {_names(allowed)}")
    for key, allowed, what in (("splits", SPLITS, "splits"), ("presets", PRESETS, "decoding presets"),
                               ("lora_presets", PRESETS, "decoding presets")):
        if not out[key]:
            raise LlmrecError(f"{source}: key {key!r} is [], which runs nothing; list one or more "
                              f"{what} of {_names(allowed)}")
        for value in out[key]:
            if not isinstance(value, str) or value not in allowed:
                raise LlmrecError(f"{source}: key {key!r} lists {value!r}{_did_you_mean(value, allowed)}; "
                                  f"use {what} among {_names(allowed)}")
    if out["chapters"] is not None:
        if not out["chapters"]:
            raise LlmrecError(f"{source}: key 'chapters' is [], which runs nothing; list chapters "
                              f"(e.g. [\"02\", \"04\"]) or write null for all")
        for sel in out["chapters"]:
            if (isinstance(sel, bool) or not isinstance(sel, (str, int))
                    or not any(chapter_matches(sel, c) for c in CHAPTERS)):
                raise LlmrecError(f"{source}: key 'chapters' lists {sel!r}{_did_you_mean(sel, CHAPTERS)}; "
                                  f"use chapter numbers (\"02\"), names or topics among {_names(CHAPTERS)}")


def _check_counts(out: Mapping[str, Any], source: str) -> None:
    """Every count is at least its least value (:data:`COUNTS`), every curve size >= 1."""
    for key, (least, meaning) in COUNTS.items():
        value = out[key]
        if value is not None and value < least:
            null = " or null" if type(None) in SCHEMA[key][0] else ""
            raise LlmrecError(f"{source}: key {key!r} is {value!r}; give a whole number >= {least}"
                              f"{null} ({meaning})")
    seeds = out["lora_seeds"]
    for n in seeds:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n == out["seed"] or seeds.count(n) > 1:
            raise LlmrecError(f"{source}: key 'lora_seeds' lists {n!r}; give distinct whole numbers >= 0 "
                              f"other than the run's seed ({out['seed']})")
    for n in out["curve"] or []:
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise LlmrecError(f"{source}: key 'curve' lists {n!r}; give training-record counts >= 1, "
                              f"or null for all")


def _check_dataset(dataset: str | None, source: str) -> None:
    """A ``dataset`` folder must hold one of the layouts :mod:`llmrec.data.movielens` reads
    (a relative folder is the repository's: notebooks run there)."""
    if dataset is None:
        return
    folder = in_repo(dataset)
    fix = f"give a MovieLens folder ({expected_layouts()}) or null for the embedded ml-100k"
    if not folder.exists():
        raise LlmrecError(f"{source}: key 'dataset' is {dataset!r}: no such folder; {fix}")
    if not folder.is_dir():
        raise LlmrecError(f"{source}: key 'dataset' is {dataset!r}: a file, not a folder; {fix}")
    if layout_of(folder) is None:
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:6]) or "nothing"
        raise LlmrecError(f"{source}: key 'dataset' is {dataset!r}: no MovieLens files in it "
                          f"(found {found}); {fix}")


def check_device(params: Mapping[str, Any], source: str = "parameters") -> None:
    """Fail if this machine cannot run ``params``: ``device: cuda`` needs a CUDA GPU that
    torch sees. torch is imported only then (it takes seconds)."""
    if params.get("device") != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise LlmrecError(f"{source}: key 'device' is 'cuda' but torch {torch.__version__} ({build}) "
                          f"sees no CUDA GPU here; run on a GPU machine with a CUDA build of torch "
                          f"(docs/gpu.md), or set device: auto or cpu")


def validate(params: Mapping[str, Any], source: str = "parameters",
             check_hardware: bool = False) -> dict[str, Any]:
    """Check ``params`` and fill defaults; return a new dict.

    Every problem is one :class:`LlmrecError` line starting with ``source`` and naming the
    key, the value and what is accepted (the module docstring lists the checks).
    ``check_hardware`` also checks that this machine can run it (:func:`check_device`)."""
    _check_types(params, source)
    out = {**defaults(), **params}
    _check_choices(out, source)
    _check_counts(out, source)
    problem = model_name_problem(out["model"])
    if problem:
        raise LlmrecError(f"{source}: key 'model' is {out['model']!r}: {problem}")
    _check_dataset(out["dataset"], source)
    for key in sorted(set(out["lora"]) & {"seed", "quantization"}):
        raise LlmrecError(f"{source}: key 'lora' sets {key!r}; set it once, at the top level of the file")
    try:
        config_for(out["profile"], **out["lora"])
    except LlmrecError as err:
        raise LlmrecError(f"{source}: key 'lora': {err}") from None
    if check_hardware:
        check_device(out, source)
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


def load_params(path: str | Path, check_hardware: bool = False) -> dict[str, Any]:
    """Read and validate a YAML parameter file (see :func:`validate`).

    ``check_hardware=False`` (the default) loads a file written for another machine, to read
    or cost it; a caller about to run the file's chapters passes True, so that a
    ``device: cuda`` file on a machine without CUDA fails here, before any chapter starts."""
    path = Path(path)
    if not path.is_file():
        raise LlmrecError(f"parameter file {path} not found; pick one of params/*.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise LlmrecError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        # problem_mark: where the parser gave up; context_mark: where what it was reading
        # began (a key missing its ':' is noticed on the next line: both are named)
        mark, context = err.problem_mark or err.context_mark, err.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        what = err.problem or err.context or "not valid YAML"
        if err.problem and err.context and context is not None and context.line != mark.line:
            what += f" ({err.context} on line {context.line + 1})"
        raise LlmrecError(f"{path}{where}: {what}; fix the YAML there") from None
    except yaml.YAMLError as err:
        raise LlmrecError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); fix the YAML") from None
    example = "write one key: value per line, e.g. model: smollm2-135m (see params/smollm2-135m.yaml)"
    if data is None:
        raise LlmrecError(f"{path}: the file is empty (or only comments); {example}")
    if not isinstance(data, dict):
        raise LlmrecError(f"{path}: the file is a YAML {type(data).__name__} ({str(data)[:40]!r}), "
                          f"not a mapping of keys; {example}")
    return validate(data, source=str(path), check_hardware=check_hardware)


def collect(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """A notebook's parameters: its ``params_file`` (the chapter's own defaults,
    ``params/quick.yaml``) overridden by the schema's keys among its globals (set in the
    parameters cell, or injected by papermill from a parameter file); validated, with the
    hardware (a notebook is about to run: :func:`check_device`). ``run_dir`` comes back
    absolute: a relative one is the repository's, wherever the notebook was opened."""
    base: dict[str, Any] = {}
    if namespace.get("params_file"):
        base = load_params(in_repo(namespace["params_file"]))
    own = {k: namespace[k] for k in SCHEMA if k in namespace}
    if own.get("profile", base.get("profile")) != base.get("profile"):
        base.pop("lora", None)  # the file's lora block is its own profile's, not the one asked for
    params = validate({**base, **own}, source="notebook parameters", check_hardware=True)
    params["run_dir"] = str(in_repo(params["run_dir"]))  # the repository's, wherever opened
    return params
