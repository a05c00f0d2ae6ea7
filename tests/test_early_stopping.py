"""Early stopping on the validation loss and validations within an epoch (llmrec.llm.train).

The validation losses are scripted (``_valid_loss`` replaced) where a test needs them to
stop falling at a known point; the replacement also keeps a copy of the adapter's weights
at each validation, so the kept adapter can be compared with the weights it should hold.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file
from test_train import TITLES  # the same titles as the training tests (tests/ is on the path)

from llmrec.artifacts import read_json
from llmrec.errors import LlmrecError
from llmrec.llm import train
from llmrec.llm.train import BEST_ADAPTER, config_for, train_lora


def _pairs(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [{"prompt": "Liked: " + " => ".join(t[:6]) + "\nNext 4: ", "answer": " => ".join(t[6:])}
            for t in (rng.sample(TITLES, 10) for _ in range(n))]


TRAIN, VALID = _pairs(16, 1), _pairs(8, 2)


def _config(**kw):
    # 16 records / batch 4 = 4 steps an epoch (see tests/test_train.py)
    base = dict(epochs=4, batch_size=4, max_train_records=None, max_valid_records=None,
                learning_rate=1e-2)
    return config_for("smoke", **{**base, **kw})


class Scripted:
    """``_valid_loss`` returning the next scripted value, with a copy of the adapter's
    weights at each call (``weights[i]``: at the i-th validation, 0 before training)."""

    def __init__(self, losses):
        self.losses, self.weights = list(losses), []

    def __call__(self, model, *args, **kwargs):
        self.weights.append({k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()})
        return self.losses.pop(0)


def _weights(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_patience_stops_before_the_last_epoch_and_keeps_the_best_adapter(
        tiny_model_dir, tmp_path, monkeypatch):
    # before training, then after epochs 1..3: the loss falls twice, then rises
    script = Scripted([5.0, 4.0, 3.0, 3.5])
    monkeypatch.setattr(train, "_valid_loss", script)
    result = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(patience=1),
                        progress=False)
    assert result.stopped_early and result.best_epoch == 2
    assert result.steps == 12 and [h["epoch"] for h in result.history] == [0, 1, 2, 3]
    assert not script.losses  # no validation after the stop
    kept, best = _weights(tmp_path / "adapter"), _weights(tmp_path / BEST_ADAPTER)
    assert _same(kept, best)
    assert _same(kept, script.weights[2])  # the weights validated after epoch 2 ...
    assert not _same(kept, script.weights[3])  # ... not the last ones
    last = sorted((tmp_path / "checkpoints").glob("step-*"))[-1]
    assert last.name == "step-00000012" and _same(_weights(last), script.weights[3])
    stored = read_json(tmp_path / "train_result.json")
    assert stored["best_epoch"] == 2 and stored["stopped_early"] is True
    again = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(patience=1), progress=False)
    assert again.to_dict() == result.to_dict()  # finished: the stored result


def test_without_a_rise_every_epoch_runs_and_the_lowest_is_kept(tiny_model_dir, tmp_path):
    """Real validation losses: patience larger than the epochs never stops; the epoch kept
    is the one of the lowest validation loss, and without patience the last epoch's."""
    result = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "p", _config(epochs=3, patience=5),
                        progress=False)
    valid = {h["epoch"]: h["valid_loss"] for h in result.history if h["epoch"] > 0}
    assert not result.stopped_early and result.steps == 12
    assert result.best_epoch == min(valid, key=valid.get)
    assert _same(_weights(tmp_path / "p" / "adapter"), _weights(tmp_path / "p" / BEST_ADAPTER))
    plain = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "n", _config(epochs=3),
                       progress=False)
    assert plain.best_epoch == 3 and not plain.stopped_early
    assert not (tmp_path / "n" / BEST_ADAPTER).exists()


def test_the_last_epoch_is_not_a_stop(tiny_model_dir, tmp_path, monkeypatch):
    # the loss rises at the last epoch: nothing left to skip, so not stopped early
    monkeypatch.setattr(train, "_valid_loss", Scripted([5.0, 4.0, 3.0, 3.5, 3.6]))
    result = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, _config(patience=2),
                        progress=False)
    assert result.steps == 16 and not result.stopped_early and result.best_epoch == 2


def test_validations_within_an_epoch(tiny_model_dir, tmp_path):
    # batch 2: 8 steps an epoch; 4 validations an epoch, after steps 2, 4, 6 and 8
    cfg = _config(epochs=2, batch_size=2, validations_per_epoch=4)
    result = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path, cfg, progress=False)
    assert [h["epoch"] for h in result.history] == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]
    assert [h["step"] for h in result.history] == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert all(h["valid_loss"] > 0 for h in result.history)
    # each entry's training loss: the token-weighted mean of the steps since the last validation
    for before, entry in itertools.pairwise(result.history):
        steps = [s for s in result.step_log if before["step"] < s["step"] <= entry["step"]]
        assert len(steps) == 2
        mean = sum(s["loss"] * s["tokens"] for s in steps) / sum(s["tokens"] for s in steps)
        assert entry["train_loss"] == pytest.approx(mean)
    assert result.best_epoch == 2  # no patience: the last one


def test_early_stopping_within_an_epoch(tiny_model_dir, tmp_path, monkeypatch):
    # 4 validations an epoch (one a step): the best after step 2, then two without a new lowest
    monkeypatch.setattr(train, "_valid_loss", Scripted([5.0, 4.0, 3.0, 3.2, 3.1]))
    result = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path,
                        _config(epochs=2, validations_per_epoch=4, patience=2), progress=False)
    assert result.stopped_early and result.best_epoch == 0.5 and result.steps == 4
    assert [h["epoch"] for h in result.history] == [0, 0.25, 0.5, 0.75, 1]


def test_resume_keeps_the_best_tracking_state(tiny_model_dir, tmp_path, monkeypatch):
    """Interrupted after epoch 3 (one validation without a new lowest), resumed: the
    checkpoint's state.json holds the best loss, its epoch and the count, so the next rise
    stops the run (patience 2) and the adapter kept is the one of epoch 2."""
    cfg = _config(epochs=6, patience=2)
    losses = [5.0, 4.0, 3.0, 3.5, 3.6]
    whole = Scripted(losses)
    monkeypatch.setattr(train, "_valid_loss", whole)
    ref = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "whole", cfg, progress=False)
    assert ref.stopped_early and ref.best_epoch == 2 and ref.steps == 16

    def interrupt(step, loss):
        if step == 13:
            raise KeyboardInterrupt

    first = Scripted(losses[:4])
    monkeypatch.setattr(train, "_valid_loss", first)
    with pytest.raises(KeyboardInterrupt):
        train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "cut", cfg, callback=interrupt,
                   progress=False)
    last = sorted((tmp_path / "cut" / "checkpoints").glob("step-*"))[-1]
    state = read_json(last / "state.json")
    assert last.name == "step-00000012"
    assert (state["best_valid"], state["best_epoch"], state["bad_epochs"], state["stopped_early"]) == (
        3.0, 2, 1, False)
    second = Scripted(losses[4:])
    monkeypatch.setattr(train, "_valid_loss", second)
    resumed = train_lora(str(tiny_model_dir), TRAIN, VALID, tmp_path / "cut", cfg, progress=False)
    assert resumed.resumed_from_step == 12 and not second.losses
    assert resumed.stopped_early and resumed.best_epoch == 2 and resumed.steps == 16
    assert [s["loss"] for s in resumed.step_log] == pytest.approx([s["loss"] for s in ref.step_log], rel=1e-6)
    kept = _weights(tmp_path / "cut" / "adapter")
    assert _same(kept, _weights(tmp_path / "cut" / BEST_ADAPTER))
    assert _same(kept, first.weights[2])  # saved in the first session, kept through the resume
    ref_kept = _weights(tmp_path / "whole" / "adapter")
    assert all(torch.allclose(kept[k], ref_kept[k], rtol=1e-5, atol=1e-7) for k in kept)


def test_validation_points_and_bad_options():
    assert train._validation_points(8, 4) == {2, 4, 6, 8}
    assert train._validation_points(4, 1) == {4}
    assert train._validation_points(3, 4) == {1, 2, 3}  # fewer steps than validations: every step
    with pytest.raises(LlmrecError, match="'patience' must be null or at least 1, got 0"):
        config_for("cpu", patience=0)
    with pytest.raises(LlmrecError, match="'validations_per_epoch' must be at least 1, got 0"):
        config_for("cpu", validations_per_epoch=0)
    with pytest.raises(LlmrecError, match="'patience' has the wrong type"):
        config_for("cpu", patience=1.5)
    assert config_for("long").patience == 2 and config_for("long").validations_per_epoch == 4
    assert config_for("cpu", patience=None).patience is None
