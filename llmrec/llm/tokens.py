"""Token ids of a text as it continues a given context: shared by the constrained decoder
(its prefix trees of catalog titles) and the reranker (candidate titles, answer letters).

A BPE tokenizer splits ``anchor + text`` differently from ``text`` alone (a leading space
or newline merges into the next token), so a title's tokens depend on what precedes it.
No tokenizer method returns "the tokens of this text after that text" and checks the round
trip, hence these few lines.
"""

from __future__ import annotations

from collections.abc import Sequence


def decode(tokenizer, ids: Sequence[int]) -> str:
    """``ids`` as text, special tokens and spacing exactly as they are."""
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def continuation_ids(tokenizer, text: str, anchor: str = "") -> list[int] | None:
    """Token ids that spell ``text`` right after ``anchor``, as the tokenizer splits ``anchor + text``.

    Returns None when no tokenization decodes back to exactly ``text`` in that context.
    """
    a_ids = tokenizer.encode(anchor, add_special_tokens=False) if anchor else []
    a_text = decode(tokenizer, a_ids)
    candidates = []
    full = tokenizer.encode(anchor + text, add_special_tokens=False)
    if full[: len(a_ids)] == a_ids and len(full) > len(a_ids):
        candidates.append(full[len(a_ids):])
    candidates.append(tokenizer.encode(text, add_special_tokens=False))
    for ids in candidates:
        if ids and decode(tokenizer, a_ids + ids) == a_text + text:
            return ids
    return None
