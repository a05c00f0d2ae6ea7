"""Completion text -> list of movie titles (PROTOCOL.md section 3), and what went wrong.

:func:`parse_completion` splits on ``=>`` (also ``->``, newlines, numbered and bulleted
lists), strips quotes, numbering, a prose lead-in ("The movies I'd pick are ...") and
trailing chatter, and stops at the first piece that looks like code or a new prompt
(``###``, ``def``, ``import``, a code fence, ``Input:`` ...). A header line ("Here are four
movies:"), a sentence about the list, a bare list marker or a bare number ("1", "4.", "*",
"1997") is not a title. Repeated titles are kept (the metrics count an item once, at its
first rank; the repeat rate is measured). The raw text is never changed here: callers
keep it beside the titles.

:func:`complete_titles` reads a completion that is still being generated (the stopping
rule in :mod:`llmrec.llm.decoding` calls it after every token): only titles already closed
count, and it says whether the list has ended, so generation stops only where more text
could not change what :func:`parse_completion` returns.

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
_PARENS = re.compile(r"\([^()]*\)")
#: A prose lead-in before a title: "Here are four movies: ", "I'd recommend ", "You might
#: like ", "The 4 movies I wanted were ", "Movie I loved: " (checked against every ml-100k
#: title in the tests).
_LEAD_IN = re.compile(
    r"""^(
        (sure|here|okay|ok|certainly|of\ course|based\ on)\b[^:()]*:\s+|based\ on\b[^:(),]*,\s+|
        ((so|and|also|finally|lastly|then),?\s+)?(i|we)('d|\s+would|\s+also|\s+highly|\s+strongly)*
            \s+(recommend|suggest)(\s+(watching|checking\ out|seeing|the\ following))?\s*:?\s+|
        (i\ think\s+)?you('d|'ll|\s+(might|may|would|could|will|should))(\s+also)?
            \s+(like|enjoy|love|try|watch)\s*:?\s+|
        (?P<about>[^().!?:]*?\b(movies?|films?|titles?|recommendations?|suggestions?|picks?|choices?)\b
            [^().!?:]*?)(\b(were|are|is|was|would\ be|will\ be|include|includes)\s*:?\s+|:\s+)
    )(?=["'\u2018\u201c\d]|(?-i:[^\W\d_a-z]))""",  # a title starts: not a lowercase word
    re.IGNORECASE | re.VERBOSE,
)
#: Words that make "... movies ... were" a sentence about the list, not a title such as
#: "Tigrero: A Film That Was Never Made"; matched with the first letter lowered, so the
#: capitalised words of a title ("The 1996 movie, My Fellow Americans") do not count.
_ABOUT_LIST = re.compile(r"\b(I|I'd|I'm|I've|you|you'd|you're|we|my|your|our|these|those|they|"
                         r"following|similar|list|wanted|liked|loved|mentioned)\b")
_MOVIE_WORD = re.compile(r"\b(movies?|films?|titles?|recommendations?|suggestions?)\b", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
_DIGITS_WITH_YEAR = re.compile(r"^[^:]*[^:\s]\s+\((1[89]\d\d|20\d\d)\)$")  # "187 (1997)", "8 1/2 (1963)"
#: What a list item may look like before its title is written: "1", "1.", "(2", "*", "-".
_MARKER_PREFIX = re.compile(r"^\s*(\(?\d{0,2}[.)\]:]?|[-*\u2022\u2013\u2014>|]|#\d*)\s*$")
#: A piece closed by its year: "Fargo (1996)", "**Fargo (1996)**", "Fargo (1996),".
_CLOSED_BY_YEAR = re.compile(r"\((1[89]\d\d|20\d\d)\)[\s\"'`*_.,!\u201d\u2019]*$")
_ENDS_BLANK = re.compile(r"\n[ \t]*\n[ \t]*$")


def _looks_like_stop(piece: str) -> bool:
    return bool(_STOP.match(piece)) or bool(_CODE_INSIDE.search(piece))


def _strip_quotes(piece: str) -> str:
    """Strip quote marks around a title, keeping a leading apostrophe that belongs to it
    (``'Til There Was You (1997)``): single quotes go only in pairs, or at the end."""
    piece = piece.strip().strip(_OTHER_QUOTES).strip()
    while len(piece) > 1 and piece[0] in _APOSTROPHES and piece[-1] in _APOSTROPHES:
        piece = piece[1:-1].strip().strip(_OTHER_QUOTES).strip()
    return piece.rstrip(_APOSTROPHES + _OTHER_QUOTES).strip()


def _strip_lead_in(piece: str) -> str:
    """``"The 4 movies I wanted were Braindead (1992)"`` -> ``"Braindead (1992)"``."""
    for _ in range(3):  # "Sure! Here they are: I'd recommend Fargo (1996)"
        m = _LEAD_IN.match(piece)
        if not m or (m.group("about") is not None and not _about_list(m.group("about"))):
            break
        piece = piece[m.end():]
    return piece


def _clean(piece: str) -> str:
    """Strip numbering, quotes, a lead-in, trailing chatter after the year, trailing
    punctuation."""
    piece = _LABEL.sub("", _NUMBERING.sub("", piece.strip()))
    piece = _strip_lead_in(_DQUOTES.sub("", piece).strip())
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


def _is_header(piece: str) -> bool:
    """"Here are 4 movies you might like:", "Sure!", "Based on your taste"."""
    return piece.endswith(":") or bool(_HEADER.match(piece) and not _YEAR.search(piece))


def _not_a_title(piece: str) -> bool:
    """A sentence about the list ("The movies I picked are all comedies"), or no title at
    all: a bare list marker or number ("1", "4.", "*", "1997", "(1984)"). A title without
    letters needs its year: "187 (1997)"."""
    if not _LETTER.search(piece):
        return not _DIGITS_WITH_YEAR.match(piece)
    if _YEAR.search(piece):
        return False
    return bool(_MOVIE_WORD.search(piece) and _about_list(piece))


def _n_words(piece: str) -> int:
    """Words outside parentheses: a foreign title in brackets is not chatter."""
    return len(_PARENS.sub(" ", piece).split())


def _about_list(text: str) -> bool:
    """Whether ``text`` speaks of the list ("The movies I liked"), its first letter lowered."""
    return bool(_ABOUT_LIST.search(text[:1].lower() + text[1:]))


def parse_completion(text: str | None, max_titles: int | None = None) -> list[str]:
    """The titles in a completion, in order; ``[]`` when there are none (never raises)."""
    return _parse(text, max_titles)[0]


def complete_titles(text: str | None) -> tuple[list[str], bool]:
    """``(titles, ended)`` for a completion still being written, token by token.

    ``titles``: the titles already closed, by a separator after them (newline, ``=>``,
    ``->``, ``|``) or by their year's ``)``; the piece being written is left out
    (``"Here are:\\n\\n* Bra"`` has none yet, nor ``"...:\\n\\n1"``). ``ended``: the list
    is over: the parser stopped inside the closed text (code, a new prompt, chatter after
    the titles, a line after a blank line that is not a numbered item), or a blank line
    after a title is followed by text that cannot become a list marker. Either way, what
    is generated next changes neither ``titles`` nor, once ended, the parsed list.
    """
    if not text:
        return [], False
    cut = max((m.end() for m in _SEP.finditer(text)), default=0)
    head, tail = text[:cut], text[cut:]
    if _CLOSED_BY_YEAR.search(tail):
        head, tail = text, ""
    titles, ended = _parse(head, None)
    if (not ended and titles and tail.strip() and _ENDS_BLANK.search(head)
            and not _MARKER_PREFIX.match(tail) and not _NUMBERING.match(tail)):
        ended = True  # "Alien (1979)\n\nThese" : the list does not go on, numbered
    return titles, ended


def _parse(text: str | None, max_titles: int | None) -> tuple[list[str], bool]:
    """``(titles, ended)``: ``ended`` when the list ended before the text did."""
    titles: list[str] = []
    if not text:
        return titles, False
    for block in _BLANK.split(text):
        if titles and block.strip() and not _NUMBERING.match(block):
            return titles, True  # a blank line ends the list unless it goes on, numbered
        if not _parse_block(block, titles, max_titles):
            return titles, True
    return titles, False


def _parse_block(block: str, titles: list[str], max_titles: int | None) -> bool:
    """Append the block's titles to ``titles``; False when the list has ended."""
    for raw in _SEP.split(block):
        if not raw.strip():
            continue
        if _looks_like_stop(raw):
            return False
        piece = _clean(raw)
        if not piece or _is_header(piece):
            continue
        if _n_words(piece) > _MAX_WORDS:
            if titles:
                return False  # chatter after the list ends it
            continue
        if _not_a_title(piece):
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
