"""Shared fixtures: the real ml-100k (embedded asset) and a tiny random LLaMA saved to disk."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def ml100k():
    """The embedded MovieLens 100K (fetched into the cache by `make test` beforehand)."""
    from llmrec.data.movielens import load_movielens

    return load_movielens()


@pytest.fixture(scope="session")
def temporal_parts(ml100k):
    """The temporal split's train / valid / test records of the embedded ml-100k."""
    from llmrec.data.records import build_records, split_records

    return split_records(build_records(ml100k.ratings), "temporal")


@pytest.fixture(scope="session")
def item_knn_temporal(temporal_parts, ml100k):
    """item-kNN fitted on the temporal training records (a retriever for the ranker's tests)."""
    from llmrec.recommenders.baselines import fit_baseline

    return fit_baseline("item_knn", temporal_parts["train"], ml100k.movies)


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory):
    """The whole report on ``params/smoke.yaml`` (the tiny random model, every chapter), run
    once for every test that reads what a chapter wrote: the run's summary, its ``runs``
    folder (``model``: the model's run, ``common``: the model-independent one) and its
    ``reports`` folder."""
    from types import SimpleNamespace

    from llmrec.paths import repo_root
    from llmrec.report.params import common_params, load_params
    from llmrec.report.runner import run_report

    params = load_params(repo_root() / "params" / "smoke.yaml")
    root = tmp_path_factory.mktemp("smoke-report")
    runs, reports = root / "runs", root / "reports"
    summary = run_report([repo_root() / "params" / "smoke.yaml"], out_root=runs, reports_out=reports)
    return SimpleNamespace(summary=summary, runs=runs, reports=reports, name=params["name"],
                           model=runs / params["name"], common=runs / common_params(params)["name"])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random LLaMA-architecture model + BPE tokenizer saved with save_pretrained."""
    from llmrec.llm.tiny_model import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny model loaded, on one thread: on a shared 2-core machine two threads spin-wait."""
    import torch

    from llmrec.llm.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    torch.set_num_threads(threads)


class FilterRepo:
    """A scratch git repository whose nbstripout filter was installed by the Makefile's
    set-up (``make git-filters``, run with this interpreter): :meth:`stage` returns what git
    stores for a notebook."""

    def __init__(self, root):
        import shutil
        import subprocess
        import sys

        from llmrec.paths import repo_root

        self.root = root
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        for name in ("Makefile", ".gitattributes"):
            shutil.copy(repo_root() / name, root / name)
        subprocess.run(["make", "-s", "-o", ".venv/.installed", "git-filters", f"PY={sys.executable}"],
                       cwd=root, check=True)

    def stage(self, notebook, name: str = "notebook.ipynb") -> bytes:
        import shutil
        import subprocess

        shutil.copy(notebook, self.root / name)
        subprocess.run(["git", "add", name], cwd=self.root, check=True)
        return subprocess.run(["git", "show", f":{name}"], cwd=self.root, check=True,
                              capture_output=True).stdout


@pytest.fixture(scope="session")
def filter_repo(tmp_path_factory):
    return FilterRepo(tmp_path_factory.mktemp("filter-repo"))


@pytest.fixture
def one_thread():
    """torch on one thread: the machine's cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
