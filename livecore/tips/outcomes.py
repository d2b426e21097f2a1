"""What a tip request ends in: the tip and how it was paid, or the reason it was not (each
translated to its HTTP answer by tips/routes.py), and what a viewer may tip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from livecore.config import TipsConfig
from livecore.store.tips import Tip
from livecore.tips.providers import Payment, RefusalKind

Lane = Literal["primary", "fallback"]
FALLBACK_NOTICE = (
    "Card payments are unavailable right now. Your tip is recorded as pending and you have "
    "not been charged; the creator will send you an invoice to settle it."
)


class TipRefused(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k} {v}" for k, v in fields.items()))
        self.fields = fields


class TipLimited(Exception):
    """A velocity limit: the viewer may try again later."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class TipForbidden(Exception):
    """This viewer may not tip this stream (banned from it)."""


class TipDeclined(Exception):
    def __init__(self, tip: Tip, reason: str, code: str) -> None:
        super().__init__(reason)
        self.tip = tip
        self.reason = reason
        self.code = code


class TipRejected(Exception):
    """The processor refused the payment's request for good (not the card: its parameters,
    the platform's keys or permissions). The tip failed (None: none was made) and nothing was
    charged."""

    def __init__(self, tip: Tip | None, reason: str, kind: RefusalKind, param: str | None) -> None:
        super().__init__(reason)
        self.tip = tip
        self.reason = reason
        self.kind = kind
        self.param = param


class TipBusy(Exception):
    """The processor refused to take the request now (rate limited) and did nothing: the
    tip failed, nothing was charged, and a new tip may be sent in a moment."""

    def __init__(self, tip: Tip) -> None:
        super().__init__(f"tip {tip.id}: the processor is busy")
        self.tip = tip


class TipUnconfirmed(Exception):
    """The processor may or may not have taken the payment; retrying with the same
    Idempotency-Key finds out and never charges twice."""

    def __init__(self, tip: Tip) -> None:
        super().__init__(f"tip {tip.id}: outcome unknown")
        self.tip = tip


class TipsUnavailable(Exception):
    """The processor is down and no fallback lane is configured."""


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was used before for a different tip."""


@dataclass(frozen=True, slots=True)
class TipResult:
    tip: Tip
    payment: Payment | None  # None: no processor call (a settled retry, or the fallback lane)
    test_mode: bool
    lane: Lane = "primary"
    publishable_key: str | None = None
    created: bool = True


@dataclass(frozen=True, slots=True)
class TipOptions:
    """What a viewer may tip a stream, for the tip form (the checks themselves stay in send)."""

    currencies: tuple[str, ...]
    min_minor: int
    max_minor: int  # for this viewer: a young account's smaller limit applied
    young_until: datetime | None  # when a young account's limit lifts; None when it does not apply
    refusal: str | None  # why this viewer may not tip this stream at all (their own, banned)
    test_mode: bool
    publishable_key: str | None


def limited(which: str, s: TipsConfig) -> TipLimited:
    if which == "minute":
        return TipLimited(f"at most {s.viewer_tips_per_minute} tips a minute", 60)
    if which == "day":
        return TipLimited(f"at most {s.viewer_daily_minor} in tips a day", 3600)
    # A stolen card spread over many accounts.
    return TipLimited(f"this card may pay at most {s.card_tips_per_hour} tips an hour", 3600)
