"""Money that comes back out after a payment: refunds, disputes (chargebacks), and the
processor's fees on a charge.

Each acts on the state the processor reports, not on the order events arrive in: a refund
event carries the charge's total refunded so far, and only the part not yet posted is posted;
a closed dispute first makes sure its opening was posted. Every posting has an external
reference, so a repeated event posts nothing. The entries are postings.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from livecore.store.charges import Charges
from livecore.store.db import Database
from livecore.store.ledger import Ledger
from livecore.tips.postings import Posting, post, prepare
from livecore.tips.stripe.objects import DisputeFee

logger = logging.getLogger(__name__)


def share(fee_minor: int, amount_minor: int, part_minor: int) -> int:
    """The platform's share of `part_minor` of a payment (the cumulative form keeps partial
    refunds adding up to exactly the whole fee)."""
    return part_minor * fee_minor // amount_minor


class Reversals:
    def __init__(self, db: Database, ledger: Ledger) -> None:
        self._db = db
        self._ledger = ledger
        self._charges = Charges(db)

    async def refund(
        self, charge_ref: str, payment_ref: str | None, refunded_total_minor: int
    ) -> int:
        """Post what a charge's refunds total beyond what is posted; returns that amount."""
        paid = await self._charges.find(charge_ref, payment_ref)
        if paid is None:
            logger.info("refund of charge %s: not a livecore payment, ignored", charge_ref)
            return 0
        refund = await prepare(self._ledger, "refund", paid.currency, paid.creator_id)
        async with self._db.transaction() as conn:
            locked = await self._charges.find(charge_ref, payment_ref, conn)
            assert locked is not None
            total = min(refunded_total_minor, locked.amount_minor)
            delta = total - locked.refunded_minor
            if delta <= 0:
                return 0  # an older or repeated event: that much is posted already
            fee = locked.platform_fee_minor
            fee_part = share(fee, locked.amount_minor, total) - share(
                fee, locked.amount_minor, locked.refunded_minor
            )
            await post(self._ledger, refund, f"refund:{charge_ref}:{total}", delta, fee_part,
                       conn=conn)  # fmt: skip
            await self._charges.set_refunded(locked, total, conn)
        logger.info("charge %s refunded %d %s more", charge_ref, delta, paid.currency)
        return delta

    async def dispute(
        self, dispute_id: str, charge_ref: str, payment_ref: str | None, amount_minor: int,
        currency: str, status: str, fees: Sequence[DisputeFee] = (),
    ) -> None:  # fmt: skip
        """A dispute opened or changed: the disputed money leaves the creator's balance (and
        the platform's share) when it opens, and comes back if the dispute is won. The
        processor's dispute fees (and their return) are the platform's expense, each posted
        once by the balance transaction that carries it."""
        paid = await self._charges.find(charge_ref, payment_ref)
        if paid is None:
            logger.info("dispute %s of charge %s: not a livecore payment", dispute_id, charge_ref)
            return
        amount = min(amount_minor, paid.amount_minor)
        fee_part = share(paid.platform_fee_minor, paid.amount_minor, amount)
        opened = await prepare(self._ledger, "dispute", paid.currency, paid.creator_id)
        won = await prepare(self._ledger, "dispute_won", paid.currency, paid.creator_id)
        fee_postings = [(f"dispute-fee:{f.ref}", f.fee_minor, await self._fee(f.currency))
                        for f in fees if f.fee_minor]  # fmt: skip
        async with self._db.transaction() as conn:
            status = await self._charges.record_dispute(
                dispute_id, charge_ref, amount, currency, status, conn
            )
            # Whatever order the events come in, the opening is posted first and once.
            await post(self._ledger, opened, f"dispute:{dispute_id}", amount, fee_part, conn)
            if status == "won":
                await post(self._ledger, won, f"dispute:{dispute_id}:won", amount, fee_part, conn)
            for ref, fee_minor, posting in fee_postings:
                await post(self._ledger, posting, ref, fee_minor, conn=conn)
            await self._charges.set_tip_disputed(paid, status, conn)
        logger.info("dispute %s of charge %s: %s", dispute_id, charge_ref, status)

    async def fee(self, charge_ref: str, fee_minor: int, currency: str) -> None:
        """The processor's fee on a charge: an expense the platform bears."""
        if fee_minor > 0:
            await post(self._ledger, await self._fee(currency), f"fee:{charge_ref}", fee_minor)

    async def _fee(self, currency: str) -> Posting:
        """A processor fee (negative: one given back) against the processor's clearing."""
        return await prepare(self._ledger, "processor_fee", currency)
