"""livecore.text: the rules shared by chat lines, display names and stream titles."""

from __future__ import annotations

import pytest

from livecore.text import has_control, has_visible, name_key


@pytest.mark.parametrize(
    "text", ["", "   ", "\u3164", "\u2800", "\u115f\u1160", "\uffa0", "\u200b\u200d", " \u0301 "]
)
def test_nothing_visible(text: str) -> None:
    assert not has_visible(text)


@pytest.mark.parametrize("text", ["a", "\u3164a", "\u0645", "\U0001f600", "\u0345"])
def test_something_visible(text: str) -> None:
    assert has_visible(text)


@pytest.mark.parametrize(
    "char", ["\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u202a", "\u202b", "\u202c",
             "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\ud800"],
)  # fmt: skip
def test_control_characters(char: str) -> None:
    assert has_control(f"a{char}b", newlines=True)
    assert has_control(f"a{char}b", newlines=False)


def test_newline_is_a_control_character_only_where_lines_are_not_allowed() -> None:
    assert not has_control("a\nb", newlines=True)
    assert has_control("a\nb", newlines=False)
    assert not has_control("a\u200db", newlines=False)  # joiners belong to emoji and scripts


def test_names_alike_as_read_share_a_key() -> None:
    alike = ["Ann", "ann", "ANN", " Ann ", "\uff21\uff4e\uff4e", "Ann\u3164", "A\u200bnn",
             "\U0001d400nn"]  # fmt: skip
    assert {name_key(n) for n in alike} == {"ann"}
    assert name_key("Ann  B") == name_key("ann b")
    assert name_key("Straße") == name_key("STRASSE")


def test_names_that_read_differently_have_different_keys() -> None:
    names = ["Ann", "Anne", "José", "Jose", "Анна", "ann.", "Ann B"]
    assert len({name_key(n) for n in names}) == len(names)
