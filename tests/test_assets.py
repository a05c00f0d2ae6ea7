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
    # never fetched: not "missing", and how to fetch it
    line = next(line for line in out.splitlines() if line.startswith("smollm2-135m "))
    assert "not fetched yet" in line and "missing" not in line
    assert "make report or `python -m llmrec assets fetch smollm2-135m` fetches it" in line
    # fetched, then a file is gone: missing; a file changed: damaged
    (fake["cache"] / "fake" / "folder" / "a.json").unlink()
    assert assets.asset_status("fake") == "missing"
    assets.fetch("fake")
    (fake["cache"] / "fake" / "data.tsv").write_bytes(DATA.replace(b"1", b"7"))
    assert assets.asset_status("fake") == "damaged"
    assert main(["assets", "list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("fake "))
    assert "damaged" in line and "`python -m llmrec assets fetch fake` rebuilds it" in line


def _same_size_edit(path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] = data[offset] ^ 0x01
    path.write_bytes(bytes(data))


def test_same_size_edit_is_extracted_again_with_one_notice(fake, capsys):
    folder = assets.fetch("fake")
    capsys.readouterr()
    _same_size_edit(folder / "data.tsv", 30)
    assert (folder / "data.tsv").stat().st_size == len(DATA)
    assert not assets.is_ready("fake")
    assert assets.fetch("fake") == folder
    assert (folder / "data.tsv").read_bytes() == DATA
    err = capsys.readouterr().err.strip().splitlines()
    notices = [line for line in err if line.startswith("llmrec: ")]
    assert len(notices) == 1 and str(folder / "data.tsv") in notices[0] and "again" in notices[0]
    assert len(fake["calls"]) == 4  # fetched again


def test_damaged_entry_that_cannot_be_rebuilt_names_file_and_command(fake):
    folder = assets.fetch("fake")
    (folder / "model.bin").write_bytes((folder / "model.bin").read_bytes()[:100])  # truncated
    for path in fake["index"].iterdir():
        path.unlink()  # no registry
    with pytest.raises(LlmrecError) as err:
        assets.fetch("fake")
    msg = str(err.value)
    assert str(folder / "model.bin") in msg and "`python -m llmrec assets fetch fake`" in msg
    assert "\n" not in msg


def test_large_files_are_hashed_when_their_mtime_moves(fake, monkeypatch, capsys):
    """The rule of the module docstring, with every file counted as large."""
    import os

    monkeypatch.setattr(assets, "HASH_EVERY_USE", 0)
    folder = assets.fetch("fake")
    stamp = json.loads((folder / ".ok").read_text())
    path = folder / "model.bin"
    assert stamp["files"]["model.bin"]["mtime_ns"] == path.stat().st_mtime_ns
    hashed = []
    real = assets.sha256_file
    monkeypatch.setattr(assets, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    assert assets.is_ready("fake") and hashed == []  # size + mtime only

    # an edit that keeps the size and the mtime is not seen at use, only by `assets fetch`
    before = path.stat()
    _same_size_edit(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert assets.is_ready("fake")
    assert main(["assets", "fetch", "fake"]) == 0
    assert path.read_bytes() == PART_A + PART_B and "model.bin" in capsys.readouterr().err

    # an edit that moves the mtime is hashed at use and found
    _same_size_edit(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    hashed.clear()
    assert not assets.is_ready("fake") and "model.bin" in hashed
    assets.fetch("fake")
    assert path.read_bytes() == PART_A + PART_B

    # a whole file whose mtime moved (a copy) is hashed once, and its mtime recorded
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2 * 10**9))
    hashed.clear()
    assert assets.is_ready("fake") and "model.bin" in hashed
    hashed.clear()
    assert assets.is_ready("fake") and hashed == []
    # a stamp written before mtimes were recorded: hashed once, then fast
    stamp = json.loads((folder / ".ok").read_text())
    for info in stamp["files"].values():
        del info["mtime_ns"]
    (folder / ".ok").write_text(json.dumps(stamp))
    assert assets.is_ready("fake") and len(hashed) == len(stamp["files"])
    hashed.clear()
    assert assets.is_ready("fake") and hashed == []


@pytest.fixture()
def movielens_cache(tmp_path, monkeypatch):
    """The real ml-100k files and their stamp copied into a temporary cache, and a wheel
    holding them (the cached wheel a rebuild extracts from, as if placed by hand)."""
    real = assets.movielens_dir()  # the shared cache: only read
    cache = tmp_path / "cache"
    shutil.copytree(real, cache / "movielens-100k")
    hand = cache / "wheels"
    hand.mkdir()
    wheel = hand / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for spec in assets.ASSETS["movielens-100k"].files:
            z.writestr(spec.parts[0][1], (real / spec.dest).read_bytes())
    a = assets.ASSETS["movielens-100k"]
    monkeypatch.setitem(assets.ASSETS, "movielens-100k", Asset(
        a.name, a.kind, a.description, (Wheel("recbole", "1.2.1", _sha(wheel.read_bytes())),),
        files=a.files))
    monkeypatch.setenv("LLMREC_CACHE", str(cache))
    monkeypatch.setattr(assets, "_pip_download", lambda wheel, dest: (_ for _ in ()).throw(
        RuntimeError("no registry in this test")))
    return cache / "movielens-100k"


@pytest.mark.parametrize("damage", ["same size", "truncated"])
def test_damaged_movielens_is_extracted_again(movielens_cache, damage, capsys):
    from llmrec.data.movielens import load_movielens

    inter = movielens_cache / "ml-100k.inter"
    text = inter.read_text()
    if damage == "same size":  # every rating of users 1-9 moved to user 1, same byte count
        lines = text.splitlines(keepends=True)
        lines = [lines[0]] + [("1" + line[1:]) if line[0].isdigit() and line[1] == "\t" else line
                              for line in lines[1:]]
        inter.write_text("".join(lines))
        assert inter.stat().st_size == len(text.encode())
    else:
        inter.write_text(text[: len(text) // 3])
    ml = load_movielens()
    assert ml.ratings["user_id"].nunique() == 943 and len(ml.ratings) == 100_000
    assert inter.read_text() == text
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("llmrec: ")]
    assert len(notices) == 1 and str(inter) in notices[0]


def test_damaged_movielens_without_its_wheel_names_file_and_command(movielens_cache):
    from llmrec.data.movielens import load_movielens

    for path in (movielens_cache.parent / "wheels").iterdir():
        path.unlink()
    _same_size_edit(movielens_cache / "ml-100k.item", 50)
    with pytest.raises(LlmrecError) as err:
        load_movielens()
    msg = str(err.value)
    assert str(movielens_cache / "ml-100k.item") in msg and "\n" not in msg
    assert "`python -m llmrec assets fetch movielens-100k`" in msg


@pytest.fixture()
def fake_encoder(tmp_path, monkeypatch):
    """A temporary cache and a stand-in for MiniLM that counts what it embeds."""
    import numpy as np

    from llmrec.evaluation import matching

    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path / "cache"))
    seen = []

    class Encoder:
        def encode(self, texts, **kw):
            seen.append(len(texts))
            rng = np.random.default_rng(len(texts))
            emb = rng.normal(size=(len(texts), 384)).astype(np.float32)
            return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    monkeypatch.setattr(matching, "_sentence_model", lambda: Encoder())
    return seen


@pytest.mark.parametrize("damage", ["same size", "truncated", "no sha256 recorded"])
def test_damaged_title_embeddings_are_embedded_again(fake_encoder, damage, capsys):
    import numpy as np

    from llmrec.evaluation.matching import embed_texts

    titles = [f"Movie {i} (1990)" for i in range(50)]
    first = embed_texts(titles)
    (path,) = (assets.cache_dir() / "embeddings").glob("*.npy")
    sidecar = path.with_name(path.name + ".sha256")
    assert sidecar.read_text().strip() == _sha(path.read_bytes())
    assert np.array_equal(embed_texts(titles), first) and fake_encoder == [50]  # cached
    if damage == "same size":
        _same_size_edit(path, path.stat().st_size - 3)  # a bit of the last float
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:  # written before the sha256 was: checked by shape and unit rows, then recorded
        sidecar.unlink()
        assert np.array_equal(embed_texts(titles), first) and fake_encoder == [50]
        assert sidecar.read_text().strip() == _sha(path.read_bytes())
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x40  # the last float's exponent: no longer a unit row
        path.write_bytes(bytes(data))
        sidecar.unlink()
    capsys.readouterr()
    assert np.array_equal(embed_texts(titles), first)
    assert fake_encoder == [50, 50]  # embedded again
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("llmrec: ")]
    assert len(notices) == 1 and str(path) in notices[0]
    assert sidecar.read_text().strip() == _sha(path.read_bytes())
    assert np.array_equal(embed_texts(titles), first) and fake_encoder == [50, 50]


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


#: The assembled GGUF files of the Qwen2.5-Coder models (their sha256 is in the registry).
QWEN_SIZES = {"qwen2.5-coder-0.5b": (6, 491_400_064), "qwen2.5-coder-1.5b": (22, 1_117_320_768)}


def test_qwen_registry_lists_every_piece_in_order():
    for name, (n, _) in QWEN_SIZES.items():
        asset = assets.ASSETS[name]
        assert len(asset.wheels) == n and len(asset.files) == 1 and asset.gguf == asset.files[0].dest
        assert [w.name.rsplit("part", 1)[1] for w in asset.wheels] == [str(i) for i in range(1, n + 1)]
        assert [m.rsplit("/part", 1)[1] for _, m in asset.files[0].parts] == [f"{i:02d}.bin" for i in range(1, n + 1)]
        assert [w for w, _ in asset.files[0].parts] == list(range(n))


@pytest.mark.parametrize("name", sorted(QWEN_SIZES))
def test_qwen_pieces_assemble_to_the_published_checksum(name, tmp_path):
    """The real wheels (from the asset cache's wheels/ when placed there, else pip), each
    checked by its sha256, concatenated: the file has the size and sha256 the registry gives."""
    asset = assets.ASSETS[name]
    try:
        folder = assets._extract_raw(asset, tmp_path / name)
    except LlmrecError as err:
        if "could not download" in str(err):
            pytest.skip(f"the package index cannot be reached: {err}")
        raise
    spec = asset.files[0]
    assert (folder / spec.dest).stat().st_size == QWEN_SIZES[name][1]
    assert assets.sha256_file(folder / spec.dest) == spec.sha256
    assert assets.check_folder(folder, full=True) == []  # stamped as it was written
