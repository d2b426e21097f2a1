"""The processor's subscription and invoice objects driving each subscription's state.

State follows the processor's objects, never the order its events arrive in: each change
carries its event time and an older one changes nothing, `canceled` is final, and a paid
invoice is recorded and posted once, in one database transaction. The objects are read by
tips/stripe/objects.py; what cannot be placed is logged and ignored.

Imports store, config and this package's Stripe objects, access cache and invoice posting.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from livecore.config import TipsConfig
from livecore.store.db import Database
from livecore.store.subscriptions import PaidInvoice, ProcessorState, Subscription, Subscriptions
from livecore.tips.postings import split
from livecore.tips.stripe.objects import (
    Owner,
    ProcessorInvoice,
    ProcessorSubscription,
    unix_time,
)
from livecore.tips.subscription_access import SubscriberAccess
from livecore.tips.subscription_ledger import InvoicePosting

logger = logging.getLogger(__name__)


def _event_time(event_created: int) -> datetime:
    return unix_time(event_created) or datetime.now(UTC)


class ProcessorEvents:
    def __init__(
        self,
        db: Database,
        store: Subscriptions,
        access: SubscriberAccess,
        invoices: InvoicePosting,
        settings: TipsConfig,
    ) -> None:
        self._db = db
        self._store = store
        self._access = access
        self._invoices = invoices
        self._settings = settings

    async def apply_subscription(
        self, sub: ProcessorSubscription | None, event_created: int
    ) -> None:
        """Apply a processor's subscription (created, updated or deleted; None when its object
        named no id) as of the event's time: an older event than the state stored changes
        nothing, and an ended subscription stays ended. Objects livecore cannot place are
        logged and ignored."""
        if sub is None:
            logger.warning("subscription object without an id: ignored")
            return
        if sub.status is None:
            logger.warning("subscription %s: unknown status %r, ignored", sub.ref, sub.raw_status)
            return
        owner = await self._owner_of(sub.ref, sub.owner, await self._store.by_ref(sub.ref))
        if owner is None:
            return
        at = _event_time(event_created)
        state = ProcessorState(
            sub.ref, owner.tier_id, owner.viewer_id, owner.creator_id, sub.status,
            sub.period_end, sub.cancel_at_period_end, self._grace_from(at), at,
        )  # fmt: skip
        changed, duplicate = await self._store.apply_processor(state)
        self._report(sub.ref, duplicate)
        if changed is None:
            logger.info("subscription %s: stored state is newer or final; unchanged", sub.ref)
            return
        self._access.forget()
        logger.info("subscription %d (%s) is %s", changed.id, sub.ref, changed.status)

    async def apply_invoice_paid(self, inv: ProcessorInvoice | None, event_created: int) -> None:
        """A subscription's invoice was paid (None: its object had no usable id, amount or
        currency): record and post it once (nothing for a zero amount), and make the
        subscription active and paid up to the period's end, creating it from the invoice's
        metadata if its own event has not arrived yet."""
        if inv is None:
            logger.warning("invoice object without a usable id, amount or currency: ignored")
            return
        ref = inv.subscription_ref
        if ref is None:
            logger.info("invoice %s is not a subscription's: ignored", inv.id)
            return
        known = await self._store.by_ref(ref)
        owner = await self._owner_of(ref, inv.owner, known)
        if owner is None:
            return
        at = _event_time(event_created)
        posting, bps = None, 0
        if inv.amount_paid_minor > 0:
            posting = await self._invoices.prepare(inv.currency, owner.creator_id)
            agreed = inv.owner.fee_bps if inv.owner is not None else None
            bps = agreed if agreed is not None else await self._invoices.fee_bps(owner.creator_id)
        async with self._db.transaction() as conn:
            if known is None:
                state = ProcessorState(
                    ref, owner.tier_id, owner.viewer_id, owner.creator_id, "active",
                    inv.period_end, False, None, at,
                )  # fmt: skip
                # Made only if still missing: the subscription's own events, applied
                # meanwhile, know more than an invoice does.
                _, duplicate = await self._store.apply_processor(state, conn, create_only=True)
                self._report(ref, duplicate)
            sub = await self._store.lock_ref(ref, conn)
            if sub is None:  # cannot be: it was just stored, and rows are never deleted
                raise LookupError(ref)
            posted = False
            if posting is not None:
                fee = split(inv.amount_paid_minor, bps)[1]
                paid = PaidInvoice(
                    inv.id, sub.id, sub.creator_id, inv.charge_ref, inv.payment_ref,
                    inv.amount_paid_minor, fee, inv.currency, inv.period_start, inv.period_end,
                )  # fmt: skip
                posted = await self._invoices.post(conn, paid, posting)
            await self._store.mark_paid(sub.id, inv.period_end, at, conn)
        self._access.forget()
        logger.info(
            "invoice %s of subscription %d paid: %d %s%s", inv.id, sub.id,
            inv.amount_paid_minor, inv.currency, "" if posted else " (nothing posted)",
        )  # fmt: skip

    async def apply_invoice_failed(self, inv: ProcessorInvoice | None, event_created: int) -> None:
        """A renewal's payment failed (None: its invoice object was unusable): the
        subscription is past due and keeps access for the grace period from its first
        failure. A subscription never paid, ended, or unknown here is not changed."""
        if inv is None or inv.subscription_ref is None:
            logger.info("failed invoice without a subscription: ignored")
            return
        at = _event_time(event_created)
        changed = await self._store.mark_past_due(inv.subscription_ref, at, self._grace_from(at))
        if changed is None:
            logger.info(
                "subscription %s: payment of invoice %s failed; state unchanged",
                inv.subscription_ref, inv.id,
            )  # fmt: skip
            return
        self._access.forget()
        logger.info(
            "subscription %d past due until %s", changed.id,
            changed.grace_until.isoformat() if changed.grace_until else "-",
        )  # fmt: skip

    async def _owner_of(
        self, ref: str, owner: Owner | None, known: Subscription | None
    ) -> Owner | None:
        """Whose subscription `ref` is: as stored, else as its metadata says (when that names
        a real viewer and a tier of the named creator); None (logged) otherwise."""
        if known is not None:
            return Owner(known.viewer_id, known.tier_id, known.creator_id)
        if owner is None:
            logger.warning("subscription %s: no livecore metadata, ignored", ref)
            return None
        if not await self._store.owner_known(owner.viewer_id, owner.tier_id, owner.creator_id):
            logger.warning(
                "subscription %s: metadata names an unknown viewer %d, tier %d or creator %d;"
                " ignored", ref, owner.viewer_id, owner.tier_id, owner.creator_id,
            )  # fmt: skip
            return None
        return owner

    @staticmethod
    def _report(ref: str, duplicate: bool) -> None:
        if duplicate:
            logger.error(
                "subscription %s is a second open subscription of its viewer to one tier: kept"
                " as canceled; cancel and refund it at the processor", ref,
            )  # fmt: skip

    def _grace_from(self, at: datetime) -> datetime:
        return at + timedelta(days=self._settings.past_due_grace_days)
