"""The commands that train what a parameter file describes, outside a report run.

``python -m llmrec train --params FILE`` (the LoRA adapter chapter 4 evaluates) and
``python -m llmrec curve FILE`` (the learning curve's adapters): each reads a parameter
file (:mod:`llmrec.report.params`) and calls the training code of :mod:`llmrec.llm`, which
knows nothing of parameter files. Both resume when rerun. ``train --max-minutes M`` ends a
session cleanly after M minutes (exit code 3: rerun to continue) and ``train --keep DIR``
keeps the run's state in ``DIR`` (committed, it survives the machine), so that a training
longer than a working session is made in sessions, on fresh machines too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmrec.data.movielens import load_movielens
from llmrec.data.records import build_records, split_records, to_alpaca
from llmrec.llm.learning_curve import CURVE_STYLE, train_curve
from llmrec.llm.train import (
    PROFILES,
    TrainingPaused,
    config_for,
    default_out_dir,
    kept_dir,
    restore_state,
    run_key,
    save_state,
    seed_dir,
    train_lora,
)
from llmrec.paths import in_repo, runs_dir
from llmrec.report.params import SCHEMA, load_params


def add_cli(subparsers: Any) -> None:
    add_train_cli(subparsers)
    add_curve_cli(subparsers)


def split_examples(params: Mapping[str, Any], split: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Alpaca examples ``(train, valid, test)`` of ``split`` for a parameter set."""
    ml = load_movielens(params.get("dataset"))
    parts = split_records(build_records(ml.ratings), split, seed=params.get("seed", 0))
    return tuple(to_alpaca(parts[name], ml.movies) for name in ("train", "valid", "test"))


def lora_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lora`` options of a parameter file that differ from its own profile's: what
    carries over when another profile is asked for (a file writes its profile's values
    out, so that they show)."""
    own = config_for(params["profile"]).to_dict()
    return {k: v for k, v in params["lora"].items() if own.get(k) != v}


#: The ``train`` command's exit code when the time budget paused the run (0: finished).
PAUSED = 3


def _keep(out: Path, saved: Path | None) -> None:
    """Copy the run's state out to ``--keep``'s folder, saying what was kept."""
    if saved is not None:
        print(save_state(out, saved) or f"nothing new to keep in {saved}")


def _wait_for_everyone(device: str) -> None:
    """Under ``accelerate launch``: the other processes wait until the first one has
    restored the kept state, before any of them looks for a checkpoint. The process group
    is set up as :func:`~llmrec.llm.train.train_lora`'s ``Accelerator`` will find it
    (``cpu`` for ``device: cpu``: without it, a machine without CUDA sets up no group and
    each process would train alone)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState(cpu=device == "cpu").wait_for_everyone()


def _cli_train(args: Any) -> int:
    params = load_params(args.params, check_hardware=True)
    profile = args.profile or params["profile"]
    lora = lora_overrides(params) if args.profile else params["lora"]
    if args.max_minutes is not None:
        lora = {**lora, "max_minutes": args.max_minutes}
    seed = params["seed"] if args.seed is None else args.seed
    config = config_for(profile, seed=seed, quantization=params["quantization"], **lora)
    train, valid, _ = split_examples(params, args.split)  # the records: the file's seed
    run_dir = params["run_dir"]
    if run_dir == SCHEMA["run_dir"][1]:  # not set: where the report's chapter 4 looks
        run_dir = runs_dir() / params["name"]
    other_seed = seed != params["seed"]  # one of the file's lora_seeds: a folder of its own
    if args.out:
        out = Path(args.out)
    else:
        out = seed_dir(run_dir, args.split, seed) if other_seed else default_out_dir(run_dir, args.split)
    main = os.environ.get("RANK", "0") == "0"  # under accelerate launch: the first process speaks
    if main:
        print(f"training {params['model']} on the {args.split} split ({len(train)} training, "
              f"{len(valid)} validation records; profile {profile}) into {out}")
        print(json.dumps(config.to_dict()))
    kept_as = f"{args.split}-seed{seed}" if other_seed else args.split
    saved = kept_dir(in_repo(args.keep), params["name"], kept_as) if args.keep else None
    if saved is not None:
        if main:
            line = restore_state(saved, out, run_key(params["model"], train, valid, config))
            print(line or f"nothing to restore from {saved}")
        _wait_for_everyone(params["device"])
    try:
        result = train_lora(params["model"], train, valid, out, config, dtype=params["dtype"],
                            device=params["device"])
    except TrainingPaused as paused:
        if main:
            _keep(out, saved)
            print(paused)
        return PAUSED
    except KeyboardInterrupt:
        if main:
            _keep(out, saved)
        raise
    if main:
        _keep(out, saved)
        print(f"done: {result.steps} steps on {result.world_size} process(es), loss "
              f"{result.first_loss:.4f} -> {result.final_loss:.4f}, {result.tokens_per_s:.0f} "
              f"tokens/s, adapter in {result.adapter_dir}")
    return 0


def add_train_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="LoRA fine-tuning on a split's training records (resumes if rerun)",
        description="Train a LoRA adapter; rerun the same command to resume. A run longer than "
                    "a working session: --max-minutes 100 --keep DIR, a folder that outlives the machine "
                    "(never git: it holds optimizer state); rerun, on any machine that sees DIR, "
                    "until it exits with 0 (3: paused, rerun to continue). Several GPUs: "
                    "accelerate launch --multi_gpu --num_processes N -m llmrec train --params ...")
    p.add_argument("--params", required=True, help="parameter file, e.g. params/smollm2-135m.yaml")
    p.add_argument("--split", default="temporal", choices=["temporal", "blog"])
    p.add_argument("--profile", default=None, choices=list(PROFILES),
                   help="overrides the parameter file's profile")
    p.add_argument("--out", default=None,
                   help="output folder (default: the file's run_dir, else runs/<name>, where "
                        "`python -m llmrec report` then finds the trained adapter)")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="the training seed (default: the file's seed); another seed trains into "
                        "its own folder (runs/<name>/seeds/<split>-seed<N>, kept as "
                        "<split>-seed<N>), where chapter 4 finds the file's lora_seeds")
    p.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="this session's time budget (overrides lora.max_minutes): after M "
                        "minutes the step under way finishes, a checkpoint is written and the "
                        "command exits with code 3; rerun the same command to continue (same "
                        "result as a run never paused)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="keep the run's state in DIR/<name>/<split>/ (relative: the "
                        "repository's; a folder that outlives the machine, never committed): restored into "
                        "the output folder before training when that holds less (a fresh "
                        "machine), and after training stops updated: paused or Ctrl-C, with the "
                        "last checkpoint, train_config.json and the best adapter so far; "
                        "finished, with the adapter, train_config.json and train_result.json only")
    p.set_defaults(func=_cli_train)


def add_curve_cli(subparsers: Any) -> None:
    p = subparsers.add_parser("curve", help="train the learning curve's adapters of a parameter file "
                                            "(resumable; chapter 4 then evaluates them)")
    p.add_argument("params", help="a parameter file, e.g. params/smollm2-135m-long.yaml")
    p.add_argument("--split", default=None, choices=["temporal", "blog"],
                   help="the split (default: the file's first)")
    p.add_argument("--out", default=None,
                   help="the run folder the points train into (under curve/<split>/; default: the "
                        "file's run_dir, else runs/<name>, where `python -m llmrec report` runs "
                        "chapter 4, which then finds them trained)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="keep each point's state in DIR/<name>/curve/<split>/ (relative: the "
                        "repository's; reports/adapters holds the published run's, committed): "
                        "restored before a point trains, so a finished point loads in seconds "
                        "on a fresh machine, and updated after it stops")
    p.set_defaults(func=_cli_curve)


def _cli_curve(args: Any) -> int:
    params = load_params(args.params, check_hardware=True)
    split = args.split or params["splits"][0]
    ml = load_movielens(params["dataset"])
    parts = split_records(build_records(ml.ratings), split, seed=params["seed"])
    run_dir = in_repo(params["run_dir"])  # a relative one: the repository's, as a notebook's
    if params["run_dir"] == SCHEMA["run_dir"][1]:  # not set: where `python -m llmrec report` runs
        run_dir = runs_dir() / params["name"]
    run_dir = Path(args.out) if args.out else run_dir
    # the arguments of chapter 4's section 4.6, so that it finds every point trained
    results = train_curve(params["model"], parts, ml.movies, run_dir, split, params["profile"],
                          params["curve"], CURVE_STYLE, params["seed"], params["lora"],
                          params["dtype"], params["device"], quantization=params["quantization"],
                          keep=in_repo(args.keep) / params["name"] if args.keep else None)
    for name, r in results.items():
        print(f"{name:>5}: {r.n_train} records, {r.steps} steps, best epoch {r.best_epoch}, "
              f"{r.wall_seconds / 60:.1f} min  ({r.out_dir})")
    return 0
