"""A language model as an encoder of movies: one vector per catalog item from its hidden states.

The blog's closing proposal: encode each movie's text with the language model and search
by similarity. :func:`item_texts` writes a movie as ``Title (Year)`` (variant ``title``) or
as ``Title (Year) genre, genre`` (variant ``genres``: the text the ``content`` baseline gives
the sentence encoder). :func:`encode_items` runs the causal LM once over every text (batched,
right-padded, no generation) and keeps, for a few layers, two poolings of each text's hidden
states: the ``mean`` over its tokens and the ``last`` token's (the only position that has
read the whole title in a causal model). Which layer and pooling a recommender uses is a
choice made on validation records (chapter 9), so all candidates come out of one pass.

transformers returns every layer's hidden states (``output_hidden_states=True``); what is
written here is only the pooling and the cache, which no library does for a causal LM
(sentence-transformers pools encoder models, and its ``models.Transformer`` wrapper would
load the model a second time). The vectors are cached under ``<cache>/embeddings/`` keyed by
the model, the texts and the layers, with their sha256 beside them: a file that does not
match is computed again.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmrec.artifacts import atomic_write_bytes
from llmrec.errors import LlmrecError
from llmrec.paths import cache_dir, slug

# torch is imported inside the functions that use it: the command line imports this module.

VARIANTS = ("title", "genres")
POOLINGS = ("mean", "last")


def item_texts(movies: pd.DataFrame, variant: str = "title") -> tuple[np.ndarray, list[str]]:
    """``(item ids in increasing order, one text per item)`` for ``variant`` (:data:`VARIANTS`)."""
    if variant not in VARIANTS:
        raise LlmrecError(f"unknown item text variant {variant!r}; use one of {', '.join(VARIANTS)}")
    frame = movies.sort_values("item_id")
    titles = frame["display_title"].astype(str).tolist()
    if variant == "genres":
        titles = [f"{t} {', '.join(g)}" for t, g in zip(titles, frame["genres"], strict=True)]
    return frame["item_id"].to_numpy(dtype=np.int64), titles


def candidate_layers(n_layers: int) -> tuple[int, ...]:
    """The hidden-state layers tried on validation: a quarter, half, three quarters of the
    way up, and the last (``hidden_states[0]`` is the token embeddings, never a candidate)."""
    return tuple(sorted({max(1, round(n_layers * f)) for f in (0.25, 0.5, 0.75)} | {n_layers}))


def _pool(hidden: Any, mask: Any) -> dict[str, Any]:
    """Mean over the real tokens, and the last real token, of (batch, tokens, dim) states."""
    import torch  # heavy optional dependency

    m = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    last_pos = mask.long().cumsum(1).argmax(1)  # right padding: the last position with mask 1
    last = hidden[torch.arange(hidden.shape[0]), last_pos]
    return {"mean": mean, "last": last}


def encode_texts(model: Any, tokenizer: Any, texts: Sequence[str], layers: Sequence[int],
                 batch_size: int = 32, progress: bool = True) -> dict[tuple[int, str], np.ndarray]:
    """``{(layer, pooling): (len(texts), hidden) float32}`` for each of ``layers`` and
    :data:`POOLINGS`, from one forward pass per batch (sorted by length, right-padded)."""
    import torch  # heavy optional dependency

    n_layers = int(model.config.get_text_config().num_hidden_layers)
    bad = [layer for layer in layers if not 1 <= layer <= n_layers]
    if bad:
        raise LlmrecError(f"layer {bad[0]} is outside the model's 1..{n_layers}; pick layers there")
    pad_side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = {(layer, p): [None] * len(texts) for layer in layers for p in POOLINGS}
    device = next(model.parameters()).device
    base = getattr(model, "base_model", model)
    model.eval()
    try:
        for a in tqdm(range(0, len(texts), batch_size), desc="encode items", unit="batch",
                      disable=not progress, leave=False):
            idx = order[a:a + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True).to(device)
            with torch.no_grad():  # the transformer alone: the output layer is not needed
                states = base(**enc, output_hidden_states=True).hidden_states
            for layer in layers:
                pooled = _pool(states[layer].float(), enc["attention_mask"])
                for p, values in pooled.items():
                    for row, i in zip(values.cpu().numpy(), idx, strict=True):
                        out[(layer, p)][i] = row
    finally:
        tokenizer.padding_side = pad_side
    return {key: np.stack(rows).astype(np.float32) for key, rows in out.items()}


def _cache_path(model_name: str, texts: Sequence[str], layers: Sequence[int]) -> Path:
    key = hashlib.sha256(json.dumps([model_name, list(texts), list(layers)]).encode()).hexdigest()
    return cache_dir() / "embeddings" / f"{slug(model_name)}-{key[:20]}.npz"


def _read_cache(path: Path) -> dict[tuple[int, str], np.ndarray] | None:
    stamp = path.with_suffix(".sha256")
    if not (path.is_file() and stamp.is_file()):
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != stamp.read_text().strip():
        print(f"{path.name}: cached item vectors do not match their checksum; computing them again")
        return None
    with np.load(io.BytesIO(data)) as z:
        return {(int(k.split("-")[0]), k.split("-")[1]): z[k] for k in z.files}


def item_embeddings(model: Any, tokenizer: Any, model_name: str, movies: pd.DataFrame,
                    variant: str = "title", layers: Sequence[int] | None = None,
                    batch_size: int = 32) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
    """``(item ids, {(layer, pooling): vectors})`` of every catalog item's ``variant`` text,
    read from the cache or computed (:func:`encode_texts`) and cached. ``layers`` defaults to
    :func:`candidate_layers` of the model."""
    ids, texts = item_texts(movies, variant)
    if layers is None:
        layers = candidate_layers(int(model.config.get_text_config().num_hidden_layers))
    path = _cache_path(model_name, texts, layers)
    cached = _read_cache(path)
    if cached is not None:
        return ids, cached
    vectors = encode_texts(model, tokenizer, texts, layers, batch_size)
    buf = io.BytesIO()
    np.savez(buf, **{f"{layer}-{p}": v for (layer, p), v in vectors.items()})
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_bytes(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest().encode())
    return ids, vectors


def nearest(vectors: np.ndarray, ids: np.ndarray, query_ids: Sequence[int], k: int = 5,
            center: bool = True) -> dict[int, list[int]]:
    """The ``k`` nearest items (cosine) of each query item, itself excluded."""
    v = prepare(vectors, center)
    pos = {int(i): r for r, i in enumerate(ids)}
    out = {}
    for q in query_ids:
        if int(q) not in pos:
            raise LlmrecError(f"item {q} is not in the catalog; pick a catalog item id")
        sims = v @ v[pos[int(q)]]
        sims[pos[int(q)]] = -np.inf
        out[int(q)] = [int(ids[j]) for j in np.argsort(-sims, kind="stable")[:k]]
    return out


def prepare(vectors: np.ndarray, center: bool = True) -> np.ndarray:
    """Unit-length rows, after removing the mean vector when ``center``: a causal LM's hidden
    states share a large common direction (anisotropy), which makes every cosine near 1."""
    v = np.asarray(vectors, dtype=np.float64)
    if center:
        v = v - v.mean(axis=0, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
