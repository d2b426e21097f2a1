"""Viewers' subscriptions to creators' tiers (store/tiers.py) and their paid invoices, as
stored.

A subscription's state comes from the processor (or the built-in test lane); `state_at` is
the time of the newest event applied, so an older event delivered late changes nothing, and
`canceled` is terminal. Imports nothing from livecore but the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from livecore.store.db import Connection, Database, UniqueViolation, unique_violation

SubscriptionStatus = Literal["incomplete", "active", "past_due", "canceled"]
SubscriptionProvider = Literal["test", "stripe"]

# Who is let in right now: paid up to a period end still ahead (or none known), or behind on
# a renewal but within its grace. A subscription canceled at period end is still `active`
# until then; a canceled one never is.
_ACCESS = (
    "((s.status = 'active' AND (s.current_period_end IS NULL OR s.current_period_end > now()))"
    " OR (s.status = 'past_due' AND s.grace_until > now()))"
)
_COLUMNS = (
    "s.id, s.tier_id, s.viewer_id, s.creator_id, s.provider, s.provider_ref, s.status,"
    " s.current_period_end, s.cancel_at_period_end, s.grace_until, s.state_at, s.created_at,"
    f" t.name AS tier_name, t.price_minor, t.currency, u.display_name AS creator_name,"
    f" {_ACCESS} AS access"
)
# `s` is the subscriptions table or a CTE of changed rows named s.
_JOIN = "JOIN subscription_tiers t ON t.id = s.tier_id JOIN users u ON u.id = s.creator_id"
_ONE_OPEN = "subscriptions_one_open"
# How a processor's newer news updates a stored subscription: `canceled` is final, an older
# event changes nothing, and grace starts when it falls behind (not at every failed retry).
_UPDATE = (
    "DO UPDATE SET status = EXCLUDED.status,"
    " current_period_end = coalesce(EXCLUDED.current_period_end,"
    " subscriptions.current_period_end),"
    " cancel_at_period_end = EXCLUDED.cancel_at_period_end,"
    " grace_until = CASE WHEN EXCLUDED.status <> 'past_due' THEN NULL"
    " WHEN subscriptions.status = 'past_due'"
    " THEN coalesce(subscriptions.grace_until, EXCLUDED.grace_until)"
    " ELSE EXCLUDED.grace_until END,"
    " state_at = EXCLUDED.state_at, updated_at = now()"
    " WHERE subscriptions.status <> 'canceled'"
    " AND (EXCLUDED.state_at > subscriptions.state_at"
    " OR (EXCLUDED.state_at = subscriptions.state_at AND EXCLUDED.status <> 'incomplete'))"
)
_CREATE_ONLY = "DO NOTHING"


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    tier_id: int
    viewer_id: int
    creator_id: int
    provider: SubscriptionProvider
    provider_ref: str | None
    status: SubscriptionStatus
    current_period_end: datetime | None
    cancel_at_period_end: bool
    grace_until: datetime | None
    state_at: datetime
    created_at: datetime
    tier_name: str
    price_minor: int
    currency: str
    creator_name: str
    access: bool  # lets its viewer in right now (as of the read)


@dataclass(frozen=True, slots=True)
class ProcessorState:
    """A subscription as the processor last described it, at `state_at`."""

    provider_ref: str
    tier_id: int
    viewer_id: int
    creator_id: int
    status: SubscriptionStatus
    current_period_end: datetime | None
    cancel_at_period_end: bool
    grace_until: datetime | None  # used only when the status is (newly) past_due
    state_at: datetime


@dataclass(frozen=True, slots=True)
class PaidInvoice:
    id: str  # the processor's invoice id
    subscription_id: int
    creator_id: int
    charge_ref: str | None
    payment_ref: str | None
    amount_minor: int
    platform_fee_minor: int
    currency: str
    period_start: datetime | None
    period_end: datetime | None


@dataclass(frozen=True, slots=True)
class Renewal:
    subscription: Subscription
    period_start: datetime
    number: int  # 1 for the first period


def _subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(
        row["id"], row["tier_id"], row["viewer_id"], row["creator_id"], row["provider"],
        row["provider_ref"], row["status"], row["current_period_end"],
        row["cancel_at_period_end"], row["grace_until"], row["state_at"], row["created_at"],
        row["tier_name"], row["price_minor"], row["currency"], row["creator_name"],
        bool(row["access"]),
    )  # fmt: skip


class Subscriptions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def owner_known(self, viewer_id: int, tier_id: int, creator_id: int) -> bool:
        """Whether the viewer exists and the tier exists and belongs to the creator."""
        return bool(
            await self._db.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM subscription_tiers t JOIN users v ON v.id = $1"
                " WHERE t.id = $2 AND t.creator_id = $3)",
                viewer_id,
                tier_id,
                creator_id,
            )
        )

    # -- reading subscriptions ------------------------------------------------------------------

    async def get(self, subscription_id: int) -> Subscription | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM subscriptions s {_JOIN} WHERE s.id = $1", subscription_id
        )
        return _subscription(row) if row else None

    async def by_ref(self, provider_ref: str) -> Subscription | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM subscriptions s {_JOIN} WHERE s.provider_ref = $1",
            provider_ref,
        )
        return _subscription(row) if row else None

    async def for_viewer(self, viewer_id: int, limit: int) -> list[Subscription]:
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM subscriptions s {_JOIN} WHERE s.viewer_id = $1"
            f" ORDER BY s.created_at DESC, s.id DESC LIMIT $2",
            viewer_id,
            limit,
        )
        return [_subscription(r) for r in rows]

    async def open_for(self, viewer_id: int, tier_id: int) -> Subscription | None:
        """The viewer's subscription to the tier that is not over, if any."""
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM subscriptions s {_JOIN} WHERE s.viewer_id = $1"
            f" AND s.tier_id = $2 AND s.status <> 'canceled'",
            viewer_id,
            tier_id,
        )
        return _subscription(row) if row else None

    async def has_access(self, viewer_id: int, creator_id: int) -> bool:
        """Whether any of the viewer's subscriptions to the creator's tiers lets them in now."""
        return bool(
            await self._db.pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM subscriptions s WHERE s.viewer_id = $1"
                f" AND s.creator_id = $2 AND {_ACCESS})",
                viewer_id,
                creator_id,
            )
        )

    async def lock_ref(self, provider_ref: str, conn: Connection) -> Subscription | None:
        """The subscription, locked until the caller's transaction ends."""
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM subscriptions s {_JOIN} WHERE s.provider_ref = $1"
            f" FOR UPDATE OF s",
            provider_ref,
        )
        return _subscription(row) if row else None

    # -- the test lane --------------------------------------------------------------------------

    async def create_test(
        self, viewer_id: int, tier_id: int, creator_id: int, conn: Connection
    ) -> Renewal:
        """An active test-lane subscription for its first month (in the caller's
        transaction); raises UniqueViolation when the viewer has one open for the tier."""
        with unique_violation():
            row = await conn.fetchrow(
                f"WITH s AS (INSERT INTO subscriptions (tier_id, viewer_id, creator_id, provider,"
                f" status, current_period_end, state_at) VALUES ($1, $2, $3, 'test', 'active',"
                f" now() + interval '1 month', now()) RETURNING *)"
                f" SELECT {_COLUMNS}, now() AS period_start FROM s {_JOIN}",
                tier_id,
                viewer_id,
                creator_id,
            )
        assert row is not None
        return Renewal(_subscription(row), row["period_start"], 1)

    async def set_test_cancel(
        self, subscription_id: int, viewer_id: int, cancel: bool
    ) -> Subscription | None:
        """Flip a test-lane subscription's cancel-at-period-end; None unless it is active."""
        row = await self._db.pool.fetchrow(
            f"WITH s AS (UPDATE subscriptions SET cancel_at_period_end = $3, state_at = now(),"
            f" updated_at = now() WHERE id = $1 AND viewer_id = $2 AND provider = 'test'"
            f" AND status = 'active' RETURNING *) SELECT {_COLUMNS} FROM s {_JOIN}",
            subscription_id,
            viewer_id,
            cancel,
        )
        return _subscription(row) if row else None

    async def end_due_test(self, limit: int) -> int:
        """End test-lane subscriptions canceled at a period end that has passed."""
        result = await self._db.pool.execute(
            "UPDATE subscriptions SET status = 'canceled', state_at = now(), updated_at = now()"
            " WHERE id IN (SELECT id FROM subscriptions WHERE provider = 'test'"
            " AND status = 'active' AND cancel_at_period_end AND current_period_end <= now()"
            " ORDER BY current_period_end LIMIT $1 FOR UPDATE SKIP LOCKED)",
            limit,
        )
        return int(result.split()[-1])

    async def due_test(self, limit: int) -> list[Subscription]:
        """Test-lane subscriptions whose period has ended and that renew."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM subscriptions s {_JOIN} WHERE s.provider = 'test'"
            f" AND s.status = 'active' AND NOT s.cancel_at_period_end"
            f" AND s.current_period_end <= now() ORDER BY s.current_period_end LIMIT $1",
            limit,
        )
        return [_subscription(r) for r in rows]

    async def renew_test(self, subscription_id: int, conn: Connection) -> Renewal | None:
        """Move a due test-lane subscription on by a month (in the caller's transaction);
        None when it is no longer due (another node renewed it, or it was canceled)."""
        # The new period starts when the old one ended, or now if the lane was not running
        # meanwhile: nobody pays for a gap in which they had no access.
        row = await conn.fetchrow(
            f"WITH d AS (SELECT id, greatest(current_period_end, now()) AS start"
            f" FROM subscriptions WHERE id = $1 AND provider = 'test' AND status = 'active'"
            f" AND NOT cancel_at_period_end AND current_period_end <= now() FOR UPDATE),"
            f" s AS (UPDATE subscriptions x SET current_period_end = d.start + interval '1 month',"
            f" state_at = now(), updated_at = now() FROM d WHERE x.id = d.id RETURNING x.*)"
            f" SELECT {_COLUMNS}, d.start AS period_start,"
            f" (SELECT count(*) FROM subscription_invoices i WHERE i.subscription_id = s.id)"
            f" + 1 AS number FROM s JOIN d ON d.id = s.id {_JOIN}",
            subscription_id,
        )
        if row is None:
            return None
        return Renewal(_subscription(row), row["period_start"], int(row["number"]))

    # -- the processor's state ------------------------------------------------------------------

    async def apply_processor(
        self, state: ProcessorState, conn: Connection | None = None, *, create_only: bool = False
    ) -> tuple[Subscription | None, bool]:
        """Insert or update a processor's subscription unless what is stored is newer or over
        (with `create_only`, never update: only make it if it is not stored yet).

        Returns (the subscription as changed, or None when nothing changed; whether it was a
        second open subscription of its viewer to the tier, stored as canceled). At equal
        times a status never falls back to `incomplete`: a subscription's creation and its
        activation are often stamped with the same second.
        """
        for _ in range(2):
            try:
                return await self._upsert(state, conn, create_only), False
            except UniqueViolation as exc:
                if exc.constraint != _ONE_OPEN:
                    raise
            # The first refusal may be a race with a concurrent insert of this very
            # subscription (ON CONFLICT arbitrates only provider_ref): once that has
            # committed, trying again takes the update path.
        # The viewer pays twice for one tier (two checkouts): the second is kept, but ended,
        # so that its invoices are still recorded (and can be refunded). Only ever inserted:
        # it must never end a stored subscription.
        ended = ProcessorState(
            state.provider_ref, state.tier_id, state.viewer_id, state.creator_id, "canceled",
            state.current_period_end, state.cancel_at_period_end, None, state.state_at,
        )  # fmt: skip
        return await self._upsert(ended, conn, True), True

    async def _upsert(
        self, state: ProcessorState, conn: Connection | None, create_only: bool
    ) -> Subscription | None:
        query = (
            f"WITH s AS (INSERT INTO subscriptions (tier_id, viewer_id, creator_id, provider,"
            f" provider_ref, status, current_period_end, cancel_at_period_end, grace_until,"
            f" state_at) VALUES ($1, $2, $3, 'stripe', $4, $5, $6, $7,"
            f" CASE WHEN $5 = 'past_due' THEN $8::timestamptz END, $9)"
            f" ON CONFLICT (provider_ref) {_CREATE_ONLY if create_only else _UPDATE}"
            f" RETURNING *) SELECT {_COLUMNS} FROM s {_JOIN}"
        )
        args = (
            state.tier_id, state.viewer_id, state.creator_id, state.provider_ref, state.status,
            state.current_period_end, state.cancel_at_period_end, state.grace_until,
            state.state_at,
        )  # fmt: skip
        with unique_violation():
            if conn is None:
                row = await self._db.pool.fetchrow(query, *args)
            else:
                # A savepoint: a refused insert must not abort the caller's transaction.
                async with conn.transaction():
                    row = await conn.fetchrow(query, *args)
        return _subscription(row) if row else None

    async def mark_paid(
        self, subscription_id: int, period_end: datetime | None, event_at: datetime,
        conn: Connection,
    ) -> None:  # fmt: skip
        """A period is paid: the paid-up time only grows, and unless the subscription is over
        or newer news is stored, it is active again with no grace."""
        await conn.execute(
            "UPDATE subscriptions SET current_period_end = greatest(current_period_end, $2),"
            " grace_until = CASE WHEN status <> 'canceled' AND state_at <= $3 THEN NULL"
            " ELSE grace_until END,"
            " status = CASE WHEN status <> 'canceled' AND state_at <= $3 THEN 'active'"
            " ELSE status END,"
            " state_at = greatest(state_at, $3), updated_at = now() WHERE id = $1",
            subscription_id,
            period_end,
            event_at,
        )

    async def mark_past_due(
        self, provider_ref: str, event_at: datetime, grace_until: datetime
    ) -> Subscription | None:
        """A renewal failed: past due, with grace from the first failure on (a retry failing
        again does not extend it). Only an active or past-due subscription, and only with
        news newer than what is stored; None when nothing changed."""
        row = await self._db.pool.fetchrow(
            f"WITH s AS (UPDATE subscriptions SET grace_until = CASE WHEN status = 'past_due'"
            f" THEN coalesce(grace_until, $3) ELSE $3 END, status = 'past_due', state_at = $2,"
            f" updated_at = now() WHERE provider_ref = $1 AND status IN ('active', 'past_due')"
            f" AND state_at <= $2 RETURNING *) SELECT {_COLUMNS} FROM s {_JOIN}",
            provider_ref,
            event_at,
            grace_until,
        )
        return _subscription(row) if row else None

    # -- invoices -------------------------------------------------------------------------------

    async def record_invoice(self, invoice: PaidInvoice, conn: Connection) -> bool:
        """Record a paid invoice in the caller's transaction; False when it is known already."""
        recorded = await conn.fetchval(
            "INSERT INTO subscription_invoices (id, subscription_id, creator_id, charge_ref,"
            " payment_ref, amount_minor, platform_fee_minor, currency, period_start, period_end)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
            " RETURNING id",
            invoice.id, invoice.subscription_id, invoice.creator_id, invoice.charge_ref,
            invoice.payment_ref, invoice.amount_minor, invoice.platform_fee_minor, invoice.currency,
            invoice.period_start, invoice.period_end,
        )  # fmt: skip
        return recorded is not None

    async def invoices(self, subscription_id: int) -> list[PaidInvoice]:
        rows = await self._db.pool.fetch(
            "SELECT id, subscription_id, creator_id, charge_ref, payment_ref, amount_minor,"
            " platform_fee_minor, currency, period_start, period_end FROM subscription_invoices"
            " WHERE subscription_id = $1 ORDER BY created_at, id",
            subscription_id,
        )
        return [PaidInvoice(*r.values()) for r in rows]
