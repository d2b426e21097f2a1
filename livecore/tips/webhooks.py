"""Stripe webhooks: apply each verified event once, acting on the object's state.

Stripe delivers at least once and in any order. Each event id is recorded and marked done
only after its effects are committed, so a redelivery after a failure runs it again while a
duplicate of a finished event changes nothing. The handlers themselves are idempotent (every
ledger posting has an external reference) and compare states rather than trusting order.
Events arrive read by tips/stripe/events.py, one value per kind; a field it could not read
is refused (`need`) where it is used, so the checks run in the order below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, assert_never

from livecore.store.stripe_events import StripeEvents
from livecore.store.tips import Tip
from livecore.tips.batching import Batcher
from livecore.tips.reversals import Reversals
from livecore.tips.service import TipService
from livecore.tips.stripe.events import (
    APPLIED_TYPES,
    Applied,
    CardCharged,
    ChargeRefunded,
    DisputeChanged,
    Event,
    Ignored,
    InvoiceFailed,
    InvoicePaid,
    PaymentFailed,
    PaymentSucceeded,
    SubscriptionChanged,
    need,
)
from livecore.tips.stripe.objects import ProcessorInvoice, ProcessorSubscription

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

    @property
    def event_types(self) -> frozenset[str]:
        """The event types applied (any other is acknowledged and ignored): the events to
        enable on the Stripe webhook endpoint."""
        return APPLIED_TYPES

    async def handle(self, event: Event) -> Outcome:
        body = event.body
        if isinstance(body, Ignored):
            return "ignored"  # acknowledged: Stripe stops sending it
        created = need(event.created)  # a malformed time is refused before anything is recorded
        if isinstance(body, PaymentSucceeded) and await self._paid_at_once(event, body):
            return "processed"
        if not await self._begin.submit((event.id, event.type)):
            return "duplicate"
        applied = await self._apply(body, created)
        await self._done.submit(event.id)
        return "processed" if applied else "ignored"

    async def _apply(self, body: Applied, created: int) -> bool:
        """Act on one event's object; False when it was not livecore's to act on."""
        match body:
            case PaymentSucceeded():
                return await self._payment_succeeded(body)
            case CardCharged():
                return await self._charge_succeeded(body)
            case PaymentFailed():
                return await self._payment_failed(body)
            case ChargeRefunded():
                return await self._charge_refunded(body)
            case DisputeChanged():
                return await self._dispute(body)
            case SubscriptionChanged():
                return await self._subscription(body, created)
            case InvoicePaid():
                return await self._invoice_paid(body, created)
            case InvoiceFailed():
                return await self._invoice_failed(body, created)
            case _:
                assert_never(body)

    async def _paid_at_once(self, event: Event, intent: PaymentSucceeded) -> bool:
        """The common case of a tip burst, in two round trips: read the tip, then record the
        event, settle and post in one statement. False when the event is not new (or not a
        plain tip payment): the general path then answers it."""
        tip = await self._tips.get(intent.tip_id) if intent.tip_id is not None else None
        if tip is None or not _matches(intent, tip) or tip.provider != "stripe":
            return False
        settled = await self._tips.settle_event(
            tip, need(intent.payment_ref), intent.charge_ref, event.id, event.type
        )
        if settled.new_event:
            self._on_paid()
        return settled.new_event

    async def _close_events(self, event_ids: Sequence[str]) -> list[None]:
        await self._events.done_many(event_ids)
        return [None] * len(event_ids)

    async def _payment_succeeded(self, intent: PaymentSucceeded) -> bool:
        if intent.tip_id is None:
            return False  # not a tip (e.g. an invoice's payment)
        tip = await self._tips.get(intent.tip_id)
        if tip is None or not _matches(intent, tip):
            logger.error(
                "payment %s does not match tip %s: ignored", intent.payment_ref, intent.tip_id
            )
            return False
        tip = await self._tips.paid_by_processor(tip)
        if tip is None:
            return False
        await self._tips.settle(intent.tip_id, need(intent.payment_ref), intent.charge_ref, tip)
        self._on_paid()
        return True

    async def _charge_succeeded(self, charge: CardCharged) -> bool:
        # Which card paid: per-card limits count tips paid in the browser too.
        if charge.fingerprint is None or charge.payment_ref is None:
            return False
        await self._tips.record_card(charge.payment_ref, charge.fingerprint)
        return True

    async def _payment_failed(self, intent: PaymentFailed) -> bool:
        if intent.tip_id is None:
            return False
        # Only a pending tip fails: a late failure never undoes a success.
        return await self._tips.fail(intent.tip_id, intent.reason) is not None

    async def _charge_refunded(self, charge: ChargeRefunded) -> bool:
        refunded = await self._reversals.refund(
            need(charge.charge_ref), charge.payment_ref, need(charge.refunded_total_minor)
        )
        return refunded > 0

    async def _dispute(self, dispute: DisputeChanged) -> bool:
        if dispute.charge_ref is None:
            return False
        await self._reversals.dispute(
            need(dispute.dispute_ref), dispute.charge_ref, dispute.payment_ref,
            need(dispute.amount_minor), need(dispute.currency), dispute.status, dispute.fees,
        )  # fmt: skip
        return True

    async def _subscription(self, changed: SubscriptionChanged, created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_subscription(changed.subscription, created)
        return True

    async def _invoice_paid(self, paid: InvoicePaid, created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_invoice_paid(paid.invoice, created)
        self._on_paid()
        return True

    async def _invoice_failed(self, failed: InvoiceFailed, created: int) -> bool:
        if self._subscriptions is None:
            return False
        await self._subscriptions.apply_invoice_failed(failed.invoice, created)
        return True


def _matches(intent: PaymentSucceeded, tip: Tip) -> bool:
    return (intent.amount_minor, intent.currency) == (tip.amount_minor, tip.currency)
