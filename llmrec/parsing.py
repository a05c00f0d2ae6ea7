"""Completion text -> list of movie titles (PROTOCOL.md section 3), and what went wrong.

:func:`parse_completion` splits on ``=>`` (also ``->``, newlines, numbered and bulleted
lists), strips quotes, numbering and trailing chatter, and stops at the first piece that
looks like code or a new prompt (``###``, ``def``, ``import``, a code fence, ``Input:`` ...).
Repeated titles are kept (the metrics count an item once, at its first rank; the repeat
rate is measured). The raw text is never changed here: callers keep it beside the titles.

:func:`classify_completion` flags a completion for the failure-mode tables: empty, looks
like code, drifted into another language. Year checks need the catalog: see
:func:`llmrec.llm_eval.year_flags`.
"""

from __future__ import annotations

import re
import unicodedata

#: A piece starting like this ends the list: code, markup or the start of a new prompt.
_STOP = re.compile(
    r"""^\s*(
        \#\#\#|```|~~~|<\|?/?\w*\|?>|
        (?-i:(def|class|import|return|print|for|while|if|elif|else|try|except|with|lambda|var|let|const|function|public|private)\b(?!\s*[,)]))|
        (?-i:from\s+\S+\s+import\b)|
        (input|output|instruction|response|question|answer|user|assistant|system|human|note|explanation)\s*:|
        movies\s+i\s+(liked|disliked)\s*:|recommend\s+\d+\s+(similar|other|more)\b|
        \#\s|//|/\*|\{|\}|\[|\]|>>>|\$\s
    )""",
    re.IGNORECASE | re.VERBOSE,
)
#: Code inside a piece: assignments, calls, brackets ending a line.
_CODE_INSIDE = re.compile(r"(\w\s*=\s*[\[\{\('\"\w])|(\w\(\)|\)\s*:$|;\s*$|\bself\.|==|!=|\w\.\w+\()")
_NUMBERING = re.compile(r"^\s*(\(?\d{1,2}[.)\]:]|[-*\u2022\u2013\u2014>]|#\d+)\s+")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb*_"
_LABEL = re.compile(r"^(title|movie|film|recommendation)\s*\d*\s*:\s*", re.IGNORECASE)
_APOSTROPHES = "'\u2018\u2019"
_OTHER_QUOTES = "".join(q for q in _QUOTES if q not in _APOSTROPHES)
_DQUOTES = re.compile(r'["\u201c\u201d\u00ab\u00bb]')
_SQUOTED_YEAR = re.compile(r"^['\u2018](.+?)['\u2019]\s*(\(\d{4}\))")
_BLANK = re.compile(r"\n[ \t]*\n")
_YEAR = re.compile(r"\((1[89]\d\d|20\d\d)\)")
_SEP = re.compile(r"=>|->|\u21d2|\u2192|\n|\|")
_HEADER = re.compile(r"^(sure|here|okay|ok|certainly|based on|i (would|recommend|think|suggest)|"
                     r"you (might|may|would)|recommend(ed|ations)?|these|if you)\b", re.IGNORECASE)
_MAX_WORDS = 15


def _looks_like_stop(piece: str) -> bool:
    return bool(_STOP.match(piece)) or bool(_CODE_INSIDE.search(piece))


def _strip_quotes(piece: str) -> str:
    """Strip quote marks around a title, keeping a leading apostrophe that belongs to it
    (``'Til There Was You (1997)``): single quotes go only in pairs, or at the end."""
    piece = piece.strip().strip(_OTHER_QUOTES).strip()
    while len(piece) > 1 and piece[0] in _APOSTROPHES and piece[-1] in _APOSTROPHES:
        piece = piece[1:-1].strip().strip(_OTHER_QUOTES).strip()
    return piece.rstrip(_APOSTROPHES + _OTHER_QUOTES).strip()


def _clean(piece: str) -> str:
    """Strip numbering, quotes, trailing chatter after the year, trailing punctuation."""
    piece = _LABEL.sub("", _NUMBERING.sub("", piece.strip()))
    piece = _DQUOTES.sub("", piece).strip()
    piece = _strip_quotes(_SQUOTED_YEAR.sub(r"\1 \2", piece))
    year = _YEAR.search(piece)
    if year:  # "Fargo (1996) - a dark comedy" -> "Fargo (1996)"
        piece = piece[: year.end()]
    else:
        for dash in (" - ", " \u2013 ", " \u2014 ", ": a ", ": an ", ": the "):
            cut = piece.find(dash)
            if cut > 0 and piece[cut + len(dash):cut + len(dash) + 1].islower():
                piece = piece[:cut]
                break
    piece = _strip_quotes(piece).rstrip(",;").strip()
    if piece.endswith(".") and not re.search(r"\b\w\.$|\.\.\.$", piece):
        piece = piece[:-1].rstrip()
    return piece


def parse_completion(text: str | None, max_titles: int | None = None) -> list[str]:
    """The titles in a completion, in order; ``[]`` when there are none (never raises)."""
    if not text:
        return []
    titles: list[str] = []
    for block in _BLANK.split(text):
        if titles and block.strip() and not _NUMBERING.match(block):
            break  # a blank line ends the list unless the list goes on, numbered, after it
        if not _parse_block(block, titles, max_titles):
            break
    return titles


def _parse_block(block: str, titles: list[str], max_titles: int | None) -> bool:
    """Append the block's titles to ``titles``; False when the list has ended."""
    for raw in _SEP.split(block):
        if not raw.strip():
            continue
        if _looks_like_stop(raw):
            return False
        piece = _clean(raw)
        if not piece:
            continue
        if piece.endswith(":") or (_HEADER.match(piece) and not _YEAR.search(piece)):
            continue  # "Here are 4 movies you might like:" is not a title
        if len(piece.split()) > _MAX_WORDS:
            if titles:
                return False  # chatter after the list ends it
            continue
        titles.append(piece)
        if max_titles is not None and len(titles) >= max_titles:
            return False
    return True


# --- failure modes --------------------------------------------------------------------------

_CODE_ANYWHERE = re.compile(
    r"(^|\n)\s*(def |class |import |from \S+ import |print\(|return |for \w+ in |```)|"
    r"\w+\s*=\s*[\[\{]|\w+\(\)|\bself\.|==",
)
_FOREIGN_WORDS = {
    "el", "los", "las", "una", "por", "para", "con", "que", "es", "y", "del", "und", "der",
    "die", "das", "ist", "nicht", "ein", "eine", "mit", "le", "les", "des", "est", "une",
    "et", "pour", "dans", "il", "di", "della", "che", "sono", "per", "om", "och", "het",
    "een", "van", "não", "com", "uma", "muito", "sie", "ich", "pas", "vous", "nous",
}


def letter_scripts(text: str) -> tuple[int, int, int]:
    """(letters, non-Latin letters, Latin letters with diacritics) in ``text``."""
    letters = non_latin = accented = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        if ch.isascii():
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("LATIN"):
            accented += 1
        else:
            non_latin += 1
    return letters, non_latin, accented


def looks_non_english(text: str) -> bool:
    """Drift into another language: other scripts, many diacritics, or foreign function words."""
    letters, non_latin, accented = letter_scripts(text)
    if letters == 0:
        return False
    if non_latin / letters > 0.1 or (letters >= 20 and accented / letters > 0.08):
        return True
    words = re.findall(r"[^\W\d_]+", text.lower())
    hits = sum(w in _FOREIGN_WORDS for w in words)
    return hits >= 3 and hits / max(len(words), 1) > 0.12


def classify_completion(text: str | None) -> dict[str, bool]:
    """Flags for one raw completion: ``empty`` (nothing parses into a title),
    ``looks_like_code``, ``non_english``."""
    text = text or ""
    return {
        "empty": not parse_completion(text),
        "looks_like_code": bool(_CODE_ANYWHERE.search(text)),
        "non_english": looks_non_english(text),
    }
