"""A trained LLM ranker over a retriever's candidates: LlamaRec's recipe on our records.

LlamaRec (Yue et al. 2023, "LlamaRec: Two-Stage Recommendation using Large Language
Models for Ranking"): a cheap retriever proposes 20 candidates, the language model sees
the history and the candidates listed as (A), (B), ... and is fine-tuned (LoRA) to answer
with the letter of the item the user chose; at test time one forward pass reads the
letters' logits (the verbalizer), a log-softmax over the candidates' letters only, and
that orders the candidates. Here, on PROTOCOL.md's records (6 liked items in, 4 out):

- a training example is one training record: the retriever's top ``n_candidates`` from its
  6 inputs (inputs excluded), listed in a seeded shuffled order (keyed by the seed and the
  record id, so an example does not depend on which other records are built with it); the
  answer is the letter of one of the record's targets among the candidates (a seeded pick
  of those present). A record with no target among its candidates teaches nothing about
  ordering them and is dropped, as LlamaRec drops them; the counts are returned. The
  negatives are the other candidates: hard negatives from the retriever, never random items.
  The retriever was fitted on the training records themselves, so a training record's
  candidates hold more of its targets than a validation or test record's do (in-sample,
  as in LlamaRec); ``stats["targets_in_candidates"]`` of each part shows by how much.
- ``with_year=False`` lists every title without its year (``Toy Story``, not ``Toy Story
  (1995)``): a shorter prompt on both embedded tokenizers, which write each digit as a
  token (:func:`listing_lengths` measures both), so less work per forward pass. It is another prompt, so its rows
  carry the setting suffix ``-no-year`` (:func:`setting_suffix`); the ``cpu`` profile uses
  it (:data:`llmrec.report.params.RANKING`).
- the answer is the letter alone; :func:`llmrec.llm.train.train_lora` puts the loss on its
  token and EOS (``train_on_inputs=False``), and :func:`candidate_scores` reads exactly
  that token (:func:`answer_letter_ids`) after the same prompt.

Why here: no maintained library trains an LLM ranker over our records (LlamaRec's code is
a research repository tied to its own datasets and its LRURec retriever), while every
piece it needs is already in this package: the prompt (:func:`llmrec.recommenders.rerank.letter_prompt`),
the letter scores (:func:`llmrec.recommenders.rerank.rerank_letters`), LoRA training with checkpoints
and resume (:func:`llmrec.llm.train.train_lora`) and the retrievers (:mod:`llmrec.recommenders.baselines`).
Score fusion of ranker and retriever is :mod:`llmrec.recommenders.fusion`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.artifacts import read_jsonl, write_jsonl
from llmrec.data.formats import title_map, titles_for
from llmrec.data.samples import sample_key
from llmrec.errors import LlmrecError
from llmrec.llm.models import load_tokenizer, resolve_model
from llmrec.llm.train import (
    IGNORE_INDEX,
    TrainConfig,
    TrainResult,
    config_for,
    tokenize_pair,
    train_lora,
)
from llmrec.profiles import RANKING
from llmrec.recommenders.base import Recommender, ranked_predictions, register
from llmrec.recommenders.rerank import LETTERS, letter_prompt, order_by_scores, rerank_letters

# torch, transformers and peft are imported by the functions of llmrec.recommenders.rerank and
# llmrec.llm.train this module calls, not here: the command line imports the package.

#: LlamaRec's candidate count (its retriever's top 20).
N_CANDIDATES = 20


def _check_candidates(n_candidates: int) -> None:
    """One letter per candidate: between 1 and 26 of them."""
    if not 1 <= n_candidates <= len(LETTERS):
        raise LlmrecError(f"n_candidates must be between 1 and {len(LETTERS)} (one letter each), "
                          f"got {n_candidates}")


def _rng(record_id: object, seed: int) -> random.Random:
    """The record's own random stream: a hash of the seed and the record id (SHA-256, the
    same in every process), so a record's example does not depend on the others."""
    return random.Random(int.from_bytes(sample_key(record_id, seed)[:8], "big"))


def _shuffled(record_id: object, n: int, seed: int) -> tuple[list[int], random.Random]:
    rng = _rng(record_id, seed)
    order = list(range(n))
    rng.shuffle(order)
    return order, rng


def shown_order(record_id: object, n: int, seed: int = 0) -> list[int]:
    """The order a record's ``n`` candidates are listed in: letter ``j`` shows the
    candidate at retriever rank ``order[j]`` (0-based). Seeded by ``seed`` and the record id."""
    return _shuffled(record_id, n, seed)[0]


def answer_letter_ids(tokenizer: Any, n: int) -> list[int]:
    """The token id training puts the loss on for each answer letter A, B, ... (the first
    answer token :func:`llmrec.llm.train.tokenize_pair` gives it): the token the ranker reads.

    On the embedded tokenizers (tiny, SmolLM2, Gemma 3) it is the token
    :func:`llmrec.recommenders.rerank.letter_token_ids` reads after ``(``; a SentencePiece tokenizer
    that prefixes a space writes a lone answer letter differently, and the ranker then
    reads what it was trained to write. Raises when a letter is more than one token or
    two letters share one."""
    if n > len(LETTERS):
        raise LlmrecError(f"{n} candidates but only {len(LETTERS)} letters; retrieve at most 26")
    prompt = letter_prompt(["A (2000)"], ["B (2001)"] * n)
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    ids = []
    for letter in LETTERS[:n]:
        f = tokenize_pair(tokenizer, prompt, letter, cutoff_len=10**6)
        answer = [t for t in f["labels"] if t != IGNORE_INDEX]
        if len(answer) != 1 + len(eos) or answer[1:] != eos:
            raise LlmrecError(f"this tokenizer writes the answer letter {letter!r} as {len(answer) - len(eos)} "
                              "tokens; the ranker reads one token per letter: use another model")
        ids.append(answer[0])
    if len(set(ids)) != len(ids):
        raise LlmrecError("two answer letters share a token with this tokenizer; use another model")
    return ids


def setting_suffix(with_year: bool) -> str:
    """What a ranker or fusion setting adds for its title format: nothing with years
    (LlamaRec's listing), ``-no-year`` without."""
    return "" if with_year else "-no-year"


def ranker_config(params: Mapping[str, Any]) -> TrainConfig:
    """The ranker's training configuration for a parameter set (chapter 8.2): the file's
    ``lora`` options with :data:`llmrec.report.params.RANKING`'s examples and epochs, no early
    stopping, cutoff 1,024 tokens (a 20-candidate prompt is about 385 SmolLM2 tokens, 470 at
    most; the tiny test tokenizer needs more). On a GPU (``full``) activations are
    recomputed in the backward pass (gradient checkpointing): 20-candidate prompts of a
    30B or 65B model would not fit the memory their parameter files name otherwise."""
    rank = RANKING[params["profile"]]
    return config_for(params["profile"], **{
        **params["lora"], "seed": params["seed"], "quantization": params["quantization"],
        "cutoff_len": 1024, "epochs": rank["epochs"], "patience": None, "validations_per_epoch": 1,
        "max_train_records": rank["train"], "max_valid_records": rank["valid"],
        "gradient_checkpointing": params["profile"] == "full" or bool(params["lora"].get("gradient_checkpointing"))})


def ranker_examples(records: pd.DataFrame, retriever: Any, movies: Any,
                    n_candidates: int = N_CANDIDATES, seed: int = 0, with_year: bool = True
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Training pairs of the ranker from ``records`` (a split's training or validation part).

    Per record: the retriever's top ``n_candidates`` from its inputs (inputs excluded), kept
    only when at least one target is among them; the candidates listed in the record's
    seeded order (:func:`shown_order`); the answer a seeded pick of the targets present.
    A pair is ``{"prompt", "answer", "record_id", "answer_id", "candidates"}``: ``prompt``
    is :func:`llmrec.recommenders.rerank.letter_prompt` (it ends with ``(``), ``answer`` the answer's
    letter only, ``candidates`` in retriever order; titles with their year unless
    ``with_year=False``. ``stats``: ``records``, ``kept``,
    ``dropped``, ``kept_share`` and ``targets_in_candidates`` (mean share of a record's
    targets among its candidates, over all records)."""
    _check_candidates(n_candidates)
    names = title_map(movies, with_year)
    candidates = retriever.recommend_many(records["input_ids"], n_candidates) if len(records) else []
    pairs: list[dict[str, Any]] = []
    shares = []
    for rid, inputs, targets, cands in zip(records["record_id"], records["input_ids"],
                                           records["target_ids"], candidates, strict=True):
        cands = [int(c) for c in cands]
        present = [int(t) for t in targets if int(t) in cands]
        shares.append(len(present) / len(targets))
        if not present:
            continue
        order, rng = _shuffled(rid, len(cands), seed)
        answer = rng.choice(present)
        shown = [cands[j] for j in order]
        prompt = letter_prompt(titles_for(inputs, names), titles_for(shown, names))
        pairs.append({"prompt": prompt, "answer": LETTERS[shown.index(answer)], "record_id": rid,
                      "answer_id": answer, "candidates": cands})
    n = len(records)
    stats = {"records": n, "kept": len(pairs), "dropped": n - len(pairs),
             "kept_share": len(pairs) / n if n else float("nan"),
             "targets_in_candidates": float(np.mean(shares)) if shares else float("nan")}
    return pairs, stats


def listing_lengths(tokenizer: Any, records: pd.DataFrame, retriever: Any, movies: Any,
                    n_candidates: int = N_CANDIDATES, seed: int = 0) -> pd.DataFrame:
    """The ranker's prompt length in tokens, with and without years, over the examples of
    ``records`` (:func:`ranker_examples`): one row per title format, ``examples``,
    ``mean_tokens``, ``max_tokens`` and ``share`` (of the mean with years). A forward pass
    costs in proportion to its tokens, so ``share`` is the work a pass without years does."""
    rows = []
    for with_year in (True, False):
        pairs, _ = ranker_examples(records, retriever, movies, n_candidates, seed, with_year)
        lengths = [len(tokenizer(p["prompt"], add_special_tokens=True)["input_ids"]) for p in pairs]
        rows.append({"titles": "with year" if with_year else "without year", "examples": len(lengths),
                     "mean_tokens": float(np.mean(lengths)) if lengths else float("nan"),
                     "max_tokens": max(lengths, default=0)})
    frame = pd.DataFrame(rows)
    frame["share"] = frame["mean_tokens"] / frame["mean_tokens"].iloc[0]
    return frame


def train_ranker(model_name: str, train_records: pd.DataFrame, valid_records: pd.DataFrame,
                 retriever: Any, movies: Any, out_dir: str | Path, config: TrainConfig | None = None,
                 *, n_candidates: int = N_CANDIDATES, seed: int = 0, with_year: bool = True,
                 dtype: str = "auto", device: str = "auto", progress: bool = True
                 ) -> tuple[TrainResult, dict[str, dict[str, Any]]]:
    """LoRA-train ``model_name`` to answer with the letter of a target among the
    retriever's candidates (:func:`ranker_examples` of the training and validation records).

    Training is :func:`llmrec.llm.train.train_lora`'s (checkpoints, resume, and a finished run
    in ``out_dir`` returned as stored, keyed by the config and the examples). The config's
    ``max_train_records``/``max_valid_records`` subsample the kept examples. Returns the
    result and ``{"train": stats, "valid": stats}``. Checks first that each answer letter
    is one token and that no prompt is cut by ``cutoff_len``."""
    config = config or config_for("cpu")
    train_pairs, train_stats = ranker_examples(train_records, retriever, movies, n_candidates, seed, with_year)
    valid_pairs, valid_stats = ranker_examples(valid_records, retriever, movies, n_candidates, seed, with_year)
    if not train_pairs:
        raise LlmrecError(f"no training record has a target among the retriever's top {n_candidates}; "
                          "use more training records or a better retriever")
    tokenizer = load_tokenizer(resolve_model(model_name))
    answer_letter_ids(tokenizer, n_candidates)
    longest = max(len(tokenizer(p["prompt"], add_special_tokens=True)["input_ids"])
                  for p in train_pairs + valid_pairs)
    if longest + 2 > config.cutoff_len:
        raise LlmrecError(f"ranker prompts are up to {longest} tokens, and the answer letter and EOS "
                          f"need 2 more; set lora.cutoff_len to at least {longest + 2} "
                          f"(now {config.cutoff_len})")
    result = train_lora(model_name, train_pairs, valid_pairs, out_dir, config, dtype=dtype,
                        device=device, progress=progress)
    return result, {"train": train_stats, "valid": valid_stats}


def candidate_scores(model: Any, tokenizer: Any, records: pd.DataFrame, retriever: Any, movies: Any,
                     n_candidates: int = N_CANDIDATES, seed: int = 0, batch_size: int = 8,
                     progress: bool = True, with_year: bool = True) -> list[dict[str, Any]]:
    """Per record: the retriever's candidates and scores, and the ranker's scores of them.

    Returns one dict per record, in order: ``record_id``, ``candidates`` (retriever order),
    ``retriever_scores`` (the retriever's raw scores of them,
    :meth:`~llmrec.recommenders.baselines.Baseline.top_with_scores`), ``llm_scores`` (the log-softmax of
    the candidates' letter logits over those letters only, in retriever order) and
    ``shown`` (:func:`shown_order`, the listing the prompt used: the same seeded order as
    training; titles as :func:`ranker_examples` wrote them for ``with_year``). One forward
    pass per record through :func:`llmrec.recommenders.rerank.rerank_letters`,
    ``batch_size`` prompts at a time with left padding (prompts batched by length)."""
    if len(records) == 0:
        return []
    _check_candidates(n_candidates)
    names = title_map(movies, with_year)
    ids, raw = retriever.top_with_scores(records["input_ids"], n_candidates)
    prompts, orders = [], []
    for rid, inputs, cands in zip(records["record_id"], records["input_ids"], ids, strict=True):
        order = shown_order(rid, len(cands), seed)
        prompts.append(letter_prompt(titles_for(inputs, names), titles_for([cands[j] for j in order], names)))
        orders.append(order)
    by_length = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    scored = rerank_letters(model, tokenizer, [prompts[i] for i in by_length],
                            [len(ids[i]) for i in by_length], batch_size=batch_size, progress=progress,
                            over="letters", token_ids=answer_letter_ids(tokenizer, n_candidates))
    shown_scores: list[list[float]] = [[] for _ in prompts]
    for i, s in zip(by_length, scored, strict=True):
        shown_scores[i] = s
    out = []
    for rid, cands, cand_raw, order, s in zip(records["record_id"], ids, raw, orders, shown_scores,
                                              strict=True):
        llm = [0.0] * len(cands)
        for pos, j in enumerate(order):
            llm[j] = float(s[pos])
        out.append({"record_id": rid, "candidates": [int(c) for c in cands],
                    "retriever_scores": [float(x) for x in cand_raw], "llm_scores": llm,
                    "shown": order})
    return out


def recall_at(retriever: Any, records: pd.DataFrame, n: int = N_CANDIDATES) -> dict[str, Any]:
    """The ceiling of any reranker of the retriever's top ``n``: ``any_target`` (share of
    records with at least one target among them) and ``target_share`` (mean share of a
    record's targets among them), over ``n_records``."""
    if len(records) == 0:
        raise LlmrecError("no records to measure the retriever's recall on")
    tops = retriever.recommend_many(records["input_ids"], n)
    shares = [len(set(map(int, t)) & set(map(int, top))) / len(t)
              for t, top in zip(records["target_ids"], tops, strict=True)]
    return {"n": n, "n_records": len(shares), "any_target": float(np.mean([s > 0 for s in shares])),
            "target_share": float(np.mean(shares))}


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(x), 4) for x in values]


@register("ranker")
class TrainedRanker(Recommender):
    """The trained ranker as a recommender: the retriever's ``n_candidates`` per record,
    ordered by the ranker's letter scores (ties keep the retriever's order); the first
    ``k`` are the list.

    ``model``, ``tokenizer``: the base model with the trained adapter
    (:func:`llmrec.llm.train.load_tuned`). Predictions keep ``candidates`` (retriever order),
    ``retriever_scores`` and ``llm_scores``. :meth:`candidate_scores` caches each record's
    scores (by record id and inputs), so :class:`llmrec.recommenders.fusion.Fusion` reuses them without
    a second pass. With ``scores_file`` (:func:`scores_file`) the scores also go to disk,
    and a rerun with the same adapter reads back every record whose candidates and listing
    are unchanged: the same numbers, without the forward pass (``reused_scores`` in the
    row counts them). ``batch_size``: prompts a forward pass (None: 1 on a CPU, 8 on an
    accelerator). ``with_year``: the titles of the prompts the adapter was trained on
    (:func:`ranker_examples`)."""

    def __init__(self, model: Any, tokenizer: Any, movies: Any, retriever: Any, *, system: str,
                 setting: str = "lora-ranker/letters", n_candidates: int = N_CANDIDATES,
                 k: int = 10, seed: int = 0, batch_size: int | None = None, progress: bool = True,
                 scores_file: str | Path | None = None, with_year: bool = True):
        _check_candidates(n_candidates)
        if batch_size is None:
            # one prompt a pass on a CPU: no padding, no attention mask (measured on SmolLM2's
            # ranker, 1 thread: 0.94 s a record against 1.01 batched by 8, same orders);
            # batches of 8 on an accelerator
            batch_size = 1 if next(model.parameters()).device.type == "cpu" else 8
        self.model, self.tokenizer, self.movies, self.retriever = model, tokenizer, movies, retriever
        self.system, self.setting = system, setting
        self.n_candidates, self.k, self.seed = n_candidates, k, seed
        self.batch_size, self.progress, self.with_year = batch_size, progress, with_year
        self.score_seconds = 0.0
        self.scored_records = 0
        self.reused_records = 0
        self._first: dict[str, Any] = {}  # first_pick_summary of the last predict
        self._cache: dict[tuple, dict[str, Any]] = {}
        self.scores_file = Path(scores_file) if scores_file is not None else None
        self._stored: dict[tuple, dict[str, Any]] = {}
        if self.scores_file is not None and self.scores_file.is_file():
            self._stored = {self._key(e["record_id"], e["input_ids"]): e for e in read_jsonl(self.scores_file)}

    @staticmethod
    def _key(record_id: object, inputs: Sequence[int]) -> tuple:
        return (record_id, tuple(int(i) for i in inputs))

    def candidate_scores(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        """:func:`candidate_scores` of ``records``, each record scored once per object."""
        keys = [self._key(r, i) for r, i in zip(records["record_id"], records["input_ids"], strict=True)]
        missing = [n for n, key in enumerate(keys) if key not in self._cache]
        if missing and self._stored:
            missing = self._reuse(records.iloc[missing], [keys[n] for n in missing], missing)
        if missing:
            start = time.perf_counter()
            fresh = candidate_scores(self.model, self.tokenizer, records.iloc[missing], self.retriever,
                                     self.movies, self.n_candidates, self.seed, self.batch_size,
                                     self.progress, self.with_year)
            self.score_seconds += time.perf_counter() - start
            self.scored_records += len(fresh)
            for n, entry in zip(missing, fresh, strict=True):
                self._cache[keys[n]] = entry
            if self.scores_file is not None:
                self._store()
        return [self._cache[key] for key in keys]

    def _reuse(self, records: pd.DataFrame, keys: list[tuple], positions: list[int]) -> list[int]:
        """Take the stored scores of ``records`` whose candidates and listing are today's
        (the retriever's fresh top ``n_candidates`` and :func:`shown_order`); returns the
        positions still to score."""
        ids, raw = self.retriever.top_with_scores(records["input_ids"], self.n_candidates)
        left = []
        for pos, key, rid, cands, cand_raw in zip(positions, keys, records["record_id"], ids, raw, strict=True):
            old = self._stored.get(key)
            cands = [int(c) for c in cands]
            if (old is not None and old["candidates"] == cands
                    and old["shown"] == shown_order(rid, len(cands), self.seed)):
                self._cache[key] = {**{k: old[k] for k in ("record_id", "candidates", "llm_scores", "shown")},
                                    "retriever_scores": [float(x) for x in cand_raw]}
                self.reused_records += 1
            else:
                left.append(pos)
        return left

    def _store(self) -> None:
        """Every record scored so far (and any stored before), in ``scores_file``: a rerun of
        the same adapter reads them back instead of another forward pass."""
        entries = {**self._stored, **self._cache}
        self._stored = entries
        write_jsonl(self.scores_file, [{"record_id": e["record_id"], "input_ids": list(key[1]),
                                        "candidates": e["candidates"], "shown": e["shown"],
                                        "llm_scores": e["llm_scores"]} for key, e in entries.items()])

    def predict(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        entries = self.candidate_scores(records)
        self._first = first_pick_summary(entries)
        ranked = order_by_scores([e["candidates"] for e in entries], [e["llm_scores"] for e in entries],
                                 self.k)
        extra = [{"candidates": e["candidates"], "retriever_scores": _rounded(e["retriever_scores"]),
                  "llm_scores": _rounded(e["llm_scores"])} for e in entries]
        return ranked_predictions(ranked, self.k, extra)

    def settings(self) -> dict[str, Any]:
        per = self.score_seconds / self.scored_records if self.scored_records else float("nan")
        return {"retriever": getattr(self.retriever, "system", type(self.retriever).__name__),
                "n_candidates": self.n_candidates, "shuffle_seed": self.seed,
                "with_year": self.with_year, "score_seconds": round(self.score_seconds, 3),
                "score_seconds_per_record": round(per, 4), "reused_scores": self.reused_records,
                **self._first}


def scores_file(adapter_dir: str | Path, dtype: str, seed: int = 0, with_year: bool = True) -> Path:
    """Where :class:`TrainedRanker` keeps the scores of one adapter: beside it, named by a
    hash of the adapter's weights, the dtype it runs in, the listing seed and the title
    format, so a retrained adapter, another precision or another prompt never reads
    another's scores."""
    import hashlib

    weights = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights.is_file():
        raise LlmrecError(f"no adapter weights in {adapter_dir}; train the ranker first (train_ranker)")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    return Path(adapter_dir).parent / "scores" / f"{digest}-{dtype}-seed{seed}{setting_suffix(with_year)}.jsonl.gz"


def chance_loss(tokenizer: Any, n_candidates: int = N_CANDIDATES) -> float:
    """The loss of a ranker that guesses the letter uniformly among ``n_candidates`` and is
    sure of the rest of its answer: ln(n) spread over an answer's scored tokens (the letter
    and the end-of-sequence token, as :func:`llmrec.llm.train.tokenize_pair` labels them: 2 on
    the embedded tokenizers). A ranker whose validation loss ends near it learned nothing
    about which candidate is right."""
    scored = len(tokenizer(LETTERS[0], add_special_tokens=False)["input_ids"])
    scored += tokenizer.eos_token_id is not None
    return math.log(n_candidates) / scored


def first_picks(entries: Sequence[Mapping[str, Any]], n_candidates: int = N_CANDIDATES) -> pd.DataFrame:
    """Which letter the ranker put first, over :func:`candidate_scores`' ``entries``: one row
    per letter, ``records`` and ``share``. A ranker that read the candidates spreads its
    first picks over the letters (the candidates are listed in a seeded shuffle, so the
    right answer's letter is uniform); one that learned only which letter answers most
    often piles them on one letter."""
    counts = dict.fromkeys(LETTERS[:n_candidates], 0)
    for e in entries:
        scores = e["llm_scores"]
        best = max(range(len(scores)), key=lambda j: (scores[j], -j))  # retriever order breaks ties
        counts[LETTERS[list(e["shown"]).index(best)]] += 1
    frame = pd.DataFrame({"letter": list(counts), "records": list(counts.values())})
    frame["share"] = frame["records"] / max(1, len(entries))
    return frame


def first_pick_summary(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``first_letter`` (the letter the ranker put first most often) and
    ``first_letter_share`` (on what share of the records): the ranker row's check that it
    read the candidates (:func:`first_picks`)."""
    if not entries:
        return {}
    picks = first_picks(entries, max(len(e["candidates"]) for e in entries))
    top = picks.sort_values(["records", "letter"], ascending=[False, True]).iloc[0]
    return {"first_letter": str(top["letter"]), "first_letter_share": round(float(top["share"]), 4)}


@register("letter-order")
class LetterOrder(Recommender):
    """The chance level of any ranker of the retriever's candidates: the retriever's top
    ``n_candidates`` in the order the ranker's prompt lists them (:func:`shown_order`, a
    seeded shuffle), the list of a ranker that always answers (A), (B), (C), (D). A ranker
    that learned nothing about the candidates scores this, in expectation; it uses no
    language model, so it is the same for every model with the same retriever and seed."""

    def __init__(self, retriever: Any, *, n_candidates: int = N_CANDIDATES, k: int = 10, seed: int = 0):
        _check_candidates(n_candidates)
        self.retriever, self.n_candidates, self.k, self.seed = retriever, n_candidates, k, seed
        self.system = getattr(retriever, "system", type(retriever).__name__)
        self.setting = f"top{n_candidates}-letter-order"

    def predict(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        ids, _ = self.retriever.top_with_scores(records["input_ids"], self.n_candidates)
        ranked = [[int(c[j]) for j in shown_order(rid, len(c), self.seed)]
                  for rid, c in zip(records["record_id"], ids, strict=True)]
        return ranked_predictions(ranked, self.k, [{"candidates": [int(x) for x in c]} for c in ids])

    def settings(self) -> dict[str, Any]:
        return {"retriever": self.system, "n_candidates": self.n_candidates, "shuffle_seed": self.seed}


def stats_frame(stats: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`train_ranker`'s example counts as a table, one row per part."""
    return pd.DataFrame([{"part": part, **s} for part, s in stats.items()])
