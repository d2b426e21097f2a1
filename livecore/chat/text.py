"""Checking chat text: length, control characters, links and banned terms.

Banned terms are matched on a normalised form of the message, so that the usual evasions
(case, full-width letters, zero-width characters, look-alike letters, digits for letters,
letters spaced out or dotted apart, letters repeated) still match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

RefusalCode = Literal["empty", "too_long", "control_chars", "link", "banned_term"]

# Digits and symbols standing in for letters, and common Cyrillic/Greek look-alikes.
_LOOKALIKES = str.maketrans(
    # Digits for letters, then Cyrillic and Greek letters that look like Latin ones
    # (written as escapes so that the source shows which is which).
    "0134578"
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u043a\u043c\u0442\u0432\u043d"
    "\u03b1\u03b2\u03b5\u03b9\u03ba\u03bf\u03c1\u03c4\u03c5\u03c7\u03bd",
    "oieastbaeopcyxijskmtbhabeikoptuxv",
)
# Symbols for letters, only inside a word ("b@d", "$hit" is left alone at a word's start
# on purpose: a "!" or "$" at an edge is punctuation far more often than a letter).
_SYMBOLS = {"@": "a", "$": "s", "|": "l", "!": "i", "+": "t"}
_INNER_SYMBOL = re.compile(r"(?<=[^\W_])[@$|!+](?=[^\W_])")
_SEPARATORS = " ._-*~'\"`,/\\"
# Letters split apart: "b a d", "b.a.d", "b-a-d" (single letters joined by separators).
_SPLIT_WORD = re.compile(
    r"(?<![^\W_])(?:[^\W_][" + re.escape(_SEPARATORS) + r"]+){2,}[^\W_](?![^\W_])"
)
_REPEATS = re.compile(r"(.)\1*")
_LINK = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|\b[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.|\s*\(?\s*dot\s*\)?\s*)"
    r"(?:com|net|org|io|gg|tv|co|me|ru|de|uk|xyz|info|biz|app|dev|ly|live|link|site|online|"
    r"shop|club|top|fr|es|it|nl|pl|br|in|us|ca|au)\b(?:/\S*)?",
    re.IGNORECASE,
)


def _strip_invisible(text: str) -> str:
    # Format characters (zero-width space/joiner, bidi marks) and variation selectors.
    return "".join(
        c for c in text
        if unicodedata.category(c) != "Cf" and not 0xFE00 <= ord(c) <= 0xFE0F
    )  # fmt: skip


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", _strip_invisible(text)).casefold()
    # Accents dropped (NFKD then no combining marks): "bäd" matches "bad".
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = _INNER_SYMBOL.sub(lambda m: _SYMBOLS[m.group(0)], text)
    return text.translate(_LOOKALIKES)


def normalise(text: str) -> str:
    """The form messages and terms are compared in: folded, look-alikes mapped, spaced-out
    letters joined, words separated by single spaces."""
    folded = _fold(text)
    joined = _SPLIT_WORD.sub(lambda m: re.sub(r"[^\w]|_", "", m.group(0)), folded)
    return " ".join(re.sub(r"[^\w]+|_", " ", joined).split())


def _term_pattern(term: str) -> str:
    # Each run of a letter may be stretched ("baaad" for "bad") but not shortened: a run of
    # one matches one or more, a run of k matches k or more ("ass" never matches "as").
    return "".join(
        re.escape(m.group(1)) + ("+" if len(m.group(0)) == 1 else f"{{{len(m.group(0))},}}")
        for m in _REPEATS.finditer(term)
    )


class BannedTerms:
    """A stream's banned terms, compiled once into one pattern.

    A term matches whole words of the normalised message (a banned "ass" does not match
    "class" or "assistant"); a term of several words matches them in sequence.
    """

    def __init__(self, terms: Iterable[str]) -> None:
        normalised = sorted({n for t in terms if (n := normalise(t))}, key=len, reverse=True)
        self._by_form = {normalise(t): t for t in terms}
        self._pattern = (
            re.compile(r"\b(?:" + "|".join(_term_pattern(n) for n in normalised) + r")\b")
            if normalised
            else None
        )

    def __len__(self) -> int:
        return len(self._by_form)

    def find(self, text: str) -> str | None:
        """The banned term the text contains, if any."""
        if self._pattern is None:
            return None
        match = self._pattern.search(normalise(text))
        if match is None:
            return None
        found = _REPEATS.sub(r"\1", match.group(0))
        return next((t for n, t in self._by_form.items() if _REPEATS.sub(r"\1", n) == found),
                    match.group(0))  # fmt: skip


def contains_link(text: str) -> bool:
    return _LINK.search(_fold(text)) is not None


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    message: str


def check_message(
    text: str, *, max_length: int, links_allowed: bool, banned: BannedTerms
) -> Refusal | None:
    """Why a chat line may not be posted, or None."""
    if not text.strip():
        return Refusal("empty", "the message is empty")
    if len(unicodedata.normalize("NFC", text)) > max_length:
        return Refusal("too_long", f"messages are at most {max_length} characters")
    if any(unicodedata.category(c) == "Cc" and c != "\n" for c in text):
        return Refusal("control_chars", "the message contains control characters")
    if not links_allowed and contains_link(text):
        return Refusal("link", "links are not allowed in this chat")
    if banned.find(text) is not None:
        return Refusal("banned_term", "the message contains a term banned in this chat")
    return None
