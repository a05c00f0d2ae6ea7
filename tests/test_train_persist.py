"""A training longer than a session: the time budget (``max_minutes``) pauses a run that the
same command continues to the result of a run never paused, and ``train --keep DIR`` carries
its state through a machine that loses ``runs/`` (llmrec.llm.train.save_state / restore_state).

The budget is real wall time: ``max_minutes=1e-9`` is past after any step, so each session
trains exactly one step before pausing, without a mocked clock.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import TRAIN, VALID  # the training tests' records (tests/ is on the path)

from llmrec.artifacts import read_json, write_json
from llmrec.errors import LlmrecError
from llmrec.llm import train
from llmrec.llm.train import (
    TrainingPaused,
    config_for,
    restore_state,
    run_key,
    save_state,
    train_lora,
)

NOW = 1e-9  # minutes: past after the first step of any session


def _config(**kw):
    # 16 records / batch 4 = 4 steps an epoch (see tests/test_train.py)
    base = dict(epochs=1, batch_size=4, max_train_records=None, max_valid_records=None,
                learning_rate=1e-2)
    return config_for("smoke", **{**base, **kw})


def _weights(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _steps(folder):
    return sorted(p.name for p in (folder / "checkpoints").glob("step-*"))


def test_a_time_budget_pauses_after_a_step_and_reruns_end_as_a_run_never_paused(tiny_model_dir, tmp_path):
    whole = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "whole", _config(max_steps=3),
                       progress=False)
    cut = tmp_path / "cut"
    paused = []
    for session in range(1, 4):  # steps 1, 2 (also a save_every_steps checkpoint), then 3: the last
        cfg = _config(max_steps=3, max_minutes=NOW, save_every_steps=2)  # neither changes the run
        try:
            result = train_lora(str(tiny_model_dir), TRAIN, VALID, cut, cfg, progress=False)
        except TrainingPaused as err:
            paused.append(err)
            assert err.step == session and err.total == 3 and err.checkpoint == cut / "checkpoints" / f"step-{session:08d}"
            state = read_json(err.checkpoint / "state.json")  # nothing computed is lost
            assert state["step"] == session and len(state["step_log"]) == session
            assert not (cut / "train_result.json").exists()
    assert [e.step for e in paused] == [1, 2]  # the last step finishes the run, budget or not
    msg = str(paused[0])
    assert "\n" not in msg and isinstance(paused[0], LlmrecError)
    assert msg.startswith("training paused at step 1 of 3 after 0.0 minutes")
    assert f"checkpoint in {cut / 'checkpoints' / 'step-00000001'}" in msg
    assert msg.endswith("rerun the same command to continue")

    assert result.resumed_from_step == 2 and result.steps == 3 and _steps(cut) == _steps(tmp_path / "whole")
    assert result.step_log == [{**s, "loss": pytest.approx(s["loss"], rel=1e-6)} for s in whole.step_log]
    assert [h["valid_loss"] for h in result.history] == pytest.approx(
        [h["valid_loss"] for h in whole.history], rel=1e-6)
    mine, ref = _weights(cut / "adapter"), _weights(tmp_path / "whole" / "adapter")
    assert mine.keys() == ref.keys()
    assert all(torch.allclose(mine[k], ref[k], rtol=1e-5, atol=1e-7) for k in mine)


@pytest.mark.parametrize("value", [0, -5, float("nan")])
def test_a_bad_max_minutes_is_a_one_line_error(value):
    with pytest.raises(LlmrecError) as err:
        config_for("cpu", max_minutes=value)
    assert str(err.value).startswith("lora option 'max_minutes' must be null (no budget) or minutes above 0")
    assert "\n" not in str(err.value)


def test_a_bad_max_minutes_stops_the_command_before_anything_loads(tmp_path, capsys):
    from llmrec.cli import main

    params = tmp_path / "p.yaml"
    params.write_text("name: p\nmodel: tiny-llama\nprofile: smoke\n")
    assert main(["train", "--params", str(params), "--max-minutes", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: lora option 'max_minutes' must be null (no budget) or minutes above 0, got 0.0"
    params.write_text("name: p\nmodel: tiny-llama\nprofile: smoke\nlora:\n  max_minutes: -1\n")
    assert main(["train", "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {params}: key 'lora': lora option 'max_minutes' must be null")
    assert "\n" not in err
    assert config_for("paper", max_minutes=100).max_minutes == 100
    assert config_for("paper").max_minutes is None


# ---------------------------------------------------------------- the kept state, by hand


def _fake_state(folder, step, finished=False, lr=1e-2, config=None):
    """A run folder as train_lora leaves it, without training: checkpoints up to ``step``
    (two kept, as keep_checkpoints does), train_config.json, and when ``finished`` the
    result and adapter."""
    key = run_key("m", TRAIN, VALID, config or _config(learning_rate=lr))
    write_json(folder / "train_config.json", {**key, "trainable_line": "x"})
    for s in (step - 1, step):
        if s > 0:
            write_json(folder / "checkpoints" / f"step-{s:08d}" / "state.json", {"step": s})
    if finished:
        write_json(folder / "train_result.json", {"steps": step})
        write_json(folder / "adapter" / "adapter_config.json", {})
    return key


def test_save_keeps_the_last_checkpoint_only_and_restore_fills_a_fresh_folder(tmp_path):
    run, kept = tmp_path / "run", tmp_path / "keep" / "name" / "temporal"
    assert save_state(run, kept) is None and not kept.exists()  # nothing yet: nothing kept
    key = _fake_state(run, 3)
    line = save_state(run, kept)
    assert line.startswith("kept the training state (step 3, unfinished, ") and line.endswith(f" in {kept}")
    assert _steps(kept) == ["step-00000003"] and (kept / "train_config.json").is_file()
    assert not (kept / "adapter").exists() and not (kept / "train_result.json").exists()
    assert not list(kept.parent.iterdir())[1:]  # no temporary folder left beside it

    fresh = tmp_path / "fresh"
    line = restore_state(kept, fresh, key)
    assert line.startswith("restored the kept training state (step 3, unfinished, ")
    assert _steps(fresh) == ["step-00000003"] and not list(fresh.glob(".tmp-*"))
    assert restore_state(kept, fresh, key) is None  # holds as much already
    assert restore_state(tmp_path / "nothing", tmp_path / "fresh2", key) is None

    _fake_state(run, 5, finished=True)  # the run goes on and finishes
    write_json(run / "best-adapter" / "adapter_config.json", {})  # the adapter's copy during training
    assert save_state(run, kept).startswith("kept the training state (step 5, finished, ")
    # a finished run is kept as its adapter, config and result: no checkpoint, no second copy
    assert _steps(kept) == [] and (kept / "adapter" / "adapter_config.json").is_file()
    assert sorted(p.name for p in kept.iterdir()) == ["adapter", "train_config.json", "train_result.json"]
    assert restore_state(kept, fresh, key).startswith("restored the kept training state (step 5, finished")
    assert _steps(fresh) == ["step-00000003"] and (fresh / "train_result.json").is_file()
    assert restore_state(kept, fresh, key) is None  # finished at the same step: nothing to do
    assert save_state(fresh, kept) is not None and save_state(tmp_path / "run-behind", kept) is None


def test_restore_refuses_a_kept_state_of_another_run_and_never_overwrites_one_further_on(tmp_path):
    run, kept = tmp_path / "run", tmp_path / "keep"
    _fake_state(run, 4, lr=1e-3)
    save_state(run, kept)
    with pytest.raises(LlmrecError) as err:  # the current run has learning rate 1e-2
        restore_state(kept, tmp_path / "fresh", run_key("m", TRAIN, VALID, _config()))
    assert str(err.value) == (f"{kept} holds a training run with learning_rate=0.001, not 0.01; "
                              "delete that folder to start afresh, or pass another --keep")
    # a folder of the same run further on than the kept state is left as it is, either way
    ahead = tmp_path / "ahead"
    _fake_state(ahead, 8, lr=1e-3)
    assert restore_state(kept, ahead) is None and _steps(ahead) == ["step-00000007", "step-00000008"]
    behind = tmp_path / "behind"
    _fake_state(behind, 2, lr=1e-3)
    _fake_state(run, 8, lr=1e-3)
    save_state(run, kept)
    assert save_state(behind, kept) is None and _steps(kept) == ["step-00000008"]


def test_a_save_cut_off_between_its_renames_is_still_restored(tmp_path, monkeypatch):
    run, kept = tmp_path / "run", tmp_path / "keep"
    key = _fake_state(run, 2)
    save_state(run, kept)
    _fake_state(run, 6)
    real = train.os.replace
    calls = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the old state renamed aside, the new one not yet in place
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(train.os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        save_state(run, kept)
    monkeypatch.undo()
    assert not kept.exists() and len(list(tmp_path.glob(".old-keep-*"))) == 1
    fresh = tmp_path / "fresh"
    assert "(step 2, unfinished" in restore_state(kept, fresh, key)
    assert save_state(run, kept).startswith("kept the training state (step 6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "keep", "run"]  # leftovers cleared


# ---------------------------------------------------------------- the command, on a fresh machine


def test_train_keep_carries_a_run_through_fresh_machines_to_chapter_4(tiny_model_dir, tmp_path, ml100k,
                                                                      capsys, monkeypatch):
    """Session 1 pauses on its budget, session 2 is interrupted (Ctrl-C), then ``runs/`` is
    lost; session 3 restores the kept state and finishes as a run never stopped; on a
    third machine the command restores the finished state, trains nothing, and chapter 4's
    own call finds the adapter in the run folder the report uses."""
    from llmrec.cli import main
    from llmrec.data.records import build_records, split_records
    from llmrec.llm.learning_curve import training_pairs
    from llmrec.llm.train import adapter_in, default_out_dir
    from llmrec.report.params import load_params

    def params(run_dir):
        path = tmp_path / f"{run_dir}.yaml"  # smoke on 8 records: batch 4, 2 epochs: 4 steps
        path.write_text(f"name: keepme\nmodel: {tiny_model_dir}\nprofile: smoke\ndtype: float32\n"
                        f"device: cpu\nsplits: [temporal]\nrun_dir: {tmp_path / run_dir}\n"
                        "lora: {max_train_records: 8, max_valid_records: 4}\n")
        return str(path)

    keep, run = tmp_path / "training", tmp_path / "run"
    kept = keep / "keepme" / "temporal"
    train_cmd = ["train", "--params", params("run"), "--keep", str(keep)]

    assert main(["train", "--params", params("whole")]) == 0  # the reference: never stopped
    whole = read_json(tmp_path / "whole" / "train_result.json")
    capsys.readouterr()

    assert main([*train_cmd, "--max-minutes", str(NOW)]) == 3
    out = capsys.readouterr().out.strip().splitlines()
    assert out[2] == f"nothing to restore from {kept}"
    assert out[-2].startswith("kept the training state (step 1, unfinished, ")
    assert out[-1].startswith("training paused at step 1 of 4 after ")
    assert out[-1].endswith("rerun the same command to continue")
    assert _steps(kept) == ["step-00000001"]

    real, calls = train._batch_loss, []

    def ctrl_c_at_step_3(model, batch):  # resumed after step 1: the 2nd training batch is step 3
        calls.append(model.training)
        if calls.count(True) == 2:
            raise KeyboardInterrupt
        return real(model, batch)

    monkeypatch.setattr(train, "_batch_loss", ctrl_c_at_step_3)
    assert main(train_cmd) == 130
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert "interrupted at step 2; last checkpoint: " in out
    assert "kept the training state (step 2, unfinished, " in out
    # what is kept: the last checkpoint only (the run folder holds two), its config, no adapter yet
    assert _steps(run) == ["step-00000001", "step-00000002"] and _steps(kept) == ["step-00000002"]
    assert sorted(p.name for p in kept.iterdir()) == ["checkpoints", "train_config.json"]
    paused = kept / "checkpoints" / "step-00000002"
    paused_sizes = ((paused / "adapter_model.safetensors").stat().st_size,
                    (paused / "trainer_state.pt").stat().st_size, train._size(kept))

    shutil.rmtree(run)  # a fresh machine: runs/ is gone, the repository (and keep/) is not
    assert main(train_cmd) == 0
    out = capsys.readouterr().out
    assert "restored the kept training state (step 2, unfinished, " in out and f" from {kept} into {run}\n" in out
    assert "kept the training state (step 4, finished, " in out
    result = read_json(run / "train_result.json")
    assert result["resumed_from_step"] == 2 and result["steps"] == 4
    assert [s["loss"] for s in result["step_log"]] == pytest.approx([s["loss"] for s in whole["step_log"]], rel=1e-6)
    mine, ref = _weights(run / "adapter"), _weights(tmp_path / "whole" / "adapter")
    assert all(torch.allclose(mine[k], ref[k], rtol=1e-5, atol=1e-7) for k in mine)
    # finished: kept as what evaluating needs, no checkpoint
    assert sorted(p.name for p in kept.iterdir()) == ["adapter", "train_config.json", "train_result.json"]
    assert _steps(kept) == []
    # the sizes: the float32 adapter (3584 trainable parameters); while paused, the
    # checkpoint's AdamW moments too (two more copies) and a few KiB of JSON, headers and pickle
    n = result["trainable_params"]
    weights = (kept / "adapter" / "adapter_model.safetensors").stat().st_size
    assert 4 * n < weights < 4 * n + 4096 and paused_sizes[0] == weights
    assert 8 * n < paused_sizes[1] < 8 * n + 24 * 1024  # + RNG states
    assert 12 * n < paused_sizes[2] < 16 * n + 64 * 1024, paused_sizes
    total = train._size(kept)
    assert 4 * n < total < 4 * n + 64 * 1024, total

    # a third machine, the report's run folder (runs/<name> in the file, here run2): restored,
    # finished, nothing trained; chapter 4's own call finds the adapter there
    run2 = tmp_path / "run2"
    assert main(["train", "--params", params("run2"), "--keep", str(keep)]) == 0
    out = capsys.readouterr().out
    assert f"into {run2}" in out and f"training already finished in {run2}" in out
    assert adapter_in(run2, "temporal") == run2 / "adapter"
    p = load_params(params("run2"))
    parts = split_records(build_records(ml100k.ratings), "temporal", seed=p["seed"])
    pairs = {part: training_pairs(parts[part], ml100k.movies, "alpaca") for part in ("train", "valid")}
    config = config_for(p["profile"], seed=p["seed"], quantization=p["quantization"], **p["lora"])
    again = train_lora(p["model"], pairs["train"], pairs["valid"], default_out_dir(p["run_dir"], "temporal"),
                       config, progress=False)
    assert again.finished_utc == result["finished_utc"] and again.steps == 4
    assert again.adapter_dir == str(run2 / "adapter")  # where it is now, not where it was trained


def test_another_seed_trains_and_is_kept_in_a_folder_of_its_own(tiny_model_dir, tmp_path, ml100k, capsys):
    """``train --seed N`` (one of a file's ``lora_seeds``): another training run (and, where
    the profile samples the training records, as here, another sample of as many), in
    ``seeds/<split>-seed<N>`` where chapter 4 looks for it, kept apart from the run's own
    seed; the file's seed by name trains where it always does."""
    from dataclasses import replace

    from llmrec.cli import main
    from llmrec.data.records import build_records, split_records
    from llmrec.llm.learning_curve import training_pairs
    from llmrec.llm.train import seed_dir

    run = tmp_path / "run"
    path = tmp_path / "p.yaml"
    path.write_text(f"name: multi\nmodel: {tiny_model_dir}\nprofile: smoke\ndtype: float32\n"
                    f"device: cpu\nsplits: [temporal]\nrun_dir: {run}\nlora_seeds: [3]\n"
                    "lora: {max_train_records: 8, max_valid_records: 4, epochs: 1}\n")
    keep = tmp_path / "training"
    assert main(["train", "--params", str(path), "--seed", "3", "--keep", str(keep)]) == 0
    out = capsys.readouterr().out
    folder = seed_dir(run, "temporal", 3)
    assert folder == run / "seeds" / "temporal-seed3" and f"into {folder}\n" in out
    assert (folder / "adapter").is_dir() and not (run / "adapter").exists()
    assert (keep / "multi" / "temporal-seed3" / "adapter").is_dir()
    assert read_json(folder / "train_config.json")["config"]["seed"] == 3
    assert main(["train", "--params", str(path), "--seed", "0"]) == 0  # the file's seed: the run folder
    assert (run / "adapter").is_dir()
    seeded, own = read_json(folder / "train_result.json"), read_json(run / "train_result.json")
    assert seeded["n_train"] == own["n_train"] == 8  # as many records ...
    assert [s["loss"] for s in seeded["step_log"]] != [s["loss"] for s in own["step_log"]]  # ... another run
    # chapter 4's call for that seed finds it finished: nothing trains again
    parts = split_records(build_records(ml100k.ratings), "temporal", seed=0)
    pairs = {part: training_pairs(parts[part], ml100k.movies, "alpaca") for part in ("train", "valid")}
    config = config_for("smoke", seed=0, max_train_records=8, max_valid_records=4, epochs=1)
    again = train_lora(str(tiny_model_dir), pairs["train"], pairs["valid"], folder, replace(config, seed=3),
                       progress=False)
    assert again.finished_utc == seeded["finished_utc"]


def test_the_committed_training_state_is_small_adapters_only():
    """reports/adapters holds the published run's finished LoRA adapters (under 10 MB a run,
    no optimizer state); no weight file is committed anywhere else."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()
    weights = [f for f in tracked if f.endswith((".safetensors", ".pt", ".bin", ".gguf", ".pth"))]
    assert all(f.startswith("reports/adapters/") for f in weights), weights
    assert {Path(f).name for f in weights} <= {"adapter_model.safetensors"}, weights
    by_run: dict[str, int] = {}
    for f in tracked:
        if f.startswith("reports/adapters/"):
            run = f.split("/")[2]
            by_run[run] = by_run.get(run, 0) + (root / f).stat().st_size
    assert all(size < 10 * 2**20 for size in by_run.values()), by_run
