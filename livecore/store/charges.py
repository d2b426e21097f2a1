"""Payments as charges at the processor: tips and subscription invoices found by their charge
(to refund or dispute them), disputes as the processor reports them, and the payments whose
processing fee is not posted yet.

The ledger postings these changes go with are the caller's (livecore/tips/reversals.py and
livecore/tips/fees.py), made in the same transaction through `conn`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from livecore.store.db import Connection, Database

ChargeTable = Literal["tips", "subscription_invoices"]

# Payments (tips and subscription invoices) paid through the processor whose fee is due.
_FEE_DUE = """
    SELECT 'tips' AS source, id::text AS key, provider_ref AS payment FROM tips
    WHERE fee_recorded_at IS NULL AND provider = 'stripe' AND provider_ref IS NOT NULL
      AND status <> 'pending' AND status <> 'failed'
    UNION ALL
    SELECT 'subscription_invoices', id, payment_ref FROM subscription_invoices
    WHERE fee_recorded_at IS NULL AND payment_ref IS NOT NULL
    LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class Charged:
    """A payment whose charge can be refunded or disputed: a tip or a subscription invoice."""

    table: ChargeTable
    key: str  # the row's id
    creator_id: int
    amount_minor: int
    platform_fee_minor: int
    currency: str
    refunded_minor: int


@dataclass(frozen=True, slots=True)
class FeeDue:
    """A payment through the processor whose processing fee is not posted yet."""

    table: ChargeTable
    key: str
    payment_ref: str


class Charges:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(
        self, charge_ref: str, payment_ref: str | None, conn: Connection | None = None
    ) -> Charged | None:
        """The tip or invoice a charge (or its PaymentIntent) paid; locked until the caller's
        transaction ends when `conn` is given."""
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

    async def set_refunded(self, paid: Charged, total_minor: int, conn: Connection) -> None:
        """Record the charge's refunded total; a tip refunded in full is `refunded`."""
        status = ", status = 'refunded'" if paid.table == "tips" else ""
        if total_minor < paid.amount_minor:
            status = ""
        await conn.execute(
            f"UPDATE {paid.table} SET refunded_minor = $2{status} WHERE id::text = $1",
            paid.key,
            total_minor,
        )

    async def record_dispute(
        self, dispute_id: str, charge_ref: str, amount_minor: int, currency: str, status: str,
        conn: Connection,
    ) -> str:  # fmt: skip
        """Store a dispute's state; returns its status as stored (a closed dispute stays
        closed: a late "created" event cannot reopen it)."""
        stored = await conn.fetchval(
            "INSERT INTO disputes (id, charge_ref, amount_minor, currency, status)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET"
            " status = CASE WHEN disputes.status IN ('won', 'lost') THEN disputes.status"
            " ELSE EXCLUDED.status END, updated_at = now() RETURNING status",
            dispute_id, charge_ref, amount_minor, currency, status,
        )  # fmt: skip
        return str(stored)

    async def set_tip_disputed(self, paid: Charged, status: str, conn: Connection) -> None:
        """A disputed tip is `disputed`, and `succeeded` again once the dispute is won."""
        if paid.table != "tips":
            return
        await conn.execute(
            "UPDATE tips SET status = CASE WHEN $2 = 'won' THEN 'succeeded'"
            " ELSE 'disputed' END, updated_at = now()"
            " WHERE id::text = $1 AND status IN ('succeeded', 'disputed')",
            paid.key,
            status,
        )

    async def fee_due(self, limit: int) -> list[FeeDue]:
        rows = await self._db.pool.fetch(_FEE_DUE, limit)
        return [FeeDue(r["source"], r["key"], r["payment"]) for r in rows]

    async def fee_recorded(self, due: FeeDue, charge_ref: str | None) -> None:
        """The payment's fee is posted (or will never be readable): stop asking."""
        await self._db.pool.execute(
            f"UPDATE {due.table} SET fee_recorded_at = now(),"
            f" charge_ref = coalesce(charge_ref, $2) WHERE id::text = $1",
            due.key,
            charge_ref,
        )
