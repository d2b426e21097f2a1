"""Whole numbers from untrusted text: path segments, query strings, Stripe metadata.

`str.isdigit()` and `re`'s `\\d` accept other scripts' digits and superscripts ('²' passes
isdigit, and int() then raises), `int()` accepts Arabic-Indic digits, and neither knows that
PostgreSQL's bigint holds at most 2**63 - 1. Every id or count read from text goes through
`parse_int`, so a value the database cannot hold is refused where it arrives, never as an
error deep inside a query. Imports only `errors`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from livecore.errors import NotFound

if TYPE_CHECKING:
    from aiohttp import web

BIGINT_MAX: Final = 2**63 - 1
_DIGITS: Final = re.compile(r"[0-9]{1,19}")  # ASCII only; 19 digits reach past BIGINT_MAX


def parse_int(raw: object, *, minimum: int = 0, maximum: int = BIGINT_MAX) -> int | None:
    """The value of `raw` if it is a string of ASCII digits within [minimum, maximum]."""
    if not isinstance(raw, str) or not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def path_id(request: web.Request, name: str, what: str) -> int:
    """The id in path segment `name`; one that cannot exist is a 404 `no such {what}`."""
    value = parse_int(request.match_info[name], minimum=1)
    if value is None:
        raise NotFound(f"no such {what}")
    return value
