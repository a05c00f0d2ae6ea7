"""Retrieve-then-rerank on the tiny model: cached likelihoods equal a plain forward pass."""

from __future__ import annotations

import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.llm.prompts import alpaca_prompt
from llmrec.llm.tokens import continuation_ids
from llmrec.recommenders.rerank import (
    LETTERS,
    letter_prompt,
    letter_token_ids,
    order_by_scores,
    rerank,
    rerank_likelihood,
)

CANDS = ["Toy Story (1995)", "Fargo (1996)", "Usual Suspects, The (1995)", "Star Wars (1977)",
         "Contact (1997)"]




def _plain_loglik(model, tok, prompt: str, title: str) -> tuple[float, int]:
    """Sum of log p(candidate tokens | prompt) from one uncached forward pass."""
    p = tok(prompt, add_special_tokens=True)["input_ids"]
    c = continuation_ids(tok, title, "\n")
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([p + c])).logits[0].float(), dim=-1)
    return sum(float(logp[len(p) - 1 + j, c[j]]) for j in range(len(c))), len(c)


@pytest.mark.parametrize("batch_size", [2, 20])
def test_shared_cache_likelihood_equals_plain_forward(tiny, batch_size):
    model, tok = tiny
    prompts = [alpaca_prompt(["Scream (1996)", "Titanic (1997)"]), alpaca_prompt(["Fargo (1996)"])]
    cands = [CANDS, CANDS[:3]]
    total = rerank_likelihood(model, tok, prompts, cands, batch_size=batch_size, reduction="sum",
                              progress=False)
    mean = rerank_likelihood(model, tok, prompts, cands, batch_size=batch_size, progress=False)
    for p, cs, tot, avg in zip(prompts, cands, total, mean, strict=True):
        assert len(tot) == len(cs)
        for title, t, m in zip(cs, tot, avg, strict=True):
            ref, n = _plain_loglik(model, tok, p, title)
            assert t == pytest.approx(ref, abs=1e-3)
            assert m == pytest.approx(ref / n, abs=1e-3)
            assert t < 0


def test_order_by_scores_sorts_and_keeps_ties():
    ranked = order_by_scores([[10, 20, 30, 40]], [[-1.0, -0.5, -1.0, -3.0]], k=3)
    assert ranked == [[20, 10, 30]]


def test_rerank_returns_a_permutation_of_the_candidates(tiny, ml100k):
    model, tok = tiny
    titles = ml100k.display_titles()
    cand_ids = [[1, 50, 100, 181, 258], [286, 294, 300]]
    inputs = [[titles[i] for i in (7, 8)], [titles[13]]]
    prompts = [alpaca_prompt(t) for t in inputs]
    for method in ("likelihood", "letters"):
        ranked, scores = rerank(model, tok, prompts, cand_ids, titles, method=method,
                                input_titles=inputs, progress=False)
        for r, c, s in zip(ranked, cand_ids, scores, strict=True):
            assert sorted(r) == sorted(c)
            assert len(s) == len(c)
            assert s[c.index(r[0])] == max(s)  # the best-scored candidate comes first
    with pytest.raises(LlmrecError):
        rerank(model, tok, prompts, cand_ids, titles, method="vote")


def test_letter_prompt_lists_candidates(tiny):
    _, tok = tiny
    text = letter_prompt(["Fargo (1996)"], CANDS)
    assert "(A) Toy Story (1995)" in text and "(E) Contact (1997)" in text
    assert text.endswith("(")
    ids = letter_token_ids(tok, 20)
    assert len(set(ids)) == 20
    assert [tok.decode([i]) for i in ids[:3]] == list(LETTERS[:3])
    with pytest.raises(LlmrecError):
        letter_prompt(["Fargo (1996)"], CANDS * 6)
