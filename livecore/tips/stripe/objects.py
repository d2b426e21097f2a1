"""Stripe's objects (subscriptions, invoices, a dispute's balance transactions) made into
livecore's values at the edge: every field read defensively (an unusable object is None, an
unusable id is no id), so that nothing past this module handles Stripe's JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from livecore.ids import parse_int
from livecore.store.subscriptions import SubscriptionStatus

_STRIPE_ID: Final = re.compile(r"[\x21-\x7e]{1,255}")
_LAST_TIME: Final = 253402300799  # 9999-12-31T23:59:59Z, the last time datetime holds
_MAX_AMOUNT_MINOR: Final = 10**12  # far beyond any one invoice; sums stay within bigint
# The processor's subscription statuses, as livecore keeps them. A paused subscription lets
# nobody in but may resume, like an incomplete one; so does an unpaid one (Stripe has stopped
# retrying but keeps it, and makes it active again when the open invoice is paid).
_STATUSES: Final[dict[str, SubscriptionStatus]] = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "incomplete",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
    "incomplete": "incomplete",
    "paused": "incomplete",
}


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose subscription it is, from the metadata the checkout put on it."""

    viewer_id: int
    tier_id: int
    creator_id: int
    # The platform's share agreed at checkout (basis points): Stripe keeps applying that
    # share (application_fee_percent) to every invoice, whatever an admin sets later.
    fee_bps: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessorSubscription:
    ref: str
    status: SubscriptionStatus | None  # None: a status livecore does not know
    raw_status: str
    cancel_at_period_end: bool
    period_end: datetime | None
    owner: Owner | None


@dataclass(frozen=True, slots=True)
class ProcessorInvoice:
    id: str
    subscription_ref: str | None
    amount_paid_minor: int
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    charge_ref: str | None
    payment_ref: str | None  # the PaymentIntent that paid it
    owner: Owner | None


def unix_time(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _LAST_TIME:
        return datetime.fromtimestamp(value, UTC)
    return None


def stripe_id(value: Any) -> str | None:
    """An expandable Stripe field: an id, or the expanded object with its id. Stripe's ids
    are short printable ASCII; anything else (NUL, 100 KiB) is no id and never reaches SQL."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(value: Any) -> dict[str, Any]:
    """The first element of a Stripe list object (`{"data": [...]}`)."""
    data = _dict(value).get("data")
    return _dict(data[0]) if isinstance(data, list) and data else {}


def _owner(metadata: Any) -> Owner | None:
    ids = [parse_int(_dict(metadata).get(k)) for k in ("viewer_id", "tier_id", "creator_id")]
    viewer, tier, creator = ids
    if viewer is None or tier is None or creator is None:
        return None
    fee_bps = parse_int(_dict(metadata).get("fee_bps"), maximum=10_000)
    return Owner(viewer, tier, creator, fee_bps)


def parse_subscription(obj: dict[str, Any]) -> ProcessorSubscription | None:
    """A Stripe subscription object as livecore needs it; None without an id."""
    ref = stripe_id(obj.get("id"))
    if ref is None:
        return None
    raw = str(obj.get("status") or "")
    # Current API versions keep the period on the items; older ones on the subscription.
    period_end = unix_time(_first(obj.get("items")).get("current_period_end"))
    if period_end is None:
        period_end = unix_time(obj.get("current_period_end"))
    return ProcessorSubscription(
        ref, _STATUSES.get(raw), raw, obj.get("cancel_at_period_end") is True, period_end,
        _owner(obj.get("metadata")),
    )  # fmt: skip


def parse_invoice(invoice: dict[str, Any]) -> ProcessorInvoice | None:
    """A Stripe invoice object as livecore needs it; None when it is unusable."""
    invoice_id = stripe_id(invoice.get("id"))
    currency = invoice.get("currency")
    amount = invoice.get("amount_paid", 0)
    if (
        invoice_id is None or len(invoice_id) > 255
        or not (isinstance(currency, str) and len(currency) == 3 and currency.isascii()
                and currency.isalpha())
        or not isinstance(amount, int) or isinstance(amount, bool)
        or not 0 <= amount <= _MAX_AMOUNT_MINOR
    ):  # fmt: skip
        return None
    # Current API versions name the subscription under parent.subscription_details; older
    # ones at the top level (with its metadata under subscription_details).
    details = _dict(_dict(invoice.get("parent")).get("subscription_details"))
    subscription_ref = stripe_id(details.get("subscription")) or stripe_id(
        invoice.get("subscription")
    )
    metadata = details.get("metadata") or _dict(invoice.get("subscription_details")).get("metadata")
    period = _dict(_first(invoice.get("lines")).get("period"))
    # Current API versions no longer carry `charge`; its payments (when included) may.
    charge_ref = stripe_id(invoice.get("charge")) or stripe_id(
        _dict(_first(invoice.get("payments")).get("payment")).get("charge")
    )
    return ProcessorInvoice(
        invoice_id, subscription_ref, amount, currency.lower(), unix_time(period.get("start")),
        unix_time(period.get("end")), charge_ref, invoice_payment(invoice), _owner(metadata),
    )  # fmt: skip


def invoice_payment(invoice: dict[str, Any]) -> str | None:
    """The PaymentIntent that paid an invoice: on current API versions under
    `payments.data[].payment.payment_intent` (invoices no longer name a charge); refunds and
    disputes of the charge name it too."""
    payments = _dict(invoice.get("payments")).get("data")
    for paid in payments if isinstance(payments, list) else []:
        payment = _dict(_dict(paid).get("payment"))
        if payment.get("type") == "payment_intent":
            return stripe_id(payment.get("payment_intent"))
    return stripe_id(invoice.get("payment_intent"))  # older API versions


@dataclass(frozen=True, slots=True)
class DisputeFee:
    """A fee on one of a dispute's balance transactions (negative when given back)."""

    ref: str  # the balance transaction
    fee_minor: int
    currency: str


def dispute_fees(transactions: Any) -> list[DisputeFee]:
    """The fees on a dispute's balance transactions (Stripe's dispute fee when it opens, its
    return if won), ignoring any entry that is not a well-formed balance transaction."""
    fees: list[DisputeFee] = []
    for bt in transactions if isinstance(transactions, list) else []:
        ref = stripe_id(bt)
        fee = bt.get("fee") if isinstance(bt, dict) else None
        currency = bt.get("currency") if isinstance(bt, dict) else None
        if (
            ref is not None and len(ref) <= 255
            and isinstance(fee, int) and not isinstance(fee, bool) and abs(fee) < 10**12
            and isinstance(currency, str) and len(currency) == 3 and currency.isascii()
            and currency.isalpha()
        ):  # fmt: skip
            fees.append(DisputeFee(ref, fee, currency.lower()))
    return fees
