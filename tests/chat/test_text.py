"""Chat text rules: normalisation, banned terms (evasions and false positives), links and
message checks."""

from __future__ import annotations

import dataclasses
import random
import string
import time

import pytest

from livecore.chat.text import BannedTerms, Refusal, check_message, contains_link, normalise

# -- normalise ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BaD", "bad"),
        ("\uff42\uff41\uff44", "bad"),  # full-width
        ("b\u200bad", "bad"),  # zero-width space
        ("b\u200d\u2060a\ufeffd", "bad"),  # zero-width joiner, word joiner, BOM
        ("b\u00adad", "bad"),  # soft hyphen
        ("ba\ufe0fd", "bad"),  # variation selector
        ("b\u3164ad", "bad"),  # Hangul filler (a blank letter, not Cf)
        ("b\u00e4d", "bad"),  # precomposed diacritic
        ("ba\u0308d", "bad"),  # combining diacritic
        ("\ufb01ne", "fine"),  # ligature (NFKC)
        ("\U0001d41b\U0001d41a\U0001d41d", "bad"),  # mathematical bold
        ("\u24b7\u24d0\u24d3", "bad"),  # circled letters
        ("b\u0430d", "bad"),  # Cyrillic a
        ("\u0392\u0391D", "bad"),  # Greek capital beta and alpha
        ("b4d", "bad"),
        ("h3ll0 w0r1d", "hello worid"),  # 1 reads as i in normalise (patterns accept i or l)
        ("$7@|", "stal"),
        ("b.a.d", "bad"),
        ("b a d", "bad"),
        ("b-a-d", "bad"),
        ("b_a_d", "bad"),
        ("baaaaad", "baad"),  # runs cut to two
        ("good", "good"),  # ...so a real double letter survives
        ("  so   much\n\tspace  ", "so much space"),
        ("STRASSE Stra\u00dfe", "strasse strasse"),  # casefold
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_normalise_makes_variants_of_one_message_equal() -> None:
    full_width = "\uff28\uff25\uff2c\uff2c\uff2f!!!"
    assert normalise("Hello!!!!") == normalise("hello!!") == normalise(full_width)


# -- banned terms: evasions -------------------------------------------------------------------

TERMS = BannedTerms(["bad", "ass", "shit", "kill", "Bad Word", "cunt", "hell"])


@pytest.mark.parametrize(
    "text",
    [
        "BaD",
        "you are BAD.",
        "\uff42\uff41\uff44",
        "b\u200bad",
        "b\u200c\u200da\u2060d",
        "b\u00e4d",
        "ba\u0308d",
        "b\u0336a\u0336d\u0336",  # strike-through combining overlay
        "\U0001d41b\U0001d41a\U0001d41d",
        "b\u0430d",  # Cyrillic a
        "b4d",
        "b@d",
        "8ad",
        "b.a.d",
        "b a d",
        "b-a-d",
        "b_a_d",
        "b * a * d",
        "this is b a d!",
        "i am a b a d guy",  # spelled-out letters are searched inside
        "baaaad",
        "bbbaaaddd",
        "B . 4 . D",
    ],
)
def test_banned_term_evasions_are_caught(text: str) -> None:
    assert TERMS.find(text) == "bad"


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("@ss", "ass"),
        ("a s s", "ass"),
        ("aaasss", "ass"),
        ("$hit", "shit"),
        ("sh1t", "shit"),
        ("5h!t", "shit"),
        ("sh|t", "shit"),
        ("k1ll", "kill"),
        ("ki11", "kill"),
        ("kiII", "kill"),  # capital I for l
        ("K\u0406LL", "kill"),  # Cyrillic capital I
        ("what the h3ll", "hell"),
        ("badword", "Bad Word"),  # a phrase matches with or without separators...
        ("bad  word", "Bad Word"),
        ("bad-word", "Bad Word"),  # ...and the term comes back as the moderator wrote it
    ],
)
def test_banned_terms_are_reported_as_written(text: str, term: str) -> None:
    assert TERMS.find(text) == term


@pytest.mark.parametrize(
    "text",
    [
        "class",
        "cl@ss",
        "assistant",
        "passage",
        "bass",
        "assess",
        "as",  # a run of two in a term needs two: shortening is not allowed
        "Scunthorpe",
        "hello",
        "shell",
        "skill",
        "killer",  # word boundary trade-off: inflections are not caught...
        "badass",  # ...nor compounds
        "asses",
        "bad4u",  # a digit after the term counts as part of the word
        "b ad",  # separators inside only count between single letters
        "a bass drum",
        "",
    ],
)
def test_whole_words_only(text: str) -> None:
    assert TERMS.find(text) is None


def test_longer_term_sharing_a_prefix_is_reported() -> None:
    terms = BannedTerms(["bad", "bad dog"])
    assert terms.find("such a baddog") == "bad dog"
    assert terms.find("such a bad cat") == "bad"


def test_terms_differing_only_in_repeats_report_the_one_that_fits() -> None:
    terms = BannedTerms(["as", "ass"])
    assert terms.find("as") == "as"
    assert terms.find("asss") == "ass"


def test_terms_are_normalised_like_messages() -> None:
    terms = BannedTerms(["  \uff22\uff21\uff24 ", "sh!t", "b4d"])
    assert terms.find("bad") == "\uff22\uff21\uff24"
    assert terms.find("shit") == "sh!t"


def test_terms_in_other_scripts_match() -> None:
    russian = "\u0445\u0440\u0435\u043d"  # a mild Russian swear word
    greek = "\u03ba\u03b1\u03ba\u03cc\u03c2"  # "bad", with an accent
    terms = BannedTerms([russian, greek])
    assert terms.find("\u043d\u0443 " + russian.upper()) == russian
    unaccented = "\u03ba\u03b1\u03ba\u03bf\u03c2"
    assert terms.find("\u03c0\u03bf\u03bb\u03cd " + unaccented) == greek


def test_empty_and_blank_terms_match_nothing() -> None:
    for terms in (BannedTerms([]), BannedTerms(["", "  ", "\u200b"])):
        assert terms.find("anything at all") is None
    assert len(BannedTerms(["", "bad", "bad"])) == 1


def test_banned_terms_are_immutable_values() -> None:
    terms = BannedTerms(["bad", "ass"])
    assert terms == BannedTerms(("bad", "ass"))
    assert terms.terms == ("bad", "ass")
    with pytest.raises(dataclasses.FrozenInstanceError):
        terms.terms = ()  # type: ignore[misc]  # the point: frozen


def test_hundreds_of_terms_compile_once_and_match_fast() -> None:
    rng = random.Random(4)
    words = sorted(
        {"".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10))) for _ in range(500)}
    )
    terms = BannedTerms(words)
    assert [terms.find(f"well {w.upper()}!") for w in words] == words
    message = " ".join("".join(rng.choices(string.ascii_lowercase, k=3)) for _ in range(120))
    started = time.perf_counter()
    for _ in range(200):
        terms.find(message)
    # ~0.5 ms per 480-character message here; the bound only catches a regression to
    # per-term loops or catastrophic backtracking.
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "text",
    ["a" * 5000, "a " * 2500, "b " * 2500, "@" * 5000, "$ " * 2500, "k1" * 2500, "a." * 2500],
)
def test_hostile_input_is_scanned_in_linear_time(text: str) -> None:
    # Each of these was quadratic (seconds) in some draft: a match tried from every
    # position of a long run, or a repeated group backtracking.
    terms = BannedTerms(["bad", "ass", "kill", "aaab"])
    started = time.perf_counter()
    terms.find(text)
    contains_link(text)
    assert time.perf_counter() - started < 0.25


def test_spelled_out_runs_are_searched_inside() -> None:
    assert BannedTerms(["aaab"]).find("a." * 2500 + "b") == "aaab"


# -- links ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "example.com",
        "visit www.example.org now",
        "https://x.y/z",
        "HTTP://localhost:8080",
        "join discord.gg/abc",
        "bit.ly/xyz",
        "t.me/channel",
        "sub.domain.co.uk",
        "mail me: someone@mail.ru",
        "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
        "exa\u200bmple.com",
        "\u0435xample.c\u043em",  # Cyrillic e and o
        "example\uff61com",
        "example dot com",
        "example (dot) com",
        "example[.]com",
        "www dot example dot net",
        "xn--80ak6aa92e.com",
    ],
)
def test_links_are_found(text: str) -> None:
    assert contains_link(text)


@pytest.mark.parametrize(
    "text",
    [
        "e.g. this",
        "i.e. that",
        "3.5 stars",
        "version 2.0.1",
        "the end.Next one",
        "Mr.Smith",
        "see file.txt or main.rs or setup.py",
        "wait...what",
        "u.s.a",
        "node.js",
        "polka dot me",
        "nice. com",  # a full stop and a space: a sentence, not a domain
        "a.m. and p.m.",
    ],
)
def test_ordinary_dots_are_not_links(text: str) -> None:
    assert not contains_link(text)


# -- check_message ----------------------------------------------------------------------------

NO_TERMS = BannedTerms([])


def check(text: str, *, max_length: int = 50, links: bool = False) -> str | None:
    refusal = check_message(text, max_length=max_length, links_allowed=links, banned=TERMS)
    return None if refusal is None else refusal.code


def test_a_fine_message_passes() -> None:
    assert check("hello there \U0001f44b\nsecond line") is None


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "\u200b\u200b", "\u3164"])
def test_empty_messages_are_refused(text: str) -> None:
    assert check(text) == "empty"


@pytest.mark.parametrize(
    "text",
    ["nul\x00", "bell\x07", "tab\there", "cr\r\n", "esc\x1b[31m", "c1\x85", "rlo\u202eevil",
     "ls\u2028", "lone \ud800 surrogate"],
)  # fmt: skip
def test_control_characters_other_than_newline_are_refused(text: str) -> None:
    assert check(text) == "control_chars"


def test_length_counts_code_points_after_nfc() -> None:
    assert check("\u00e9" * 10, max_length=10) is None
    assert check("e\u0301" * 10, max_length=10) is None  # 20 code points, 10 after NFC
    assert check("\u00e9" * 11, max_length=10) == "too_long"
    assert check("\U0001f44d" * 10, max_length=10) is None  # code points, not UTF-16 units or bytes


def test_links_are_refused_unless_allowed() -> None:
    assert check("see example.com") == "link"
    assert check("see example.com", links=True) is None


def test_banned_terms_are_refused() -> None:
    assert check("you are b.a.d") == "banned_term"
    assert check("you are in class") is None
    refusal = check_message("b4d", max_length=50, links_allowed=True, banned=NO_TERMS)
    assert refusal is None


def test_refusals_carry_a_human_message() -> None:
    refusal = check_message("x" * 41, max_length=40, links_allowed=False, banned=NO_TERMS)
    assert refusal == Refusal("too_long", "message is longer than 40 characters")
    for text in ("", "a\x00", "x.com", "bad"):
        found = check_message(text, max_length=40, links_allowed=False, banned=TERMS)
        assert found is not None and found.message
