"""Stripe webhooks: verify the signature, apply each event once, act on the object's state.

Stripe delivers at least once and in any order. Each event id is recorded and marked done
only after its effects are committed, so a redelivery after a failure runs it again while a
duplicate of a finished event changes nothing. The handlers themselves are idempotent (every
ledger posting has an external reference) and compare states rather than trusting order.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import stripe

from livecore.ids import BIGINT_MAX, parse_int
from livecore.store.stripe_events import StripeEvents
from livecore.store.tips import Tip
from livecore.tips.batching import Batcher
from livecore.tips.reversals import DisputeFee, Reversals
from livecore.tips.service import TipService
from livecore.tips.subscriptions import stripe_id

logger = logging.getLogger(__name__)

Outcome = Literal["processed", "duplicate", "ignored"]


class WebhookRefused(Exception):
    """Not a genuine, fresh Stripe event: answered 400 and nothing changes."""


class MalformedEvent(WebhookRefused):
    """A signed event with a field livecore cannot read (`created: "abc"`, an amount that is
    not a whole number): answered 400 before anything changes, so a fixed release can apply
    it when Stripe retries or the operator resends it."""


class SubscriptionEvents(Protocol):
    async def apply_subscription(self, obj: dict[str, Any], event_created: int) -> None: ...
    async def apply_invoice_paid(self, invoice: dict[str, Any], event_created: int) -> None: ...
    async def apply_invoice_failed(self, invoice: dict[str, Any], event_created: int) -> None: ...


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


class WebhookHandler:
    def __init__(
        self,
        events: StripeEvents,
        tips: TipService,
        reversals: Reversals,
        subscriptions: SubscriptionEvents | None = None,
        on_paid: Callable[[], None] | None = None,
    ) -> None:
        # A burst of webhooks records and closes its events in batches (one statement each).
        self._begin: Batcher[tuple[str, str], bool] = Batcher(events.begin_many)
        self._done: Batcher[str, None] = Batcher(self._close_events)
        self._tips = tips
        self._events = events
        self._reversals = reversals
        self._subscriptions = subscriptions
        # Called after a payment is recorded: its processing fee is read and posted later
        # (livecore/tips/fees.py), so a webhook never waits for a second call to Stripe.
        self._on_paid = on_paid or (lambda: None)
        self._handlers: Mapping[str, Callable[[dict[str, Any], int], Awaitable[bool]]] = {
            "payment_intent.succeeded": self._payment_succeeded,
            "charge.succeeded": self._charge_succeeded,
            "payment_intent.payment_failed": self._payment_failed,
            "payment_intent.canceled": self._payment_failed,
            "charge.refunded": self._charge_refunded,
            "charge.dispute.created": self._dispute,
            "charge.dispute.updated": self._dispute,
            "charge.dispute.closed": self._dispute,
            "customer.subscription.created": self._subscription,
            "customer.subscription.updated": self._subscription,
            "customer.subscription.deleted": self._subscription,
            "invoice.paid": self._invoice_paid,
            "invoice.payment_failed": self._invoice_failed,
        }

    @property
    def event_types(self) -> frozenset[str]:
        """The event types applied (any other is acknowledged and ignored): the events to
        enable on the Stripe webhook endpoint."""
        return frozenset(self._handlers)

    async def handle(self, event: dict[str, Any]) -> Outcome:
        handler = self._handlers.get(event["type"])
        if handler is None:
            return "ignored"  # acknowledged: Stripe stops sending it
        _created(event)  # a malformed time is refused before anything is recorded
        if event["type"] == "payment_intent.succeeded" and await self._paid_at_once(event):
            return "processed"
        if not await self._begin.submit((event["id"], event["type"])):
            return "duplicate"
        created = _created(event)
        applied = await handler(event["data"]["object"], created)
        await self._done.submit(event["id"])
        return "processed" if applied else "ignored"

    async def _paid_at_once(self, event: dict[str, Any]) -> bool:
        """The common case of a tip burst, in two round trips: read the tip, then record the
        event, settle and post in one statement. False when the event is not new (or not a
        plain tip payment): the general path then answers it."""
        intent = event["data"]["object"]
        tip_id = _tip_id(intent)
        tip = await self._tips.get(tip_id) if tip_id is not None else None
        if tip is None or not _matches(intent, tip) or tip.provider != "stripe":
            return False
        settled = await self._tips.settle_event(
            tip, _required_id(intent, "id"), stripe_id(intent.get("latest_charge")),
            event["id"], event["type"],
        )  # fmt: skip
        if settled.new_event:
            self._on_paid()
        return settled.new_event

    async def _close_events(self, event_ids: Sequence[str]) -> list[None]:
        await self._events.done_many(event_ids)
        return [None] * len(event_ids)

    async def _payment_succeeded(self, intent: dict[str, Any], created: int) -> bool:
        tip_id = _tip_id(intent)
        if tip_id is None:
            return False  # not a tip (e.g. an invoice's payment)
        tip = await self._tips.get(tip_id)
        if tip is None or not _matches(intent, tip):
            logger.error("payment %s does not match tip %s: ignored", intent.get("id"), tip_id)
            return False
        tip = await self._tips.paid_by_processor(tip)
        if tip is None:
            return False
        charge_ref = stripe_id(intent.get("latest_charge"))
        await self._tips.settle(tip_id, _required_id(intent, "id"), charge_ref, tip)
        self._on_paid()
        return True

    async def _charge_succeeded(self, charge: dict[str, Any], created: int) -> bool:
        # Which card paid: per-card limits count tips paid in the browser too.
        card = _object(_object(charge.get("payment_method_details")).get("card"))
        fingerprint = stripe_id(card.get("fingerprint"))  # the same printable, bounded shape
        payment_ref = stripe_id(charge.get("payment_intent"))
        if fingerprint is None or payment_ref is None:
            return False
        await self._tips.record_card(payment_ref, fingerprint)
        return True

    async def _payment_failed(self, intent: dict[str, Any], created: int) -> bool:
        tip_id = _tip_id(intent)
        if tip_id is None:
            return False
        error = _object(intent.get("last_payment_error"))
        reason = _text(error.get("message") or intent.get("cancellation_reason"), "failed")
        # Only a pending tip fails: a late failure never undoes a success.
        return await self._tips.fail(tip_id, reason) is not None

    async def _charge_refunded(self, charge: dict[str, Any], created: int) -> bool:
        refunded = await self._reversals.refund(
            _required_id(charge, "id"), stripe_id(charge.get("payment_intent")),
            _amount(charge, "amount_refunded", default=0),
        )  # fmt: skip
        return refunded > 0

    async def _dispute(self, dispute: dict[str, Any], created: int) -> bool:
        charge_ref = stripe_id(dispute.get("charge"))
        if charge_ref is None:
            return False
        await self._reversals.dispute(
            _required_id(dispute, "id"), charge_ref, stripe_id(dispute.get("payment_intent")),
            _amount(dispute, "amount"), _currency(dispute, "currency"),
            _text(dispute.get("status"), ""), _dispute_fees(dispute.get("balance_transactions")),
        )  # fmt: skip
        return True

    async def _subscription(self, obj: dict[str, Any], created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_subscription(obj, created)
        return True

    async def _invoice_paid(self, invoice: dict[str, Any], created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_invoice_paid(invoice, created)
        self._on_paid()
        return True

    async def _invoice_failed(self, invoice: dict[str, Any], created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_invoice_failed(invoice, created)
        return True


def _matches(intent: dict[str, Any], tip: Tip) -> bool:
    return (intent.get("amount"), intent.get("currency")) == (tip.amount_minor, tip.currency)


def _tip_id(intent: dict[str, Any]) -> int | None:
    """The tip a PaymentIntent pays; None when its metadata names none (not a tip of ours:
    another product on the same Stripe account, or a `tip_id` that is no id, like "²")."""
    return parse_int(_object(intent.get("metadata")).get("tip_id"), minimum=1)


# -- reading an event's fields: a field that is present but unreadable is a MalformedEvent ----

MAX_AMOUNT_MINOR = 10**12  # far beyond any one payment; sums of them stay within bigint


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _created(event: dict[str, Any]) -> int:
    value = event.get("created")
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= BIGINT_MAX:
        raise MalformedEvent("event created is not a Unix time")
    return value


def _required_id(obj: dict[str, Any], name: str) -> str:
    value = stripe_id(obj.get(name))
    if value is None:
        raise MalformedEvent(f"object {name} is not a Stripe id")
    return value


def _amount(obj: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = obj.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT_MINOR:
        raise MalformedEvent(f"object {name} is not an amount in minor units")
    return value


def _currency(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        raise MalformedEvent(f"object {name} is not a currency code")
    return value.lower()


def _text(value: Any, default: str) -> str:
    """Free text from Stripe (a decline message, a status), as PostgreSQL can store it."""
    if value is None or value == "":
        return default
    text = value if isinstance(value, str) else str(value)
    # No NUL (PostgreSQL text cannot hold it), no lone surrogates (they are not UTF-8).
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:500]


def _dispute_fees(transactions: Any) -> list[DisputeFee]:
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
