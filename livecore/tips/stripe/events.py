"""A Stripe webhook's event: its signature and freshness verified, and its fields read.

A field that is present but unreadable (`created: "abc"`, an amount that is not a whole
number) is a MalformedEvent, answered 400 so that Stripe's retries can apply the event once
a release reads it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

import stripe

from livecore.ids import BIGINT_MAX, parse_int
from livecore.tips.stripe.objects import stripe_id

MAX_AMOUNT_MINOR: Final = 10**12  # far beyond any one payment; sums of them stay within bigint


class WebhookRefused(Exception):
    """Not a genuine, fresh Stripe event: answered 400 and nothing changes."""


class MalformedEvent(WebhookRefused):
    """A signed event with a field livecore cannot read (`created: "abc"`, an amount that is
    not a whole number): answered 400 before anything changes, so a fixed release can apply
    it when Stripe retries or the operator resends it."""


def verify(payload: bytes, header: str, secret: str, tolerance_s: int) -> dict[str, Any]:
    """The event in a signed payload, or WebhookRefused.

    Stripe's library checks the HMAC and that the timestamp is not older than the tolerance;
    a timestamp from the future is checked here (the library accepts it).
    """
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance_s)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRefused(str(exc).split(". ")[0]) from None
    timestamp = _timestamp(header)
    if timestamp is None or timestamp > time.time() + tolerance_s:
        raise WebhookRefused("timestamp outside the tolerance zone")
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):  # Recursion: nested too deep
        raise WebhookRefused("payload is not JSON") from None
    if not (
        isinstance(event, dict) and stripe_id(event.get("id")) is not None
        and isinstance(event.get("type"), str) and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):  # fmt: skip
        raise WebhookRefused("payload is not a Stripe event")
    return event


def _timestamp(header: str) -> int | None:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and (timestamp := parse_int(value)) is not None:
            return timestamp
    return None


def fields(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def created(event: dict[str, Any]) -> int:
    value = event.get("created")
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= BIGINT_MAX:
        raise MalformedEvent("event created is not a Unix time")
    return value


def required_id(obj: dict[str, Any], name: str) -> str:
    value = stripe_id(obj.get(name))
    if value is None:
        raise MalformedEvent(f"object {name} is not a Stripe id")
    return value


def amount(obj: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = obj.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT_MINOR:
        raise MalformedEvent(f"object {name} is not an amount in minor units")
    return value


def currency(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        raise MalformedEvent(f"object {name} is not a currency code")
    return value.lower()


def free_text(value: Any, default: str) -> str:
    """Free text from Stripe (a decline message, a status), as PostgreSQL can store it."""
    if value is None or value == "":
        return default
    text = value if isinstance(value, str) else str(value)
    # No NUL (PostgreSQL text cannot hold it), no lone surrogates (they are not UTF-8).
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:500]


def tip_id(intent: dict[str, Any]) -> int | None:
    """The tip a PaymentIntent pays; None when its metadata names none (not a tip of ours:
    another product on the same Stripe account, or a `tip_id` that is no id, like "²")."""
    return parse_int(fields(intent.get("metadata")).get("tip_id"), minimum=1)
