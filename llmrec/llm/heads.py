"""Cheaper language-model heads: restricted to a token set, or screened in bfloat16.

The LM head (hidden state x vocabulary matrix) is most of a decoding step for a model
with a large vocabulary: 55% of Gemma 3's (262,144 words) at batch 32 on a CPU. Three
ways to compute less of it:

- :func:`restricted_head`: for the duration of a ``with`` block, the model's output
  layer (``get_output_embeddings()``) computes logits only for a given token set (e.g.
  the tokens catalog titles are spelt with, :func:`catalog_token_ids`), every other
  token ``-inf``; ``model(...)`` and ``model.generate(...)`` use it unchanged. Where a
  logits processor allows only tokens of that set (constrained greedy decoding), the
  chosen tokens are the full head's (but for near-ties within float32 rounding of the
  matmul, see the function); a log-softmax over it is a softmax over the set
  only, so constrained *beam search* with it is a different setting (its own name).
- :class:`ScreenedArgmax`: the float32 head's argmax from hidden states at about half
  the cost. All logits in bfloat16 (3x faster than float32 on a CPU with AMX), then
  every token whose bfloat16 logit is within a proven rounding bound of the best
  recomputed in float32 with the same weights; their argmax is the float32 head's
  (greedy decoding only: no log-probabilities come out of it).
- :func:`hidden_states` and :func:`head_logits` split a forward in two, so a caller can
  apply the head to the few positions it needs (likelihood scoring).

The bound: with ``u = 2**-8`` (bfloat16's unit roundoff), rounding ``h`` and a weight row
``w`` changes each product by at most ``(2u + u**2)|h_i w_i|`` (the product of two
bfloat16 numbers is exact in float32), float32 sums of ``K`` terms (in both heads) add
``gamma_K = K 2**-24 / (1 - K 2**-24)`` of ``sum |h_i w_i|`` each, which is at most
``|h| |w|`` (Cauchy-Schwarz), and rounding the result to bfloat16 adds ``u / (1 - u)`` of
its size. Measured on Gemma 3's decoding steps the largest error is 0.42 of ``u |h| |w|``,
a fifth of the bound. :class:`ScreenedArgmax` checks the bound on its first call against
the float32 head and keeps the float32 head if a kernel breaks it (a kernel that does
not accumulate in float32).
Written here because no library screens a head for an exact argmax.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from llmrec.errors import LlmrecError

# torch, transformers, peft and accelerate are imported inside the functions that use them:
# the command line (`python -m llmrec ...`) imports this module, and they take seconds to load.

#: bfloat16's unit roundoff.
BF16_U = 2.0 ** -8


def plain_head(model: Any):
    """The model's output layer when it is a plain ``nn.Linear`` (else None: a LoRA- or
    otherwise-wrapped head is left alone)."""
    import torch

    head = model.get_output_embeddings()
    return head if type(head) is torch.nn.Linear else None


def hidden_states(model: Any, **inputs: Any):
    """``(last hidden states, cache)`` of the model's decoder (the model without its head;
    a PEFT-wrapped model's adapters included), from the usual forward keyword arguments."""
    out = model.get_decoder()(**inputs)
    return out.last_hidden_state, getattr(out, "cache", None)


def head_logits(model: Any, hidden, token_ids=None):
    """The logits of ``hidden`` (any leading shape) as the model's forward computes them:
    its output layer, then final logit soft-capping where the config has it; only the
    columns of ``token_ids`` (a LongTensor) when given, computed only for those where
    the head is a plain linear layer."""
    import torch

    head = plain_head(model)
    if token_ids is None:
        logits = model.get_output_embeddings()(hidden)
    elif head is None:
        logits = model.get_output_embeddings()(hidden).index_select(-1, token_ids)
    else:
        logits = torch.nn.functional.linear(
            hidden, head.weight.index_select(0, token_ids),
            None if head.bias is None else head.bias.index_select(0, token_ids))
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def catalog_token_ids(trie: Any) -> list[int]:
    """Every token id in a :class:`llmrec.recommenders.constrained.CatalogTrie`'s two trees, and eos."""
    seen: set[int] = {int(trie.eos_token_id)}
    stack = [trie.first, trie.next]
    while stack:
        node = stack.pop()
        seen.update(node.children)
        stack.extend(node.children.values())
    return sorted(seen)


@contextlib.contextmanager
def _swap_forward(head: Any, forward) -> Iterator[None]:
    head.forward = forward  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        del head.forward


@contextlib.contextmanager
def restricted_head(model: Any, token_ids: Iterable[int], strict: bool = False) -> Iterator[bool]:
    """Within the block, the model's logits are its head's for ``token_ids`` and
    ``-inf`` for every other token. Yields whether the head was replaced: a wrapped head
    (LoRA on the head) or final logit soft-capping (``-inf`` would become ``-cap``) keeps
    the full head, or raises with ``strict`` (where the setting's meaning depends on it).

    Guaranteed: the finite logits are exactly those of ``token_ids``; each equals the full
    head's up to float32 rounding of the matmul (a kernel over these rows of the weight may
    sum the ``K`` products in another order than one over all rows: at most ``2 gamma_K
    sum_i |h_i w_i|`` apart, ``gamma_K = K 2**-24 / (1 - K 2**-24)``), not bit for bit. So
    greedy choices inside the set agree with the full head's except on exact near-ties
    (two logits within that rounding)."""
    import torch

    head = plain_head(model)
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if head is None or softcap:
        if strict:
            why = "a wrapped output layer" if head is None else "final logit soft-capping"
            raise LlmrecError(f"a restricted LM head does not support {why}; use the full head")
        yield False
        return
    vocab = head.out_features
    idx = torch.tensor(sorted({int(t) for t in token_ids}), dtype=torch.long, device=head.weight.device)
    if len(idx) == 0 or int(idx[-1]) >= vocab or int(idx[0]) < 0:
        raise LlmrecError(f"restricted head: token ids must lie in [0, {vocab}); got {len(idx)} ids")
    weight = head.weight.detach().index_select(0, idx)
    bias = None if head.bias is None else head.bias.detach().index_select(0, idx)

    def forward(hidden):
        out = hidden.new_full((*hidden.shape[:-1], vocab), -math.inf)
        out[..., idx] = torch.nn.functional.linear(hidden, weight, bias)
        return out

    with _swap_forward(head, forward):
        yield True


def screen_margin(hidden, weight_norms, approx_abs, k: int):
    """A bound on |bfloat16 logit - float32 logit| for hidden rows ``hidden`` (M, k) and
    weight rows of norms ``weight_norms``, where the bfloat16 logits' size is at most
    ``approx_abs`` (broadcast: (M, 1) and (1, N) or (M, N)); see the module."""
    u = BF16_U
    gamma = k * 2.0 ** -24 / (1 - k * 2.0 ** -24)
    c_prod = 2 * u + u * u + 2 * gamma * (1 + u) ** 2
    return c_prod * hidden.float().norm(dim=-1, keepdim=True) * weight_norms + _c_out() * approx_abs


def _c_out() -> float:
    """The bound's factor for rounding the bfloat16 result (``u / (1 - u)`` of its size)."""
    return BF16_U / (1 - BF16_U)


def _screen_threshold(hidden, high, norm_max: float, k: int):
    """Per row, a bfloat16 value below which no token can be the float32 argmax.

    A token's error is at most ``A + c |x|`` (``x`` its bfloat16 logit, ``A`` the product
    and sum part of the bound with the largest weight-row norm, ``c`` the output
    rounding's): the best token's exact logit is at least ``high - A - c|high|``, and a
    token can reach that only if ``g(x) = x + c|x| >= high - A - c|high| - A``; ``g`` is
    increasing, so that is ``x >= g^-1(...)``, rounded down to a bfloat16 number (so the
    comparison can run in bfloat16 and still never drop a candidate)."""
    import torch

    c_out = _c_out()
    a = screen_margin(hidden, norm_max, 0.0, k)  # (M, 1)
    y = high - 2 * a - c_out * high.abs()
    t = torch.where(y >= 0, y / (1 + c_out), y / (1 - c_out))
    return (t - t.abs() * 2.0 ** -7 - 1e-30).to(torch.bfloat16)


class ScreenedArgmax:
    """The argmax over the vocabulary of the model's float32 logits, from hidden states
    (the decoder's output, (M, hidden)), at a fraction of the float32 head's cost.

    1. bfloat16 logits of every token (one matrix multiply, about 3x faster);
    2. per row, a threshold from the bound with the largest weight-row norm
       (:func:`_screen_threshold`): only tokens above it can be the float32 argmax;
       where that leaves many (a head whose rows differ much in norm), the per-token
       bound narrows them;
    3. the candidates' float32 logits with the same weights (soft-capped like the
       model's), and their argmax, first index on ties as ``torch.argmax``.

    With ``check`` the first call also runs the float32 head and compares bound and
    argmax; a violation warns and every later call uses the float32 head.
    ``stats``: ``calls``, ``rows``, ``candidates`` (tokens recomputed, summed over calls).
    """

    @staticmethod
    def applies(model: Any) -> bool:
        """Whether the model's head can be screened: a plain float32 output layer."""
        import torch

        head = plain_head(model)
        return head is not None and head.weight.dtype == torch.float32

    def __init__(self, model: Any, check: bool = True, refine_above: int = 2048):
        if not self.applies(model):
            raise LlmrecError("the screened LM head needs a plain float32 output layer; use head 'full'")
        head = plain_head(model)
        self.head = head
        self.weight = head.weight.detach()
        self.bias = None if head.bias is None else head.bias.detach()
        self.cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
        self.w_bf16, self.norms = _bf16_parts(head)
        self.norm_max = float(self.norms.max())
        self.refine_above = refine_above
        self.checked = not check
        self.ok = True
        self.stats = {"calls": 0, "rows": 0, "candidates": 0}

    def _exact(self, hidden, idx=None):
        import torch

        if idx is None:
            logits = torch.nn.functional.linear(hidden, self.weight, self.bias)
        else:
            logits = torch.nn.functional.linear(hidden, self.weight.index_select(0, idx),
                                                None if self.bias is None else self.bias.index_select(0, idx))
        if self.cap:
            logits = torch.tanh(logits / self.cap) * self.cap
        return logits

    def __call__(self, hidden):
        import torch

        hidden = hidden.float()
        if not self.ok:
            return self._exact(hidden).argmax(dim=-1)
        k = hidden.shape[-1]
        approx = torch.nn.functional.linear(hidden.to(torch.bfloat16), self.w_bf16)
        if self.bias is not None:
            approx = approx + self.bias.to(approx.dtype)
        high = approx.max(dim=-1, keepdim=True).values.float()
        keep = (approx >= _screen_threshold(hidden, high, self.norm_max, k)).any(dim=0)
        keep = keep.nonzero().squeeze(1)
        if keep.numel() > self.refine_above:  # narrow with each token's own row norm
            sub = approx.index_select(1, keep).float()
            per = screen_margin(hidden, self.norms.index_select(0, keep)[None, :], sub.abs(), k)
            floor = (sub - per).max(dim=-1, keepdim=True).values
            keep = keep[(sub + per >= floor).any(dim=0)]
        exact = self._exact(hidden, keep)
        chosen = keep[exact.argmax(dim=-1)]
        if not self.checked:
            self.checked = True
            full = self._exact(hidden)
            bound = screen_margin(hidden, self.norms[None, :], approx.float().abs(), k)
            if not bool(((approx.float() - full).abs() <= bound).all()) or not torch.equal(
                    full.argmax(dim=-1), chosen):
                self.ok = False
                warnings.warn("bfloat16 screening broke its rounding bound on this machine; "
                              "using the float32 LM head", stacklevel=2)
                return full.argmax(dim=-1)
        self.stats["calls"] += 1
        self.stats["rows"] += hidden.shape[0]
        self.stats["candidates"] += int(keep.numel())
        return chosen


def _bf16_parts(head: Any):
    """The head's weights in bfloat16 and their rows' norms, kept on the head for the
    next call (recomputed when the weights change: another tensor or an in-place edit)."""
    import torch

    w = head.weight
    key = (w.data_ptr(), w._version, tuple(w.shape))
    hit = head.__dict__.get("_llmrec_bf16")
    if hit is None or hit[0] != key:
        hit = (key, w.detach().to(torch.bfloat16), w.detach().float().norm(dim=1))
        head.__dict__["_llmrec_bf16"] = hit
    return hit[1], hit[2]
