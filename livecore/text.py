"""Rules for text people write for others to read: chat lines, display names, stream titles.

What counts as invisible, what is a control character (including the bidi controls that
reorder the text around them), and the form in which two names are the same. Chat's
matching rules (banned terms, links) build on these in chat/text.py; auth and streams use
them directly. Pure functions over `str`; imports nothing from livecore and does no I/O.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# Combining marks (accents, Zalgo stacks, variation selectors, which are Mn) and format
# characters (Cf: zero-width space/joiners, soft hyphen, bidi marks): nothing of their own
# to see.
INVISIBLE_CATEGORIES: Final = frozenset({"Mn", "Me", "Cf"})
# Letters that render as blank space but are not Cf: Hangul fillers and the blank braille
# pattern, a favourite for splitting words invisibly (and for names that look empty).
BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# Besides C0/C1 controls: line and paragraph separators (line breaks other than "\n"), and
# bidi embeddings, overrides and isolates, which would reorder the text around them.
CONTROL_EXTRA: Final = frozenset(
    "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def drop_invisible(text: str) -> str:
    """Return `text` in NFKD without combining marks, format characters and blank letters."""
    return "".join(
        c
        for c in unicodedata.normalize("NFKD", text)
        if c not in BLANK_LETTERS and unicodedata.category(c) not in INVISIBLE_CATEGORIES
    )


def has_visible(text: str) -> bool:
    """Return whether anything of `text` shows: not only spaces and invisible characters."""
    # Case folded first, as chat compares text: a few combining marks fold to letters.
    return bool(drop_invisible(unicodedata.normalize("NFKD", text).casefold()).strip())


def has_control(text: str, *, newlines: bool) -> bool:
    """Return whether `text` holds control characters (line breaks but "\\n" when allowed)."""
    # "Cs": a lone surrogate ("\ud800" is valid in JSON) could never be encoded as UTF-8.
    return any(
        (unicodedata.category(c) in ("Cc", "Cs") and not (newlines and c == "\n"))
        or c in CONTROL_EXTRA
        for c in text
    )


def name_key(name: str) -> str:
    """Return the form in which two names are the same: "Ann" = "ANN" = " ann " = full-width.

    NFKC (full-width, ligatures, mathematical letters become plain), case folded, without
    format characters and blank letters, whitespace squeezed. Accents stay: "José" is not
    "Jose".
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    kept = "".join(c for c in folded if c not in BLANK_LETTERS and unicodedata.category(c) != "Cf")
    return " ".join(kept.split())
