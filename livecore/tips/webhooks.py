"""Stripe webhooks: verify the signature, apply each event once, act on the object's state.

Stripe delivers at least once and in any order. Each event id is recorded and marked done
only after its effects are committed, so a redelivery after a failure runs it again while a
duplicate of a finished event changes nothing. The handlers themselves are idempotent (every
ledger posting has an external reference) and compare states rather than trusting order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from livecore.store.stripe_events import StripeEvents
from livecore.store.tips import Tip
from livecore.tips.batching import Batcher
from livecore.tips.reversals import Reversals
from livecore.tips.service import TipService
from livecore.tips.stripe import events as wire
from livecore.tips.stripe.objects import (
    ProcessorInvoice,
    ProcessorSubscription,
    dispute_fees,
    parse_invoice,
    parse_subscription,
    stripe_id,
)

logger = logging.getLogger(__name__)

Outcome = Literal["processed", "duplicate", "ignored"]


class SubscriptionEvents(Protocol):
    async def apply_subscription(
        self, sub: ProcessorSubscription | None, event_created: int
    ) -> None: ...
    async def apply_invoice_paid(
        self, inv: ProcessorInvoice | None, event_created: int
    ) -> None: ...
    async def apply_invoice_failed(
        self, inv: ProcessorInvoice | None, event_created: int
    ) -> None: ...


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
        wire.created(event)  # a malformed time is refused before anything is recorded
        if event["type"] == "payment_intent.succeeded" and await self._paid_at_once(event):
            return "processed"
        if not await self._begin.submit((event["id"], event["type"])):
            return "duplicate"
        created = wire.created(event)
        applied = await handler(event["data"]["object"], created)
        await self._done.submit(event["id"])
        return "processed" if applied else "ignored"

    async def _paid_at_once(self, event: dict[str, Any]) -> bool:
        """The common case of a tip burst, in two round trips: read the tip, then record the
        event, settle and post in one statement. False when the event is not new (or not a
        plain tip payment): the general path then answers it."""
        intent = event["data"]["object"]
        tip_id = wire.tip_id(intent)
        tip = await self._tips.get(tip_id) if tip_id is not None else None
        if tip is None or not _matches(intent, tip) or tip.provider != "stripe":
            return False
        settled = await self._tips.settle_event(
            tip, wire.required_id(intent, "id"), stripe_id(intent.get("latest_charge")),
            event["id"], event["type"],
        )  # fmt: skip
        if settled.new_event:
            self._on_paid()
        return settled.new_event

    async def _close_events(self, event_ids: Sequence[str]) -> list[None]:
        await self._events.done_many(event_ids)
        return [None] * len(event_ids)

    async def _payment_succeeded(self, intent: dict[str, Any], created: int) -> bool:
        tip_id = wire.tip_id(intent)
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
        await self._tips.settle(tip_id, wire.required_id(intent, "id"), charge_ref, tip)
        self._on_paid()
        return True

    async def _charge_succeeded(self, charge: dict[str, Any], created: int) -> bool:
        # Which card paid: per-card limits count tips paid in the browser too.
        card = wire.fields(wire.fields(charge.get("payment_method_details")).get("card"))
        fingerprint = stripe_id(card.get("fingerprint"))  # the same printable, bounded shape
        payment_ref = stripe_id(charge.get("payment_intent"))
        if fingerprint is None or payment_ref is None:
            return False
        await self._tips.record_card(payment_ref, fingerprint)
        return True

    async def _payment_failed(self, intent: dict[str, Any], created: int) -> bool:
        tip_id = wire.tip_id(intent)
        if tip_id is None:
            return False
        error = wire.fields(intent.get("last_payment_error"))
        reason = wire.free_text(error.get("message") or intent.get("cancellation_reason"), "failed")
        # Only a pending tip fails: a late failure never undoes a success.
        return await self._tips.fail(tip_id, reason) is not None

    async def _charge_refunded(self, charge: dict[str, Any], created: int) -> bool:
        refunded = await self._reversals.refund(
            wire.required_id(charge, "id"), stripe_id(charge.get("payment_intent")),
            wire.amount(charge, "amount_refunded", default=0),
        )  # fmt: skip
        return refunded > 0

    async def _dispute(self, dispute: dict[str, Any], created: int) -> bool:
        charge_ref = stripe_id(dispute.get("charge"))
        if charge_ref is None:
            return False
        await self._reversals.dispute(
            wire.required_id(dispute, "id"), charge_ref,
            stripe_id(dispute.get("payment_intent")), wire.amount(dispute, "amount"),
            wire.currency(dispute, "currency"), wire.free_text(dispute.get("status"), ""),
            dispute_fees(dispute.get("balance_transactions")),
        )  # fmt: skip
        return True

    async def _subscription(self, obj: dict[str, Any], created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_subscription(parse_subscription(obj), created)
        return True

    async def _invoice_paid(self, invoice: dict[str, Any], created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_invoice_paid(parse_invoice(invoice), created)
        self._on_paid()
        return True

    async def _invoice_failed(self, invoice: dict[str, Any], created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_invoice_failed(parse_invoice(invoice), created)
        return True


def _matches(intent: dict[str, Any], tip: Tip) -> bool:
    return (intent.get("amount"), intent.get("currency")) == (tip.amount_minor, tip.currency)
