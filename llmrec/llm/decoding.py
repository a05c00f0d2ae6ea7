"""Decoding: named presets and batched generation that stops at the end of the list.

:data:`PRESETS` names the settings the report compares (the blog's 4-beam search, greedy,
and sampling with temperature / top-p / top-k / repetition penalty), each a dict of
``model.generate`` keyword arguments. :func:`generate` runs prompts in batches (left
padding, prompts sorted by length so a batch wastes little on padding, original order
restored), with the KV cache, a seed per batch, and a per-sequence stopping rule
(:class:`ListEnd`): a completion ends once it holds the titles asked for, each closed (a
bare list marker or a title still being written does not count), at the end of its ``=>``
line, where its list ends for the parser (a blank line after a title, chatter), or where it
turns into code or a new prompt, instead of running on to ``max_new_tokens``. It returns
the raw continuations (prompt removed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from llmrec.errors import LlmrecError
from llmrec.llm.heads import ScreenedArgmax, hidden_states
from llmrec.llm.models import context_length
from llmrec.llm.parsing import complete_titles
from llmrec.llm.prompts import check_lengths
from llmrec.side_by_side import follow_share

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

#: Named decoding settings (kwargs of ``model.generate``).
PRESETS: dict[str, dict[str, Any]] = {
    "greedy": {"do_sample": False, "num_beams": 1},
    "beam4": {"do_sample": False, "num_beams": 4, "early_stopping": True},
    "sample": {"do_sample": True, "num_beams": 1, "temperature": 0.7, "top_p": 0.9, "top_k": 50,
               "repetition_penalty": 1.1},
}

#: LM heads :func:`generate` can decode with ("screened": greedy only; "auto": "screened"
#: where it applies, else "full").
HEADS = ("auto", "full", "screened")
#: Rows a compacted greedy batch keeps at least (see :func:`generate`).
MIN_ROWS = 16

_HARD_STOP = re.compile(r"###|```|\n\s*(def |class |import |from \S+ import |print\(|Input:|"
                        r"Output:|Instruction:|Response:|Movies I liked:)")


def preset_kwargs(preset: str, **overrides: Any) -> dict[str, Any]:
    """The generate kwargs of ``preset`` with ``overrides`` on top."""
    if preset not in PRESETS:
        raise LlmrecError(f"unknown decoding preset {preset!r}; use one of {', '.join(PRESETS)}")
    return {**PRESETS[preset], **overrides}


def list_finished(text: str, n_titles: int | None) -> bool:
    """Whether a completion so far has reached the end of its list (see :class:`ListEnd`).

    Called on partial text after every token, so it counts only titles that are closed
    (:func:`llmrec.llm.parsing.complete_titles`): ``"Here are four movies:\n\n1"`` and
    ``"Here are:\n\n* Bra"`` hold none yet; ``"... D (1993)"`` or ``"... D\n"`` closes the
    fourth. It ends the list where the parser does (code, a new prompt, chatter, a line
    after a blank line that is not numbered), at the end of a ``=>`` line that holds a
    title, or once ``n_titles`` titles are closed."""
    body = text.lstrip()
    if not body:
        return False
    if _HARD_STOP.search(text):
        return True
    titles, ended = complete_titles(text)
    if ended:
        return True
    if n_titles and len(titles) >= n_titles:
        return True
    return bool(titles) and "=>" in body and "\n" in body[body.index("=>"):]  # the "=>" line ended


class ListEnd:
    """A ``StoppingCriteria``: per row, True once the generated text ends its list.

    Works for greedy, sampling and beam search (transformers treats a True row like an
    eos for that sequence or beam). Rows already finished are not decoded again.
    """

    def __init__(self, tokenizer: Any, prompt_len: int, n_titles: int | None = None):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.n_titles = n_titles

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.prompt_len:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        done = [list_finished(t, self.n_titles) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _stopping_list(tokenizer, prompt_len, n_titles):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Criterion(ListEnd, StoppingCriteria):
        pass

    return StoppingCriteriaList([_Criterion(tokenizer, prompt_len, n_titles)])


def common_prefix(prompts: Sequence[str]) -> str:
    """The text every prompt starts with ("" for no prompts)."""
    if not prompts:
        return ""
    first, last = min(prompts), max(prompts)  # the common prefix of all = that of these two
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def prefix_split(tokenizer, prompts: Sequence[str], min_tokens: int = 32, tries: int = 4):
    """``(prefix_ids, [suffix_ids...])``: the longest shared start of the prompts, cut at a
    line end, whose tokens every prompt begins with (its own tokens follow), so a cached
    prefix changes no input token; None when there is none of ``min_tokens`` or more.

    Why the check: BPE pre-tokenizers split whitespace by what follows it ("\n\n" at the
    end of a text is one piece, before a word it is two), so a cut must be verified."""
    shared = common_prefix(prompts)
    cuts = [i + 1 for i, ch in enumerate(shared) if ch == "\n"][::-1][:tries]
    wholes = None
    for cut in cuts:
        prefix_ids = tokenizer(shared[:cut], add_special_tokens=True)["input_ids"]
        if len(prefix_ids) < min_tokens:
            return None
        if wholes is None:
            wholes = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        n = len(prefix_ids)
        if all(w[:n] == prefix_ids and len(w) > n for w in wholes):
            return prefix_ids, [w[n:] for w in wholes]
    return None


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    preset: str = "greedy",
    batch_size: int = 16,
    max_new_tokens: int = 48,
    seed: int = 0,
    stop_after_titles: int | None = None,
    early_stop: bool = True,
    progress: bool = True,
    prefix_cache: bool = True,
    compact: bool = True,
    min_rows: int = MIN_ROWS,
    head: str = "auto",
    **overrides: Any,
) -> list[str]:
    """Generate one continuation per prompt (same order as ``prompts``), raw text only.

    ``stop_after_titles`` (e.g. 4) lets a completion end once it holds that many titles;
    ``early_stop=False`` turns every stopping rule off except eos and ``max_new_tokens``
    (the naive baseline the benchmark compares against). A prompt that does not fit the
    model's context with ``max_new_tokens`` is refused with its length. Sampling is seeded
    per batch (``seed`` + the batch's first position in length order): the same prompts,
    seed and ``batch_size`` give the same completions.

    ``prefix_cache``: when every prompt starts with the same lines (the worked examples of
    a few-shot prompt) of at least 32 tokens, and the tokens of each prompt are exactly the
    prefix's tokens followed by its own (:func:`prefix_split`), the prefix goes through the
    model once and every batch starts from a copy of its KV cache (``[prefix][pads][own
    tokens]``, pads masked, positions as without the cache). Same tokens in, same
    completions out up to float rounding; few-shot prefill drops by the examples' share.

    ``compact`` (greedy only): a row whose list has ended leaves the batch, so it costs
    no more decoding steps (:func:`greedy_rows`); the batch never shrinks below
    ``min_rows`` rows (or its own size), finished rows kept as ballast, because on a CPU
    the matrix kernels round differently below 16 rows (measured: 1, 2-15 and 16+ rows
    are three classes), and a row's tokens then stay those of ``model.generate``, which
    ``compact=False`` runs (the naive way). ``head="screened"`` (greedy with
    ``compact``) computes the LM head in bfloat16 and only the top candidates in float32
    (:class:`llmrec.llm.heads.ScreenedArgmax`): the same argmax at a third of the head's cost.
    ``head="auto"`` screens where it can (greedy, ``compact``, a plain float32 head);
    ``"full"`` never does. ``compact=False, head="full"`` is the naive way.
    """
    import torch

    kwargs = preset_kwargs(preset, **overrides)
    if batch_size < 1:
        raise LlmrecError(f"batch_size must be >= 1, got {batch_size}")
    greedy = kwargs == PRESETS["greedy"]
    if head not in HEADS:
        raise LlmrecError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    if head == "screened" and not (greedy and compact):
        raise LlmrecError("head 'screened' gives the argmax only; use it with preset 'greedy', "
                          "no overrides and compact=True")
    prompts = list(prompts)
    if not prompts:
        return []
    lengths = check_lengths(prompts, tokenizer, context_length(model, tokenizer), max_new_tokens)
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    out: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tokenizer.padding_side = "left"
    bar = tqdm(total=len(prompts), desc=f"generate ({preset})", unit="prompt",
               disable=not progress, leave=False)
    split = prefix_split(tokenizer, prompts) if prefix_cache and len(prompts) > 1 else None
    with torch.inference_mode():
        # the same tokens either way: a head that cannot be screened is computed in full
        screen = head == "screened" or head == "auto" and greedy and compact
        pick = ScreenedArgmax(model) if screen and ScreenedArgmax.applies(model) else None
        prefix_state = None
        if split is not None:
            prefix_ids = torch.tensor([split[0]], device=device)
            forward = model(input_ids=prefix_ids, use_cache=True)
            prefix_state = getattr(forward, "cache", None) or forward.past_key_values
        for start in range(0, len(order), batch_size):
            follow_share()  # a chain left alone takes the idle core (llmrec.side_by_side)
            idx = order[start:start + batch_size]
            if split is None:
                enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                                add_special_tokens=True).to(device)
            else:
                enc = _with_prefix(split, idx, pad_id, device, prefix_state,
                                   int(kwargs.get("num_beams", 1) or 1))
            prompt_len = enc["input_ids"].shape[1]
            torch.manual_seed(seed + start)
            if greedy and compact:
                done = (lambda toks: list_finished(tokenizer.decode(toks, skip_special_tokens=True),
                                                   stop_after_titles)) if early_stop else None
                rows = greedy_rows(model, enc, max_new_tokens, eos_ids(model, tokenizer), pad_id,
                                   finished=done, min_rows=min_rows, pick=pick)
                texts = tokenizer.batch_decode(rows, skip_special_tokens=True)
            else:
                extra: dict[str, Any] = {}
                if early_stop:
                    extra["stopping_criteria"] = _stopping_list(tokenizer, prompt_len, stop_after_titles)
                seqs = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                                      use_cache=True, **kwargs, **extra)
                texts = tokenizer.batch_decode(seqs[:, prompt_len:], skip_special_tokens=True)
            for i, text in zip(idx, texts, strict=True):
                out[i] = text
            bar.update(len(idx))
    bar.close()
    return out


def eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The token ids that end a sequence for ``model.generate`` (its generation config's
    ``eos_token_id``, an int or a list; else the tokenizer's)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return frozenset()
    return frozenset(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]))


def greedy_rows(
    model: Any,
    enc: dict[str, Any],
    max_new_tokens: int,
    eos: frozenset[int],
    pad_id: int,
    finished: Callable[[list[int]], bool] | None = None,
    min_rows: int = MIN_ROWS,
    pick: Callable[[Any], Any] | None = None,
) -> list[list[int]]:
    """Greedy decoding of one left-padded batch, the finished rows dropped as it goes.

    ``enc``: ``input_ids``, ``attention_mask`` and optionally ``cache`` (a prefix's KV
    cache, one row per prompt, whose length the inputs' first columns repeat). Each
    step feeds every unfinished row its last token with the cache, the mask and the
    positions exactly as ``model.generate`` builds them (positions count the unmasked
    tokens); a row ends at an eos token, at ``max_new_tokens``, or when
    ``finished(tokens)`` says so, and leaves the batch (its cache rows, mask and
    positions are dropped) unless fewer than ``min_rows`` rows would remain; such
    finished rows stay as ballast fed the pad token, as ``model.generate`` feeds them.
    Returns each row's new tokens, the ending token included. ``pick``: a function from
    the last hidden states (rows, hidden) to the chosen tokens (e.g. a
    :class:`llmrec.llm.heads.ScreenedArgmax`) instead of the argmax of the model's logits.

    Written by hand because ``model.generate`` keeps every row until the last one
    ends: 12 to 23% of its row-steps decode rows that have already finished. (A step's
    cost falls less than its rows do, so dropping them saves about a tenth, measured by
    ``benchmarks/bench_fast_paths.py``.)
    """
    import torch
    from transformers import DynamicCache

    ids, mask = enc["input_ids"], enc["attention_mask"]
    cache = enc.get("cache")
    if cache is None:
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    past = cache.get_seq_length()
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    n = ids.shape[0]
    floor = min(n, max(1, min_rows))
    out: list[list[int]] = [[] for _ in range(n)]
    ended = [False] * n
    rows = list(range(n))  # the original row of each batch row

    def step_tokens(**inputs) -> list[int]:
        if pick is None:
            logits = model(**inputs, cache=cache, use_cache=True, logits_to_keep=1).logits
            return logits[:, -1].float().argmax(dim=-1).tolist()
        hidden, _ = hidden_states(model, **inputs, cache=cache, use_cache=True)
        return pick(hidden[:, -1]).tolist()

    chosen = step_tokens(input_ids=ids[:, past:], attention_mask=mask, position_ids=pos[:, past:])
    last = pos[:, -1]
    for step in range(max_new_tokens):
        feed = []
        for b, r in enumerate(rows):
            if ended[r]:
                feed.append(pad_id)
                continue
            tok = chosen[b]
            out[r].append(tok)
            feed.append(tok)
            if tok in eos or (finished is not None and finished(out[r])):
                ended[r] = True
        live = [b for b, r in enumerate(rows) if not ended[r]]
        if not live or step == max_new_tokens - 1:
            break
        if len(live) < len(rows):
            ballast = [b for b, r in enumerate(rows) if ended[r]][:max(0, floor - len(live))]
            keep = sorted(live + ballast)
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(index)
                mask, last = mask[index], last[index]
                rows = [rows[b] for b in keep]
                feed = [feed[b] for b in keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        last = last + 1
        chosen = step_tokens(input_ids=torch.tensor(feed, device=mask.device)[:, None],
                             attention_mask=mask, position_ids=last[:, None])
    return out


def _with_prefix(split, idx, pad_id, device, prefix_state, num_beams: int) -> dict[str, Any]:
    """generate() inputs for the prompts ``idx``: ``[prefix][pads][own tokens]`` with the
    pads masked out, and a copy of the prefix's KV cache for every row (and beam)."""
    import copy

    import torch

    prefix_ids, suffixes = split
    own = [suffixes[i] for i in idx]
    width = max(len(t) for t in own)
    n_prefix = len(prefix_ids)
    ids = torch.full((len(own), n_prefix + width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(own), n_prefix + width), dtype=torch.long)
    ids[:, :n_prefix] = torch.tensor(prefix_ids)
    mask[:, :n_prefix] = 1
    for r, toks in enumerate(own):
        ids[r, n_prefix + width - len(toks):] = torch.tensor(toks)
        mask[r, n_prefix + width - len(toks):] = 1
    cache = copy.deepcopy(prefix_state)
    cache.batch_repeat_interleave(len(own) * num_beams)  # generate() does not expand a cache
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "cache": cache}
