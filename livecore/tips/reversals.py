"""Money that comes back out after a payment: refunds, disputes (chargebacks), and the
processor's fees on a charge.

Each acts on the state the processor reports, not on the order events arrive in: a refund
event carries the charge's total refunded so far, and only the part not yet posted is posted;
a closed dispute first makes sure its opening was posted. Every posting has an external
reference, so a repeated event posts nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from livecore.store.db import Connection, Database
from livecore.store.ledger import Entry, Ledger

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Charged:
    """A payment whose charge can be refunded or disputed: a tip or a subscription invoice."""

    table: Literal["tips", "subscription_invoices"]
    key: str  # the row's id
    creator_id: int
    amount_minor: int
    platform_fee_minor: int
    currency: str
    refunded_minor: int


@dataclass(frozen=True, slots=True)
class DisputeFee:
    """A fee on one of a dispute's balance transactions (negative when given back)."""

    ref: str  # the balance transaction
    fee_minor: int
    currency: str


def share(fee_minor: int, amount_minor: int, part_minor: int) -> int:
    """The platform's share of `part_minor` of a payment (the cumulative form keeps partial
    refunds adding up to exactly the whole fee)."""
    return part_minor * fee_minor // amount_minor


class Reversals:
    def __init__(self, db: Database, ledger: Ledger) -> None:
        self._db = db
        self._ledger = ledger

    async def _find(
        self, charge_ref: str, payment_ref: str | None, conn: Connection | None = None
    ) -> Charged | None:
        lock = " FOR UPDATE" if conn is not None else ""
        db = conn or self._db.pool
        row = await db.fetchrow(
            "SELECT id::text AS key, creator_id, amount_minor, platform_fee_minor, currency,"
            " refunded_minor FROM tips WHERE charge_ref = $1"
            " OR (provider_ref = $2 AND $2 IS NOT NULL)" + lock,
            charge_ref,
            payment_ref,
        )
        if row is not None:
            return Charged("tips", **dict(row))
        row = await db.fetchrow(
            "SELECT id AS key, creator_id, amount_minor, platform_fee_minor, currency,"
            " refunded_minor FROM subscription_invoices WHERE charge_ref = $1"
            " OR (payment_ref = $2 AND $2 IS NOT NULL)" + lock,
            charge_ref,
            payment_ref,
        )
        return Charged("subscription_invoices", **dict(row)) if row is not None else None

    async def _accounts(self, paid: Charged) -> tuple[int, int]:
        creator = await self._ledger.account("creator", paid.currency, paid.creator_id)
        revenue = await self._ledger.account("platform_revenue", paid.currency)
        return creator, revenue

    async def refund(
        self, charge_ref: str, payment_ref: str | None, refunded_total_minor: int
    ) -> int:
        """Post what a charge's refunds total beyond what is posted; returns that amount."""
        paid = await self._find(charge_ref, payment_ref)
        if paid is None:
            logger.info("refund of charge %s: not a livecore payment, ignored", charge_ref)
            return 0
        creator, revenue = await self._accounts(paid)
        refunds = await self._ledger.account("refunds", paid.currency)
        async with self._db.transaction() as conn:
            locked = await self._find(charge_ref, payment_ref, conn)
            assert locked is not None
            total = min(refunded_total_minor, locked.amount_minor)
            delta = total - locked.refunded_minor
            if delta <= 0:
                return 0  # an older or repeated event: that much is posted already
            fee = locked.platform_fee_minor
            fee_part = share(fee, locked.amount_minor, total) - share(
                fee, locked.amount_minor, locked.refunded_minor
            )
            entries = [
                Entry(creator, delta - fee_part, locked.currency),
                Entry(revenue, fee_part, locked.currency),
                Entry(refunds, -delta, locked.currency),
            ]
            await self._ledger.post(
                f"refund:{charge_ref}:{total}", "refund",
                [e for e in entries if e.amount_minor], conn=conn,
            )  # fmt: skip
            status = ", status = 'refunded'" if locked.table == "tips" else ""
            if total < locked.amount_minor:
                status = ""
            await conn.execute(
                f"UPDATE {locked.table} SET refunded_minor = $2{status} WHERE id::text = $1",
                locked.key,
                total,
            )
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
        paid = await self._find(charge_ref, payment_ref)
        if paid is None:
            logger.info("dispute %s of charge %s: not a livecore payment", dispute_id, charge_ref)
            return
        amount = min(amount_minor, paid.amount_minor)
        creator, revenue = await self._accounts(paid)
        disputes = await self._ledger.account("disputes", paid.currency)
        fee_part = share(paid.platform_fee_minor, paid.amount_minor, amount)
        withdrawn = [
            Entry(creator, amount - fee_part, paid.currency),
            Entry(revenue, fee_part, paid.currency),
            Entry(disputes, -amount, paid.currency),
        ]
        withdrawn = [e for e in withdrawn if e.amount_minor]
        fee_postings = [(f"dispute-fee:{f.ref}", await self._fee_entries(f.fee_minor, f.currency))
                        for f in fees if f.fee_minor]  # fmt: skip
        async with self._db.transaction() as conn:
            # A closed dispute stays closed: a late "created" event cannot reopen it.
            status = await conn.fetchval(
                "INSERT INTO disputes (id, charge_ref, amount_minor, currency, status)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET"
                " status = CASE WHEN disputes.status IN ('won', 'lost') THEN disputes.status"
                " ELSE EXCLUDED.status END, updated_at = now() RETURNING status",
                dispute_id, charge_ref, amount, currency, status,
            )  # fmt: skip
            # Whatever order the events come in, the opening is posted first and once.
            await self._ledger.post(f"dispute:{dispute_id}", "dispute", withdrawn, conn=conn)
            if status == "won":
                returned = [Entry(e.account_id, -e.amount_minor, e.currency) for e in withdrawn]
                await self._ledger.post(
                    f"dispute:{dispute_id}:won", "dispute_won", returned, conn=conn
                )
            for ref, entries in fee_postings:
                await self._ledger.post(ref, "processor_fee", entries, conn=conn)
            if paid.table == "tips":
                await conn.execute(
                    "UPDATE tips SET status = CASE WHEN $2 = 'won' THEN 'succeeded'"
                    " ELSE 'disputed' END, updated_at = now()"
                    " WHERE id::text = $1 AND status IN ('succeeded', 'disputed')",
                    paid.key,
                    status,
                )
        logger.info("dispute %s of charge %s: %s", dispute_id, charge_ref, status)

    async def fee(self, charge_ref: str, fee_minor: int, currency: str) -> None:
        """The processor's fee on a charge: an expense the platform bears."""
        if fee_minor > 0:
            entries = await self._fee_entries(fee_minor, currency)
            await self._ledger.post(f"fee:{charge_ref}", "processor_fee", entries)

    async def _fee_entries(self, fee_minor: int, currency: str) -> list[Entry]:
        """A processor fee (negative: one given back) against the processor's clearing."""
        fees = await self._ledger.account("processor_fees", currency)
        clearing = await self._ledger.account("processor_clearing", currency)
        return [Entry(fees, fee_minor, currency), Entry(clearing, -fee_minor, currency)]
