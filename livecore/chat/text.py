"""Chat text rules: normalising text for matching, banned terms, links, and message checks.

Pure functions over `str`; imports only livecore.text (what is invisible, what is a control
character, shared with display names and stream titles) and does no I/O.

Matching works on a *folded* form of the text: NFKD (full-width, ligatures, circled and
mathematical letters become plain ones), Cyrillic/Greek look-alikes mapped to Latin, case
folded, and combining marks, format characters (zero-width space/joiner, soft hyphen, bidi
marks) and variation selectors removed. Banned terms are then matched by one compiled
pattern that also accepts digits and symbols standing in for letters ("b4d", "$hit") and
letters repeated ("baaad"), so the text never needs a lossy rewrite before matching.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby
from types import MappingProxyType
from typing import Final, Literal

from livecore.text import drop_invisible, has_control, has_visible

RefusalCode = Literal["empty", "too_long", "link", "banned_term", "control_chars"]

# Cyrillic and Greek letters that look like Latin ones. Both cases are listed because the
# table is applied before case folding: capital Greek nu looks like "N" but its small
# letter like "v". Legitimate Russian or Greek text is folded the same way on both sides
# (terms and messages), so terms in those scripts still match.
_LOOKALIKES: Final = str.maketrans(
    {
        # Cyrillic capitals, then small letters.
        "\u0410": "a", "\u0412": "b", "\u0415": "e", "\u0405": "s", "\u0406": "i", "\u0408": "j",
        "\u041a": "k", "\u041c": "m", "\u041d": "h", "\u041e": "o", "\u0420": "p", "\u0421": "c",
        "\u0422": "t", "\u0423": "y", "\u0425": "x", "\u04ae": "y", "\u051a": "q", "\u051c": "w",
        "\u04c0": "l", "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u0455": "s", "\u0456": "i",
        "\u0458": "j", "\u043a": "k", "\u043c": "m", "\u043d": "h", "\u043e": "o", "\u0440": "p",
        "\u0441": "c", "\u0442": "t", "\u0443": "y", "\u0445": "x", "\u04af": "y", "\u051b": "q",
        "\u051d": "w", "\u04cf": "l", "\u0501": "d", "\u04bb": "h",
        # Greek capitals, then small letters.
        "\u0391": "a", "\u0392": "b", "\u0395": "e", "\u0396": "z", "\u0397": "h", "\u0399": "i",
        "\u039a": "k", "\u039c": "m", "\u039d": "n", "\u039f": "o", "\u03a1": "p", "\u03a4": "t",
        "\u03a5": "y", "\u03a7": "x", "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b9": "i",
        "\u03ba": "k", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c4": "t", "\u03c5": "u",
        "\u03c7": "x",
        # Latin letters outside ASCII that NFKD leaves alone.
        "\u0131": "i", "\u0251": "a", "\u0261": "g", "\u2113": "l",
    }
)  # fmt: skip

# Digits and symbols standing in for letters. normalise() maps these back to one letter.
_LEET: Final = str.maketrans("0134578@$|", "oieastbasl")
# Banned-term patterns accept these in place of each letter. "1", "|" and "!" can each be
# an "i" or an "l", so i and l form one class in patterns (see _run_key).
_STAND_INS: Final = MappingProxyType(
    {"a": "4@", "b": "8", "e": "3\u20ac", "g": "9", "i": "l1!|", "o": "0", "s": "5$", "t": "7+"}
)
# The same stand-ins read back to their letter, for the terms a moderator types ("sh!t").
_TERM_LEET: Final = str.maketrans(
    {c: letter for letter, chars in _STAND_INS.items() for c in chars if c != "l"}
)

# A word character for boundaries: letters and digits, not "_" (which is a separator here).
_WORD = r"[^\W_]"
# One glyph of a spelled-out word: a letter, digit or stand-in symbol.
_GLYPH = r"(?:[^\W_]|[@$|!+\u20ac])"
# What people put between letters to split a word: spaces and punctuation.
_SEP = r"[\s.\-_*~\u00b7\u2022,/\\:;'\"`]"
# Single glyphs joined by separators: "b a d", "b.a.d", "b-a-d", "b_a_d".
_SPELLED_OUT: Final = re.compile(rf"(?<!{_WORD}){_GLYPH}(?:{_SEP}+{_GLYPH})+(?!{_WORD})")
_SEPS: Final = re.compile(rf"{_SEP}+")
_RUNS: Final = re.compile(r"(.)\1{2,}")


def _fold(text: str) -> str:
    """Text as compared: compatibility forms, look-alikes, case and invisible marks folded."""
    # Look-alikes are mapped after NFKD (so mathematical Greek becomes Greek first) and
    # before casefold (see _LOOKALIKES); casefold may compose again, hence the second NFKD.
    # Dropped before matching: combining marks, format characters, blank letters.
    text = unicodedata.normalize("NFKD", text).translate(_LOOKALIKES).casefold()
    return unicodedata.normalize("NFC", drop_invisible(text))


def _join_spelled_out(text: str) -> str:
    return _SPELLED_OUT.sub(lambda m: _SEPS.sub("", m.group(0)), text)


def normalise(text: str) -> str:
    """Return the canonical form of `text` for comparing messages (duplicates, terms).

    Folds compatibility forms, look-alikes, case, accents and invisible characters; maps
    0 1 3 4 5 7 @ $ | to o i e a s t a s l; joins letters spelled out with separators
    ("b.a.d" -> "bad"); cuts any run of one character to two ("baaaad" -> "baad": two, not
    one, so "good" and "god" stay different); and squeezes whitespace to single spaces.
    """
    text = _join_spelled_out(_fold(text)).translate(_LEET)
    return " ".join(_RUNS.sub(r"\1\1", text).split())


# -- banned terms --------------------------------------------------------------------------


def _run_key(char: str) -> str:
    return "i" if char == "l" else char


def _char_class(key: str) -> str:
    alternatives = _STAND_INS.get(key, "")
    if not alternatives:
        return re.escape(key)
    return "[" + "".join(re.escape(c) for c in key + alternatives) + "]"


# One step of a term's pattern: a character class and how often it repeats ("+", "{2,}").
_Atom = tuple[str, str]


def _atoms(term: str) -> tuple[_Atom, ...]:
    """A folded term as a sequence of regex atoms, one per run of a letter.

    A run of n letters matches n or more (stretching is allowed, shortening is not): a
    banned "ass" matches "aasss" but never "as". Words of a phrase may be joined by any
    separators, or none ("bad word" matches "badword" and "bad-word").
    """
    atoms: list[_Atom] = []
    for word in _SEPS.split(term):
        if not word:
            continue
        if atoms:
            atoms.append((_SEP, "*"))
        for key, run in groupby(word, key=_run_key):
            count = len(list(run))
            atoms.append((_char_class(key), "+" if count == 1 else f"{{{count},}}"))
    return tuple(atoms)


@dataclass(slots=True)
class _Node:
    children: dict[_Atom, _Node] = field(default_factory=dict)
    terminal: bool = False


def _emit(node: _Node, *, first: bool = False) -> str:
    branches = []
    for (cls, repeat), child in node.children.items():
        # A term starts only where a run of its first letter starts: trying every position
        # inside a long run ("aaaa...") would make each scan quadratic.
        lead = f"(?<!{cls})" if first else ""
        branches.append(lead + cls + repeat + _emit(child))
    # Longer terms first, so that of two terms sharing a prefix the longer one is reported.
    if node.terminal:
        branches.append("")
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"


def _trie_pattern(terms: Iterable[tuple[_Atom, ...]]) -> str:
    # Terms share their prefixes in one trie-shaped pattern, so a message costs one scan
    # whose branching depends on the terms' shared starts, not on how many terms there are.
    root = _Node()
    for atoms in terms:
        node = root
        for atom in atoms:
            node = node.children.setdefault(atom, _Node())
        node.terminal = True
    return _emit(root, first=True)


# Each glyph a pattern accepts, read back to the key of its letter class.
_GLYPH_KEYS: Final = MappingProxyType(
    {c: _run_key(letter) for letter, chars in _STAND_INS.items() for c in chars}
)

_Skeleton = tuple[tuple[str, ...], tuple[int, ...]]


def _skeleton(folded: str) -> _Skeleton:
    """The letter classes of a term or a match, in order, with how often each repeats."""
    runs = [
        (key, len(list(run)))
        for key, run in groupby(_GLYPH_KEYS.get(c, _run_key(c)) for c in _SEPS.sub("", folded))
    ]
    return tuple(k for k, _ in runs), tuple(n for _, n in runs)


@dataclass(frozen=True, slots=True, init=False)
class BannedTerms:
    """A stream's banned terms, compiled once into one pattern; immutable.

    A term matches only as a whole word of the folded message: a banned "ass" does not
    match "class", "assistant" or "bass". The price is that compounds and inflections are
    not caught either ("badass", "asses"); list them as terms of their own. Letters spelled
    out with separators are the exception: "b a d" and "b.a.d" are joined and searched
    inside, so "a b a d" also matches "bad".

    Building costs about 0.25 ms per term (mostly compiling the pattern; a few hundred terms
    are fine on the loop, thousands belong in `asyncio.to_thread`). `find` is one scan.
    """

    terms: tuple[str, ...]
    _whole_words: re.Pattern[str] | None = field(repr=False, compare=False)
    _anywhere: re.Pattern[str] | None = field(repr=False, compare=False)
    _by_skeleton: dict[tuple[str, ...], list[tuple[tuple[int, ...], str]]] = field(
        repr=False, compare=False
    )

    def __init__(self, terms: Iterable[str]) -> None:
        kept = tuple(dict.fromkeys(t.strip() for t in terms if t.strip()))
        by_skeleton: dict[tuple[str, ...], list[tuple[tuple[int, ...], str]]] = {}
        all_atoms = []
        for term in kept:
            folded = _term(term)
            if atoms := _atoms(folded):
                all_atoms.append(atoms)
                keys, counts = _skeleton(folded)
                by_skeleton.setdefault(keys, []).append((counts, term))
        for candidates in by_skeleton.values():
            # Of terms differing only in repeats ("as", "ass"), report the longest that fits.
            candidates.sort(key=lambda c: sum(c[0]), reverse=True)
        trie = _trie_pattern(all_atoms) if all_atoms else ""
        whole = re.compile(rf"(?<!{_WORD})(?:{trie})(?!{_WORD})") if trie else None
        object.__setattr__(self, "terms", kept)
        object.__setattr__(self, "_whole_words", whole)
        object.__setattr__(self, "_anywhere", re.compile(trie) if trie else None)
        object.__setattr__(self, "_by_skeleton", by_skeleton)

    def __len__(self) -> int:
        return len(self.terms)

    def find(self, text: str) -> str | None:
        """Return the banned term `text` contains (as the moderator wrote it), or None."""
        if self._whole_words is None or self._anywhere is None:
            return None
        folded = _fold(text)
        match = self._whole_words.search(folded)
        if match is None:
            for spelled in _SPELLED_OUT.finditer(folded):
                match = self._anywhere.search(_SEPS.sub("", spelled.group(0)))
                if match is not None:
                    break
        if match is None:
            return None
        return self._term_for(match.group(0))

    def _term_for(self, matched: str) -> str:
        # Named groups would say which term matched but make compiling ~3x slower; instead
        # the match is read back to letter classes and repeats, as the terms were.
        keys, counts = _skeleton(matched)
        candidates = self._by_skeleton.get(keys, [])
        for need, term in candidates:
            if all(n <= c for n, c in zip(need, counts, strict=True)):
                return term
        return candidates[0][1] if candidates else matched


def _term(term: str) -> str:
    return _fold(term).translate(_TERM_LEET)


# -- links ---------------------------------------------------------------------------------

# A dot, as written or dodged: full-width dots fold to "." or U+3002; "[.]", "(dot)", "{dot}".
_DOT = r"(?:\.|\u3002|\s*[(\[{]\s*(?:dot|\.)\s*[)\]}]\s*)"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
# Top-level domains used in links. Left out on purpose: ones that are also common file
# extensions ("py", "sh", "md", "rs", "pl") and short words people write after a full stop
# without a space ("is", "at", "no", "do", "my", "as", "by"). "e.g." and "3.5" never match
# because a TLD here is two or more letters from this list.
_TLDS = (
    "com|net|org|info|biz|edu|gov|mil|int|io|co|gg|tv|me|ly|be|to|it|in|us|so|am|fm|ai|"
    "app|dev|xyz|site|online|live|link|click|club|top|shop|store|stream|chat|social|tech|"
    "fun|lol|win|vip|icu|cc|ws|tk|ml|ga|cf|gq|su|ru|ua|by|kz|cn|jp|kr|hk|tw|vn|id|th|ph|"
    "uk|de|fr|nl|es|pt|se|fi|dk|ch|cz|eu|ca|au|nz|br|mx|ar|cl|ir|tr|za|ng|xn--[a-z0-9-]+"
)
_SPOKEN_TLDS = "com|net|org|io|gg|xyz|ru|ly|tk|info|biz|uk"
_LINK: Final = re.compile(
    r"\b(?:https?|ftps?)\s*:\s*/\s*/"  # any scheme-qualified URL
    rf"|\bwww\d?{_DOT}{_WORD}"
    # Only the label before the TLD is matched, never a chain of labels: "a.a.a.a..." would
    # make a repeated group backtrack quadratically, and "sub.example.com" matches anyway.
    rf"|(?<![\w-]){_LABEL}{_DOT}(?:{_TLDS})(?![\w-])"
    # "example dot com": only with TLDs that are not everyday words, since "polka dot me"
    # is chat, not a link.
    rf"|(?<![\w-]){_LABEL}\s+dot\s+(?:{_SPOKEN_TLDS})(?![\w-])"
)


def contains_link(text: str) -> bool:
    """Return whether `text` holds a URL or a bare domain, plain or lightly disguised."""
    return _LINK.search(_fold(text)) is not None


# -- message checks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a chat message was refused: a stable code for clients and a sentence for people."""

    code: RefusalCode
    message: str


def check_message(
    text: str, *, max_length: int, links_allowed: bool, banned: BannedTerms
) -> Refusal | None:
    """Return why `text` may not be posted, or None when it may.

    Checked in order: empty (nothing visible), control characters, length (Unicode code
    points after NFC), links (unless allowed), banned terms.
    """
    if not has_visible(text):
        return Refusal("empty", "message is empty")
    # Control characters as livecore.text defines them: bidi controls included, "\n" allowed.
    if has_control(text, newlines=True):
        return Refusal("control_chars", "message contains control characters")
    if len(unicodedata.normalize("NFC", text)) > max_length:
        return Refusal("too_long", f"message is longer than {max_length} characters")
    if not links_allowed and contains_link(text):
        return Refusal("link", "links are not allowed in this chat")
    if banned.find(text) is not None:
        return Refusal("banned_term", "message contains a term banned in this chat")
    return None
