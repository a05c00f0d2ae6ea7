"""The learning curve: training pairs per prompt format, nested samples, point names, the
trained points cached by configuration, the table, and the `curve` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.data.formats import join_titles, title_map, titles_for
from llmrec.data.records import build_records, split_records, to_alpaca
from llmrec.data.samples import sample_records
from llmrec.errors import LlmrecError
from llmrec.llm import train
from llmrec.llm.learning_curve import (
    CURVE_STYLE,
    CURVES,
    curve_table,
    label,
    point_rows,
    setting_for,
    train_curve,
    training_pairs,
)
from llmrec.llm.train import curve_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def parts(ml100k):
    return split_records(build_records(ml100k.ratings), "temporal", seed=0)


def test_alpaca_pairs_are_chapter_4s_training_data(parts, ml100k):
    """The same pairs (so the same data fingerprint, the same cached run) as the Alpaca
    examples `python -m llmrec train` trains on."""
    for part in ("train", "valid"):
        records = parts[part].head(200)
        assert training_pairs(records, ml100k.movies, "alpaca") == train.training_pairs(
            to_alpaca(records, ml100k.movies))
    assert train._fingerprint(training_pairs(parts["valid"], ml100k.movies, "alpaca")) == \
        train._fingerprint(train.training_pairs(to_alpaca(parts["valid"], ml100k.movies)))


def test_compact_pairs(parts, ml100k):
    names = title_map(ml100k.movies)
    records = parts["train"].head(20)
    pairs = training_pairs(records, ml100k.movies, "compact")
    assert len(pairs) == 20
    for pair, r in zip(pairs, records.itertuples(index=False), strict=True):
        liked, nxt = titles_for(r.input_ids, names), titles_for(r.target_ids, names)
        assert pair == {"prompt": f"Liked: {join_titles(liked)}\nNext 4: ", "answer": join_titles(nxt)}
        assert len(liked) == 6 and len(nxt) == 4
    alpaca = training_pairs(records, ml100k.movies, "alpaca")
    assert [p["answer"] for p in alpaca] == [p["answer"] for p in pairs]  # same answers
    assert all(len(c["prompt"]) < len(a["prompt"]) / 2 for c, a in zip(pairs, alpaca, strict=True))
    with pytest.raises(LlmrecError, match="unknown training format 'chat'"):
        training_pairs(records, ml100k.movies, "chat")


def test_samples_are_nested(parts):
    train_part = parts["train"]
    ids = {n: set(sample_records(train_part, n)["record_id"]) for n in (8, 128, 512, 2048)}
    assert [len(ids[n]) for n in (8, 128, 512, 2048)] == [8, 128, 512, 2048]
    assert ids[8] < ids[128] < ids[512] < ids[2048] < set(train_part["record_id"])
    assert set(sample_records(train_part, None)["record_id"]) == set(train_part["record_id"])


def test_names_and_settings():
    assert label(8, 100) == "8"
    assert label(None, 100) == label(100, 100) == label(5000, 100) == "all"
    assert setting_for("alpaca", "main") == "lora"
    assert setting_for("compact", "512") == "lora-compact-512"
    assert setting_for("compact", "all") == "lora-compact-all"
    assert setting_for("alpaca", "128") == "lora-alpaca-128"
    assert set(CURVES) == set(train.PROFILES)
    assert all(CURVES[p] == tuple(sorted(CURVES[p], key=lambda n: n or 10**9)) for p in CURVES)


def test_train_curve_trains_each_point_once_then_returns_them(tiny_model_dir, parts, ml100k,
                                                              tmp_path, monkeypatch):
    small = {"train": parts["train"].head(12), "valid": parts["valid"].head(8)}
    results = train_curve(str(tiny_model_dir), small, ml100k.movies, tmp_path, "temporal", "smoke",
                          sizes=(None, 8, 4, 4), seed=0, dtype="float32", device="cpu", progress=False)
    assert list(results) == ["4", "8", "all"]  # size order, a repeat trained once
    assert [r.n_train for r in results.values()] == [4, 8, 12]
    for name, r in results.items():
        folder = curve_dir(tmp_path, "temporal", "compact", name)
        assert Path(r.out_dir) == folder and (folder / "adapter" / "adapter_config.json").is_file()
        assert r.config["max_train_records"] is None and r.config["seed"] == 0
        assert r.n_valid == 8 and r.history[-1]["epoch"] == 2  # the smoke profile's 2 epochs
    # the 4-record point's records are the first 4 of the 8-record point's permutation
    four = set(sample_records(small["train"], 4)["record_id"])
    assert four < set(sample_records(small["train"], 8)["record_id"])

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point trained again")

    monkeypatch.setattr(train, "make_lora_model", no_training)
    again = train_curve(str(tiny_model_dir), small, ml100k.movies, tmp_path, "temporal", "smoke",
                        sizes=(4, 8), seed=0, dtype="float32", device="cpu", progress=False)
    assert {n: r.to_dict() for n, r in again.items()} == {n: results[n].to_dict() for n in ("4", "8")}

    rows = point_rows(results)
    assert rows["8"]["train_records"] == 8 and rows["8"]["train_epochs"] == 2
    assert rows["8"]["valid_loss_best"] == min(h["valid_loss"] for h in results["8"].history)
    metrics = [{**rows[n], "n_records": 24, "map_at_4": 0.01 * i, "map_at_4_low": 0.0,
                "map_at_4_high": 0.02 * i, "validity": 1.0, "hallucination_rate": 0.0,
                "setting": setting_for("compact", n)} for i, n in enumerate(("all", "4", "8"))]
    table = curve_table(metrics)
    assert list(table.columns) == ["training records", "epochs run", "epoch kept", "validation loss",
                                   "training minutes", "test records", "MAP@4", "MAP@4 low",
                                   "MAP@4 high", "validity", "hallucination"]
    assert table["training records"].tolist() == [4, 8, 12]  # sorted by size
    # the table rounds minutes to 4 decimals from the row's rounded seconds: up to one unit
    # of the last decimal (plus float slack) from rounding the exact seconds here
    assert table["training minutes"].tolist() == pytest.approx(
        [results[n].wall_seconds / 60 for n in ("4", "8", "all")], abs=1.5e-4)
    with pytest.raises(LlmrecError, match="at least one size"):
        train_curve(str(tiny_model_dir), small, ml100k.movies, tmp_path, "temporal", "smoke", sizes=())


def test_curve_command_trains_the_points_chapter_4_evaluates(tmp_path, ml100k, capsys, monkeypatch):
    """`python -m llmrec curve params/smoke.yaml --split blog --out DIR` trains the profile's
    points; chapter 4's section 4.6 (the same call) then finds them trained."""
    from llmrec.cli import main
    from llmrec.report.params import load_params

    params = load_params(ROOT / "params" / "smoke.yaml")
    assert params["curve"] is None and params["prompt_style"] == "alpaca"
    keep = tmp_path / "kept"
    assert main(["curve", str(ROOT / "params" / "smoke.yaml"), "--split", "blog",
                 "--out", str(tmp_path), "--keep", str(keep)]) == 0
    out = capsys.readouterr().out
    names = [str(n) for n in CURVES["smoke"]]
    for name in names:  # the compact points, whatever the file's prompt_style
        folder = curve_dir(tmp_path, "blog", CURVE_STYLE, name)
        assert (folder / "train_result.json").is_file() and f"({folder})" in out
    assert not (tmp_path / "curve" / "temporal").exists()
    # section 4.6's call: nothing left to train
    monkeypatch.setattr(train, "make_lora_model", lambda *a, **k: pytest.fail("trained again"))
    parts = split_records(build_records(ml100k.ratings), "blog", seed=params["seed"])
    found = train_curve(params["model"], parts, ml100k.movies, tmp_path, "blog", params["profile"],
                        params["curve"], "compact", params["seed"], params["lora"], params["dtype"],
                        params["device"], progress=False)
    assert list(found) == names and [r.n_train for r in found.values()] == list(CURVES["smoke"])
    # --keep: each finished point kept as adapter, config and result, the run folder's layout ...
    for name in names:
        kept = curve_dir(keep / "smoke", "blog", CURVE_STYLE, name)
        assert sorted(p.name for p in kept.iterdir()) == ["adapter", "train_config.json", "train_result.json"]
    # ... and a fresh machine's run folder gets them back without training (still patched to fail)
    capsys.readouterr()
    fresh = tmp_path / "fresh"
    assert main(["curve", str(ROOT / "params" / "smoke.yaml"), "--split", "blog",
                 "--out", str(fresh), "--keep", str(keep)]) == 0
    assert capsys.readouterr().out.count("restored the kept training state") == len(names)
    for name in names:
        assert (curve_dir(fresh, "blog", CURVE_STYLE, name) / "adapter" / "adapter_config.json").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # argparse: before any data loads
        main(["curve", str(ROOT / "params" / "smoke.yaml"), "--split", "movielens"])
    assert stop.value.code == 2 and "invalid choice: 'movielens'" in capsys.readouterr().err
