"""A Stripe webhook's event: its signature and freshness verified, and read into one frozen
value per kind livecore applies (Ignored for every other kind), so that nothing past this
package handles the event's JSON.

A field that is present but unreadable (`created: "abc"`, an amount that is not a whole
number) is a MalformedEvent, answered 400 so that Stripe's retries can apply the event once
a release reads it. Such a field is read as Unreadable and refused only where the webhook
handler needs it (`need`), so that the handler's order of checks holds: a duplicate of an
event already applied, or a payment that is no tip of livecore's, is acknowledged whatever
its other fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar

import stripe

from livecore.ids import BIGINT_MAX, parse_int
from livecore.tips.stripe.objects import (
    DisputeFee,
    ProcessorInvoice,
    ProcessorSubscription,
    dispute_fees,
    parse_invoice,
    parse_subscription,
    stripe_id,
)

MAX_AMOUNT_MINOR: Final = 10**12  # far beyond any one payment; sums of them stay within bigint
T = TypeVar("T")


class WebhookRefused(Exception):
    """Not a genuine, fresh Stripe event: answered 400 and nothing changes."""


class MalformedEvent(WebhookRefused):
    """A signed event with a field livecore cannot read (`created: "abc"`, an amount that is
    not a whole number): answered 400 before anything changes, so a fixed release can apply
    it when Stripe retries or the operator resends it."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A field livecore cannot read, refused (MalformedEvent) when the handler needs it."""

    reason: str
    shown: str  # the field as it came, for logs

    def __str__(self) -> str:
        return self.shown


def need(value: T | Unreadable) -> T:
    """The field's value; MalformedEvent (answered 400) when it is Unreadable."""
    if isinstance(value, Unreadable):
        raise MalformedEvent(value.reason)
    return value


@dataclass(frozen=True, slots=True)
class PaymentSucceeded:
    """payment_intent.succeeded: a PaymentIntent is paid (a tip's, when its metadata names
    one)."""

    payment_ref: str | Unreadable
    tip_id: int | None  # None: no tip of livecore's (another product, or "tip_id": "²")
    # As sent, for the comparison with the tip's: a number equal to a whole number (1000 and
    # 1000.0 alike), and the currency's text; None when it can equal no tip's.
    amount_minor: int | None
    currency: str | None
    charge_ref: str | None  # its latest charge


@dataclass(frozen=True, slots=True)
class CardCharged:
    """charge.succeeded: which card paid a PaymentIntent (per-card tip limits count it)."""

    payment_ref: str | None
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class PaymentFailed:
    """payment_intent.payment_failed or payment_intent.canceled."""

    tip_id: int | None  # None: no tip of livecore's
    reason: str  # the decline message, else the cancellation reason, else "failed"


@dataclass(frozen=True, slots=True)
class ChargeRefunded:
    """charge.refunded: the charge's refunds so far, in total."""

    charge_ref: str | Unreadable
    payment_ref: str | None
    refunded_total_minor: int | Unreadable  # 0 when absent


@dataclass(frozen=True, slots=True)
class DisputeChanged:
    """charge.dispute.created, .updated or .closed: the dispute as it stands."""

    dispute_ref: str | Unreadable
    charge_ref: str | None  # None: a dispute of no charge, ignored
    payment_ref: str | None
    amount_minor: int | Unreadable
    currency: str | Unreadable  # lower case
    status: str
    fees: tuple[DisputeFee, ...]  # on its balance transactions


@dataclass(frozen=True, slots=True)
class SubscriptionChanged:
    """customer.subscription.created, .updated or .deleted."""

    subscription: ProcessorSubscription | None  # None: its object named no id


@dataclass(frozen=True, slots=True)
class InvoicePaid:
    """invoice.paid."""

    invoice: ProcessorInvoice | None  # None: no usable id, amount or currency


@dataclass(frozen=True, slots=True)
class InvoiceFailed:
    """invoice.payment_failed."""

    invoice: ProcessorInvoice | None  # None: no usable id, amount or currency


@dataclass(frozen=True, slots=True)
class Ignored:
    """Any other kind: acknowledged, so that Stripe stops sending it, and not recorded."""


Applied: TypeAlias = (
    PaymentSucceeded | CardCharged | PaymentFailed | ChargeRefunded | DisputeChanged
    | SubscriptionChanged | InvoicePaid | InvoiceFailed
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Event:
    """A verified event: its id and type as Stripe names them, and its object read."""

    id: str
    type: str
    created: int | Unreadable  # Unix time; 0 when absent
    body: Applied | Ignored


def verify(payload: bytes, header: str, secret: str, tolerance_s: int) -> Event:
    """The event in a signed payload, read; or WebhookRefused.

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
    event_id = stripe_id(event.get("id")) if isinstance(event, dict) else None
    if not (
        event_id is not None
        and isinstance(event.get("type"), str) and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):  # fmt: skip
        raise WebhookRefused("payload is not a Stripe event")
    read = _READERS.get(event["type"])
    body = read(event["data"]["object"]) if read is not None else Ignored()
    return Event(event_id, event["type"], _created(event.get("created")), body)


def _timestamp(header: str) -> int | None:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and (timestamp := parse_int(value)) is not None:
            return timestamp
    return None


def _payment_succeeded(intent: dict[str, Any]) -> PaymentSucceeded:
    amount, currency = intent.get("amount"), intent.get("currency")
    return PaymentSucceeded(
        _required_id(intent, "id"), _tip_id(intent), _whole(amount),
        currency if isinstance(currency, str) else None, stripe_id(intent.get("latest_charge")),
    )  # fmt: skip


def _card_charged(charge: dict[str, Any]) -> CardCharged:
    card = _fields(_fields(charge.get("payment_method_details")).get("card"))
    # A fingerprint has the printable, bounded shape of an id.
    return CardCharged(stripe_id(charge.get("payment_intent")), stripe_id(card.get("fingerprint")))


def _payment_failed(intent: dict[str, Any]) -> PaymentFailed:
    error = _fields(intent.get("last_payment_error"))
    reason = error.get("message") or intent.get("cancellation_reason")
    return PaymentFailed(_tip_id(intent), _free_text(reason, "failed"))


def _charge_refunded(charge: dict[str, Any]) -> ChargeRefunded:
    return ChargeRefunded(
        _required_id(charge, "id"), stripe_id(charge.get("payment_intent")),
        _amount(charge, "amount_refunded", default=0),
    )  # fmt: skip


def _dispute_changed(dispute: dict[str, Any]) -> DisputeChanged:
    return DisputeChanged(
        _required_id(dispute, "id"), stripe_id(dispute.get("charge")),
        stripe_id(dispute.get("payment_intent")), _amount(dispute, "amount"),
        _currency(dispute, "currency"), _free_text(dispute.get("status"), ""),
        tuple(dispute_fees(dispute.get("balance_transactions"))),
    )  # fmt: skip


_READERS: Final[dict[str, Callable[[dict[str, Any]], Applied]]] = {
    "payment_intent.succeeded": _payment_succeeded,
    "charge.succeeded": _card_charged,
    "payment_intent.payment_failed": _payment_failed,
    "payment_intent.canceled": _payment_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_changed,
    "charge.dispute.updated": _dispute_changed,
    "charge.dispute.closed": _dispute_changed,
    "customer.subscription.created": lambda obj: SubscriptionChanged(parse_subscription(obj)),
    "customer.subscription.updated": lambda obj: SubscriptionChanged(parse_subscription(obj)),
    "customer.subscription.deleted": lambda obj: SubscriptionChanged(parse_subscription(obj)),
    "invoice.paid": lambda obj: InvoicePaid(parse_invoice(obj)),
    "invoice.payment_failed": lambda obj: InvoiceFailed(parse_invoice(obj)),
}
# The kinds read into a value rather than Ignored: the events to enable on the endpoint.
APPLIED_TYPES: Final = frozenset(_READERS)


def _fields(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unreadable(reason: str, value: Any) -> Unreadable:
    return Unreadable(reason, str(value))


def _created(value: Any) -> int | Unreadable:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= BIGINT_MAX:
        return _unreadable("event created is not a Unix time", value)
    return value


def _required_id(obj: dict[str, Any], name: str) -> str | Unreadable:
    value = stripe_id(obj.get(name))
    if value is None:
        return _unreadable(f"object {name} is not a Stripe id", obj.get(name))
    return value


def _amount(obj: dict[str, Any], name: str, *, default: int | None = None) -> int | Unreadable:
    value = obj.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT_MINOR:
        return _unreadable(f"object {name} is not an amount in minor units", value)
    return value


def _currency(obj: dict[str, Any], name: str) -> str | Unreadable:
    value = obj.get(name)
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        return _unreadable(f"object {name} is not a currency code", value)
    return value.lower()


def _whole(value: Any) -> int | None:
    """The whole number a JSON number equals (`true` equals 1, 1000.0 equals 1000)."""
    if isinstance(value, int):  # bool included
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _free_text(value: Any, default: str) -> str:
    """Free text from Stripe (a decline message, a status), as PostgreSQL can store it."""
    if value is None or value == "":
        return default
    text = value if isinstance(value, str) else str(value)
    # No NUL (PostgreSQL text cannot hold it), no lone surrogates (they are not UTF-8).
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:500]


def _tip_id(intent: dict[str, Any]) -> int | None:
    """The tip a PaymentIntent pays; None when its metadata names none (not a tip of ours:
    another product on the same Stripe account, or a `tip_id` that is no id, like "²")."""
    return parse_int(_fields(intent.get("metadata")).get("tip_id"), minimum=1)
