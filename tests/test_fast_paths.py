"""Fast evaluation paths give the naive paths' outputs: greedy with finished rows dropped,
the bfloat16-screened LM head, the catalog-restricted head, the likelihood head only
where a token is scored (tiny model; random weights redrawn large so that every row
says something different and rows end at different steps)."""

from __future__ import annotations

import math
import warnings

import pytest

from llmrec.errors import LlmrecError
from llmrec.llm.decoding import eos_ids, generate, greedy_rows
from llmrec.llm.heads import (
    ScreenedArgmax,
    _screen_threshold,
    catalog_token_ids,
    head_logits,
    hidden_states,
    restricted_head,
)
from llmrec.llm.prompts import alpaca_prompt
from llmrec.recommenders.constrained import CatalogTrie, constrained_generate
from llmrec.recommenders.rerank import rerank_likelihood

TITLES = ["Toy Story (1995)", "Fargo (1996)", "Star Wars (1977)", "Contact (1997)", "Scream (1996)",
          "Liar Liar (1997)", "Titanic (1997)", "Air Force One (1997)", "Godfather, The (1972)"]
PROMPTS = [f"Movies I liked: {a} => {b}\nRecommend 4 similar movies, separated by =>:\n"
           for a in TITLES for b in TITLES[:3]][:24]


@pytest.fixture(scope="module")
def chaotic(tiny_model_dir):
    """The tiny model with its weights redrawn (std 0.3): varied, confident outputs."""
    import torch

    from llmrec.llm.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, tok = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0.0, 0.3)
    yield model, tok
    torch.set_num_threads(threads)


def _rounding_bound(hidden, weight):
    """How far two float32 kernels may round ``hidden @ weight.T`` apart, per logit.

    Any order of summing K float32 products (BLAS blocks differently for a subset of the
    weight's rows, or of the hidden rows, than for the whole matrix) is within
    ``gamma_K * sum_i |h_i w_i|`` of the exact dot product, ``gamma_K = K u / (1 - K u)``,
    ``u = 2**-24`` (Higham, Accuracy and Stability, 3.1); two such results differ by at
    most twice that. Computed in float64 so the bound is not itself rounded down."""
    k = hidden.shape[-1]
    gamma = k * 2.0 ** -24 / (1 - k * 2.0 ** -24)
    return 2 * gamma * (hidden.detach().double().abs() @ weight.detach().double().abs().T)


def _clear_winner(logits, bound):
    """Positions whose best logit leads the second by more than the rounding bound twice
    over: the only ones where two roundings must choose the same token."""
    top2 = logits.double().topk(2, dim=-1).values
    return (top2[..., 0] - top2[..., 1]) > 2 * bound.max(dim=-1).values


def _hf_tokens(model, tok, prompts, n):
    import torch

    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        seqs = model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return enc, seqs[:, enc["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("min_rows", [1, 3, 16])
def test_greedy_rows_drop_finished_rows_and_keep_tokens(chaotic, min_rows):
    """Rows end at different steps (a rule on their own tokens); each keeps HF's tokens."""
    import torch

    model, tok = chaotic
    prompts = PROMPTS[:10]
    enc, ref = _hf_tokens(model, tok, prompts, 16)
    assert len({tuple(r) for r in ref}) == len(ref)  # every row different
    ends = lambda toks: len(toks) >= 2 + toks[0] % 13  # noqa: E731 - a row-specific length
    with torch.inference_mode():
        rows = greedy_rows(model, dict(enc), 16, frozenset(), tok.pad_token_id, finished=ends,
                           min_rows=min_rows)
    want = [r[:min(16, 2 + r[0] % 13)] for r in ref]
    assert rows == want
    assert len({len(r) for r in rows}) > 3  # the rows did end at different steps


def test_greedy_rows_stop_at_eos(chaotic):
    import torch

    model, tok = chaotic
    enc, ref = _hf_tokens(model, tok, PROMPTS[:6], 12)
    eos = frozenset({ref[0][3], ref[2][5]})  # pretend two of the chosen tokens end a sequence
    with torch.inference_mode():
        rows = greedy_rows(model, dict(enc), 12, eos, tok.pad_token_id, min_rows=1)
    for got, full in zip(rows, ref, strict=True):
        cut = next((i + 1 for i, t in enumerate(full) if t in eos), len(full))
        assert got == full[:cut]


@pytest.mark.parametrize("batch_size", [1, 5, 24])
def test_compact_generate_equals_model_generate(chaotic, batch_size):
    model, tok = chaotic
    common = dict(batch_size=batch_size, max_new_tokens=20, stop_after_titles=4, progress=False)
    naive = generate(model, tok, PROMPTS, "greedy", compact=False, head="full", **common)
    assert generate(model, tok, PROMPTS, "greedy", head="full", **common) == naive
    assert generate(model, tok, PROMPTS, "greedy", min_rows=1, head="full", **common) == naive
    with warnings.catch_warnings():  # a fallback to the float32 head would pass unseen
        warnings.filterwarnings("error", message="bfloat16 screening")
        assert generate(model, tok, PROMPTS, "greedy", head="screened", **common) == naive
    assert len(set(naive)) > len(PROMPTS) // 2


def test_compact_generate_with_a_cached_prefix(chaotic):
    """Prompts sharing 32+ tokens of lines: the prefix's KV cache seeds every batch."""
    from llmrec.llm.decoding import prefix_split

    model, tok = chaotic
    header = "### Instruction:\n" + "Recommend movies => like these => ones\n" * 6
    prompts = [header + p for p in PROMPTS[:9]]
    assert prefix_split(tok, prompts) is not None
    common = dict(batch_size=4, max_new_tokens=12, stop_after_titles=4, progress=False)
    assert (generate(model, tok, prompts, "greedy", **common)
            == generate(model, tok, prompts, "greedy", compact=False, **common))


def test_generate_head_settings_are_checked(chaotic):
    model, tok = chaotic
    with pytest.raises(LlmrecError, match="unknown head"):
        generate(model, tok, PROMPTS[:1], head="int8", progress=False)
    with pytest.raises(LlmrecError, match="greedy"):
        generate(model, tok, PROMPTS[:1], "beam4", head="screened", progress=False)
    with pytest.raises(LlmrecError, match="compact"):
        generate(model, tok, PROMPTS[:1], head="screened", compact=False, progress=False)
    assert eos_ids(model, tok) == {tok.eos_token_id}


def test_screened_argmax_is_the_float32_argmax(chaotic):
    import torch

    model, _ = chaotic
    head = model.get_output_embeddings()
    torch.manual_seed(0)
    hidden = torch.randn(40, head.in_features) * 3
    logits = torch.nn.functional.linear(hidden, head.weight)
    full = logits.argmax(-1)
    # the screen recomputes its candidates' rows of the weight in float32: the same argmax
    # wherever the winner leads by more than rounding (every row here, checked)
    clear = _clear_winner(logits, _rounding_bound(hidden, head.weight))
    assert bool(clear.all())
    screen = ScreenedArgmax(model)
    assert torch.equal(screen(hidden), full)  # the first call checks the bound too
    assert torch.equal(screen(hidden[:7]), full[:7])
    refine = ScreenedArgmax(model, refine_above=0)  # the per-token narrowing path
    assert torch.equal(refine(hidden), full)
    unchecked = ScreenedArgmax(model, check=False)
    assert torch.equal(unchecked(hidden), full)
    assert screen.ok and refine.ok  # no fallback to the float32 head
    assert 0 < screen.stats["candidates"] < 2 * head.out_features  # it did screen
    assert refine.stats["candidates"] <= screen.stats["candidates"]


def test_screened_argmax_falls_back_when_the_bound_breaks(chaotic, monkeypatch):
    import torch

    from llmrec.llm import heads

    model, _ = chaotic
    monkeypatch.setattr(heads, "BF16_U", 0.0)  # a bound of zero: bfloat16 rounding breaks it
    torch.manual_seed(0)
    hidden = torch.randn(8, model.get_output_embeddings().in_features) * 3
    screen = ScreenedArgmax(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = screen(hidden)
    assert not screen.ok and any("bound" in str(w.message) for w in caught)
    assert torch.equal(got, torch.nn.functional.linear(hidden, model.get_output_embeddings().weight).argmax(-1))


def test_screen_threshold_never_drops_a_near_tie():
    """Two tokens a rounding apart: both stay candidates."""
    import torch

    weight = torch.randn(1000, 64)
    weight[1] = weight[0] * (1 + 1e-6)
    hidden = weight[0:1] * 50  # token 0 and 1 lead, almost tied
    approx = torch.nn.functional.linear(hidden.bfloat16(), weight.bfloat16())
    high = approx.max(dim=-1, keepdim=True).values.float()
    thr = _screen_threshold(hidden, high, float(weight.norm(dim=1).max()), 64)
    assert thr.dtype == torch.bfloat16
    assert bool((approx[0, :2] >= thr[0]).all())


def test_hidden_states_and_head_logits_are_the_forward(chaotic):
    """Also through a LoRA adapter (PEFT) with non-zero weights."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    model, tok = chaotic
    enc = tok(PROMPTS[:3], return_tensors="pt", padding=True)
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                           init_lora_weights=False))
    for m in (model, lora):
        with torch.inference_mode():
            want = m(**enc).logits
            hidden, _ = hidden_states(m, **enc)
            assert torch.equal(head_logits(m, hidden), want)
    with torch.inference_mode():
        assert not torch.equal(lora(**enc).logits, model(**enc).logits)  # the adapter counts


def test_head_logits_soft_caps_like_gemma(chaotic, monkeypatch):
    import torch

    model, _ = chaotic
    hidden = torch.randn(2, model.get_output_embeddings().in_features) * 5
    raw = head_logits(model, hidden)
    monkeypatch.setattr(model.config, "final_logit_softcapping", 3.0, raising=False)
    capped = head_logits(model, hidden)
    assert torch.allclose(capped, torch.tanh(raw / 3.0) * 3.0)
    with pytest.raises(LlmrecError, match="soft-capping"):
        with restricted_head(model, [1, 2], strict=True):
            pass
    with restricted_head(model, [1, 2]) as replaced:
        assert replaced is False  # kept the full head


def test_restricted_head_keeps_the_set_and_restores(chaotic):
    import torch

    model, tok = chaotic
    enc = tok(PROMPTS[:2], return_tensors="pt", padding=True)
    keep = [5, 17, 100, 200]
    with torch.inference_mode():
        full = model(**enc).logits
        hidden, _ = hidden_states(model, **enc)
        with restricted_head(model, keep) as replaced:
            part = model(**enc).logits
        again = model(**enc).logits
    assert replaced is True
    # the kept logits are the full head's up to float32 rounding of the matmul (a kernel
    # over 4 rows of the weight may sum in another order than one over all of them) ...
    bound = _rounding_bound(hidden, model.get_output_embeddings().weight[keep])
    assert bool(((part[..., keep].double() - full[..., keep].double()).abs() <= bound).all())
    assert float(bound.max()) < 1e-3 * float(full[..., keep].abs().max())  # a few ulp, not slack
    # ... so greedy picks the same kept token wherever the winner leads by more than that
    clear = _clear_winner(full[..., keep], bound)
    assert bool(clear.all())
    assert torch.equal(part[..., keep].argmax(-1), full[..., keep].argmax(-1))
    others = torch.ones(full.shape[-1], dtype=torch.bool)
    others[keep] = False
    assert bool(torch.isinf(part[..., others]).all())
    assert torch.equal(again, full)  # the head is back
    with pytest.raises(LlmrecError, match="token ids"):
        with restricted_head(model, [10 ** 6]):
            pass


@pytest.fixture(scope="module")
def trie(chaotic, ml100k):
    _, tok = chaotic
    titles = ml100k.movies["display_title"].tolist()[::7]
    return CatalogTrie.from_titles(tok, titles)


def test_catalog_token_ids_cover_every_path(trie):
    ids = set(catalog_token_ids(trie))
    assert trie.eos_token_id in ids
    stack = [trie.first, trie.next]
    while stack:
        node = stack.pop()
        assert set(node.children) <= ids
        stack.extend(node.children.values())


def test_constrained_greedy_catalog_head_is_exact(chaotic, trie):
    model, tok = chaotic
    prompts = [alpaca_prompt(TITLES[i:i + 2]) for i in range(6)]
    common = dict(n_titles=3, batch_size=4, progress=False)
    full = constrained_generate(model, tok, prompts, trie, "greedy", head="full", **common)
    assert constrained_generate(model, tok, prompts, trie, "greedy", head="catalog", **common) == full
    assert constrained_generate(model, tok, prompts, trie, "greedy", **common) == full  # auto
    beams = constrained_generate(model, tok, prompts, trie, "beam4", head="catalog", **common)
    index = trie.index
    assert all(t in index for text in beams for t in text.split(" => ") if text)
    with pytest.raises(LlmrecError, match="unknown head"):
        constrained_generate(model, tok, prompts, trie, "greedy", head="top", **common)


def test_likelihood_scored_head_equals_full_head(chaotic):
    """The head on the gathered scoring positions vs on every position: the same matmul
    over a subset of the hidden rows, so equal up to its float32 rounding. Bound: after the
    final RMSNorm ``|h| <= sqrt(K) max|g|``, so a logit moves by at most
    ``eps = 2 gamma_K sqrt(K) max|g| max|w|`` (see :func:`_rounding_bound`), a log-softmax
    by ``2 eps`` plus its own rounding over V terms (``2 gamma_V`` each way), and a mean
    of them by no more."""
    model, tok = chaotic
    prompts = [alpaca_prompt(TITLES[i:i + 3]) for i in range(3)]
    cands = [TITLES[3:], TITLES[:5], ["Fargo (1996)"]]
    weight = model.get_output_embeddings().weight.detach().double()
    k, vocab = weight.shape[1], weight.shape[0]
    gamma = lambda n: n * 2.0 ** -24 / (1 - n * 2.0 ** -24)  # noqa: E731
    g = float(model.get_decoder().norm.weight.detach().abs().max())
    eps = 2 * gamma(k) * math.sqrt(k) * g * float(weight.norm(dim=1).max())
    tol = 2 * eps + 4 * gamma(vocab)
    assert tol < 1e-3
    for bs in (2, 20):
        fast = rerank_likelihood(model, tok, prompts, cands, batch_size=bs, progress=False)
        naive = rerank_likelihood(model, tok, prompts, cands, batch_size=bs, progress=False, full_head=True)
        assert [len(s) for s in fast] == [len(s) for s in naive]
        for f, n in zip(fast, naive, strict=True):
            assert f == pytest.approx(n, abs=tol, rel=0)  # so the same order, but for near-ties
        assert all(math.isfinite(x) for s in fast for x in s)


def test_compact_generate_through_a_lora_adapter(chaotic):
    """An unmerged adapter (a quantized base keeps it separate): same completions."""
    import copy

    from peft import LoraConfig, get_peft_model

    model, tok = chaotic
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                           init_lora_weights=False))
    lora.eval()
    common = dict(batch_size=6, max_new_tokens=12, stop_after_titles=4, progress=False)
    naive = generate(lora, tok, PROMPTS[:12], "greedy", compact=False, **common)
    assert generate(lora, tok, PROMPTS[:12], "greedy", min_rows=1, **common) == naive
    assert generate(lora, tok, PROMPTS[:12], "greedy", head="screened", **common) == naive
    assert naive != generate(model, tok, PROMPTS[:12], "greedy", compact=False, **common)


def test_likelihood_catalog_normalises_over_the_catalog_tokens(chaotic):
    """The scores are log-softmaxes over the catalog's tokens: recomputed by hand here."""
    import torch

    from llmrec.recommenders.rerank import _candidate_ids, catalog_vocabulary, rerank

    model, tok = chaotic
    prompt = alpaca_prompt(TITLES[:2])
    cands = TITLES[2:6]
    vocab = catalog_vocabulary(tok, TITLES)
    got = rerank_likelihood(model, tok, [prompt], [cands], vocabulary=vocab, progress=False)[0]
    idx = torch.tensor(vocab)
    for title, score in zip(cands, got, strict=True):
        ids = _candidate_ids(tok, [title], "\n")[0]
        full = tok(prompt, return_tensors="pt")["input_ids"][0].tolist() + ids
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([full])).logits[0].float()
        start = len(full) - len(ids) - 1
        logp = torch.log_softmax(logits[start:start + len(ids)].index_select(1, idx), dim=-1)
        want = sum(float(logp[i, vocab.index(t)]) for i, t in enumerate(ids)) / len(ids)
        assert score == pytest.approx(want, abs=1e-4)
    plain = rerank_likelihood(model, tok, [prompt], [cands], progress=False)[0]
    assert all(g > p for g, p in zip(got, plain, strict=True))  # a smaller normaliser
    names = dict(enumerate(TITLES))
    ranked, scores = rerank(model, tok, [prompt], [[2, 3, 4, 5]], names, method="likelihood-catalog")
    assert scores[0] == pytest.approx(got, abs=1e-5) and sorted(ranked[0]) == [2, 3, 4, 5]
    with pytest.raises(LlmrecError, match="vocabulary"):
        rerank_likelihood(model, tok, [prompt], [cands], vocabulary=vocab[:3], progress=False)
    with pytest.raises(LlmrecError, match="answer prompts"):
        rerank(model, tok, [""], [[2, 3]], names, method="likelihood-catalog")
