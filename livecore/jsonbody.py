"""Reading JSON request bodies into checked values, for every routes module (and `iso`, how
answers write a time).

Malformed JSON is a 400; a body that parses but has wrong fields is a 422 naming each one.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any, TypeVar, cast

from aiohttp import web

from livecore.errors import BadRequest, Invalid, PayloadTooLarge, UnsupportedMediaType
from livecore.ids import BIGINT_MAX

T = TypeVar("T", bound=str)


async def read_body(request: web.Request) -> Body:
    if not request.can_read_body:
        return Body({})
    if request.content_type != "application/json":
        raise UnsupportedMediaType("request body must be application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("request body is too large") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # Recursion: nested too deep
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return Body(data)


class Body:
    """Typed accessors over a JSON object; problems collect until `check()`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.problems: dict[str, str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._data and self._data[name] is not None

    def text(self, name: str, *, max_len: int = 1024, default: str | None = None) -> str:
        value = self._data.get(name)
        if value is None:
            if default is None:
                self.problems[name] = "is required"
            return default or ""
        if not isinstance(value, str):
            self.problems[name] = "must be a string"
            return ""
        if len(value) > max_len:
            self.problems[name] = f"must be at most {max_len} characters"
            return ""
        # JSON can carry lone surrogates (which cannot be encoded as UTF-8) and NUL (which
        # PostgreSQL text cannot hold); either would fail deep inside with a 500.
        if "\x00" in value or (not value.isascii() and _has_surrogate(value)):
            self.problems[name] = "must be valid text without NUL characters"
            return ""
        return value

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self._data.get(name)
        if value is None:
            self.problems[name] = "is required"
            return 0
        if not isinstance(value, int) or isinstance(value, bool):
            self.problems[name] = "must be an integer"
            return 0
        # JSON integers have no size limit; PostgreSQL's bigint does.
        low = -BIGINT_MAX - 1 if minimum is None else minimum
        high = BIGINT_MAX if maximum is None else maximum
        if low <= value <= high:
            return value
        if minimum is not None and maximum is not None:
            self.problems[name] = f"must be between {minimum} and {maximum}"
        elif value < low:
            self.problems[name] = f"must be at least {low}"
        else:
            self.problems[name] = f"must be at most {high}"
        return 0

    def texts(self, name: str, *, max_items: int, max_len: int) -> list[str]:
        value = self._data.get(name)
        if not isinstance(value, list) or len(value) > max_items:
            self.problems[name] = f"must be a list of at most {max_items} strings"
            return []
        if not all(isinstance(v, str) and 0 < len(v) <= max_len for v in value):
            self.problems[name] = f"must hold strings of 1 to {max_len} characters"
            return []
        return [str(v) for v in value]

    def flag(self, name: str, *, default: bool = False) -> bool:
        value = self._data.get(name, default)
        if not isinstance(value, bool):
            self.problems[name] = "must be true or false"
            return default
        return value

    def choice(self, name: str, choices: Collection[T], *, default: T | None = None) -> T:
        value = self._data.get(name)
        if value is None and default is not None:
            return default
        if value not in choices:
            self.problems[name] = "must be one of " + ", ".join(sorted(choices))
            return next(iter(choices))
        return cast(T, value)  # checked above to be one of `choices`

    def check(self) -> None:
        if self.problems:
            raise Invalid(invalid_message(self.problems), fields=self.problems)


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def invalid_message(problems: dict[str, str]) -> str:
    return "invalid " + ", ".join(sorted(problems))


def iso(value: datetime | None) -> str | None:
    """A time as answers carry it: ISO 8601, or null."""
    return value.isoformat() if value is not None else None
