"""Tips as stored: created once per (viewer, Idempotency-Key), settled once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from livecore.store.db import Connection, Database
from livecore.store.errors import StatementRefused
from livecore.store.ledger import Entry

TipStatus = Literal["pending", "succeeded", "failed", "refunded", "disputed"]
Provider = Literal["test", "stripe", "manual"]

_COLUMNS = (
    "id, stream_id, viewer_id, creator_id, amount_minor, currency, message, provider,"
    " provider_ref, idempotency_key, status, created_at, platform_fee_minor, charge_ref,"
    " refunded_minor, failure, open_calls"
)

_QUALIFIED = ", ".join(f"tips.{c.strip()}" for c in _COLUMNS.split(","))


@dataclass(frozen=True, slots=True)
class Tip:
    id: int
    stream_id: int
    viewer_id: int
    creator_id: int
    amount_minor: int
    currency: str
    message: str
    provider: Provider
    provider_ref: str | None
    idempotency_key: str
    status: TipStatus
    created_at: datetime
    platform_fee_minor: int
    charge_ref: str | None
    refunded_minor: int
    failure: str | None
    # Requests to the processor that may have reached it with no answer known
    # (see the tip_open_calls migration).
    open_calls: int


def _tip(row: asyncpg.Record) -> Tip:
    return Tip(*(row[c.strip()] for c in _COLUMNS.split(",")))


@dataclass(frozen=True, slots=True)
class Settlement:
    """A tip's payment succeeded: flip it and post these entries (none: nothing to post)."""

    tip_id: int
    provider: Provider
    provider_ref: str
    charge_ref: str | None
    kind: str
    entries: Sequence[Entry]
    # The processor's event reporting the payment: applied only if new, recorded with it.
    event_id: str | None = None
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    tip: Tip | None  # None: it was not pending (settled already, or in another lane)
    new_event: bool  # its event was recorded now (False: none given, or seen before)


@dataclass(frozen=True, slots=True)
class VelocityLimits:
    """How much one viewer, and one card, may tip: failed tips do not count."""

    per_minute: int  # tips a viewer sends in a minute
    daily_minor: int  # minor units a viewer sends in a day (any currency)
    card_per_hour: int  # tips one card pays in an hour, across viewers


class LimitReached(Exception):
    """A new tip would go beyond one of the velocity limits."""

    def __init__(self, which: Literal["minute", "day", "card"]) -> None:
        super().__init__(which)
        self.which = which


async def _check_limits(
    conn: Connection, viewer_id: int, amount_minor: int, card: str | None, limits: VelocityLimits,
) -> None:  # fmt: skip
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE created_at > now() - interval '1 minute') AS minute,"
        " coalesce(sum(amount_minor), 0) AS day FROM tips WHERE viewer_id = $1"
        " AND created_at > now() - interval '1 day' AND status <> 'failed'",
        viewer_id,
    )
    assert row is not None
    if row["minute"] >= limits.per_minute:
        raise LimitReached("minute")
    if row["day"] + amount_minor > limits.daily_minor:
        raise LimitReached("day")
    if card is None:
        return
    paid = await conn.fetchval(
        "SELECT count(*) FROM tips WHERE card_fingerprint = $1"
        " AND created_at > now() - interval '1 hour' AND status <> 'failed'",
        card,
    )
    if paid >= limits.card_per_hour:
        raise LimitReached("card")


class Tips:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def by_key(self, viewer_id: int, idempotency_key: str) -> Tip | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM tips WHERE viewer_id = $1 AND idempotency_key = $2",
            viewer_id,
            idempotency_key,
        )
        return _tip(row) if row else None

    async def create(
        self, stream_id: int, viewer_id: int, creator_id: int, amount_minor: int,
        currency: str, message: str, provider: Provider, idempotency_key: str,
        platform_fee_minor: int = 0, *, limits: VelocityLimits | None = None,
        card_fingerprint: str | None = None,
    ) -> tuple[Tip, bool]:  # fmt: skip
        """The tip for this (viewer, key): (tip, True) when made now, (existing, False) else.

        With `limits`, a new tip is made only within them, or LimitReached is raised: the
        counts and the insert are one transaction holding a lock on the viewer (and on the
        card), so tips racing each other cannot all pass a check made before any was stored.
        An existing tip is returned whatever the limits say (a retry is no new tip).
        """
        async with self._db.transaction() as conn:
            if limits is not None:
                # Viewer first, then card: every tip takes them in this order (no deadlock).
                lock = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
                await conn.execute(lock, f"tip-viewer:{viewer_id}")
                if card_fingerprint is not None:
                    await conn.execute(lock, f"tip-card:{card_fingerprint}")
            existing = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM tips WHERE viewer_id = $1 AND idempotency_key = $2",
                viewer_id,
                idempotency_key,
            )
            if existing is not None:
                return _tip(existing), False
            if limits is not None:
                await _check_limits(conn, viewer_id, amount_minor, card_fingerprint, limits)
            row = await conn.fetchrow(
                f"INSERT INTO tips (stream_id, viewer_id, creator_id, amount_minor, currency,"
                f" message, provider, idempotency_key, platform_fee_minor, card_fingerprint)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                f" ON CONFLICT (viewer_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
                stream_id, viewer_id, creator_id, amount_minor, currency, message, provider,
                idempotency_key, platform_fee_minor, card_fingerprint,
            )  # fmt: skip
            if row is not None:
                return _tip(row), True
            # Made meanwhile by a request with the same key that took no lock (no limits).
            existing = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM tips WHERE viewer_id = $1 AND idempotency_key = $2",
                viewer_id,
                idempotency_key,
            )
            assert existing is not None
            return _tip(existing), False

    async def settle_many(self, requests: Sequence[Settlement]) -> list[Settled]:
        """Settle tips and post their ledger transactions (`tip:{id}`) in one statement:
        all or none, one round trip, the accounts locked only while PostgreSQL runs it.

        A request that names the processor's event is applied only if that event is new,
        and the event is recorded as processed by the same statement.

        The answer lines up with `requests`: the settled tip, or None for one that was not
        pending (settled already, or in another lane), and whether its event was new. Tip
        ids must be distinct.
        """
        refs, accounts, amounts, currencies = [], [], [], []
        for r in requests:
            for e in r.entries:
                refs.append(f"tip:{r.tip_id}")
                accounts.append(e.account_id)
                amounts.append(e.amount_minor)
                currencies.append(e.currency)
        try:
            rows = await self._settle(requests, refs, accounts, amounts, currencies)
        except asyncpg.PostgresError as exc:
            raise StatementRefused(str(exc)) from exc
        settled = {row["id"]: _tip(row) for row in rows if row["id"] is not None}
        new_events = {row["new_event"] for row in rows}
        return [
            Settled(settled.get(r.tip_id), r.event_id is not None and r.event_id in new_events)
            for r in requests
        ]

    async def _settle(
        self, requests: Sequence[Settlement], refs: list[str], accounts: list[int],
        amounts: list[int], currencies: list[str],
    ) -> list[asyncpg.Record]:  # fmt: skip
        return await self._db.pool.fetch(
            f"""
            WITH req AS (
                SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                    $5::text[], $10::text[], $11::text[])
                    AS r(tip_id, provider, provider_ref, charge_ref, kind, event_id, event_type)
            ), ev AS (
                INSERT INTO stripe_events (id, type, processed_at)
                SELECT event_id, event_type, now() FROM req WHERE event_id IS NOT NULL
                ON CONFLICT (id) DO NOTHING RETURNING id
            ), todo AS (
                SELECT * FROM req WHERE event_id IS NULL OR event_id IN (SELECT id FROM ev)
            ), flipped AS (
                UPDATE tips SET status = 'succeeded', provider_ref = todo.provider_ref,
                    charge_ref = coalesce(todo.charge_ref, tips.charge_ref), failure = NULL,
                    updated_at = now()
                FROM todo WHERE tips.id = todo.tip_id AND tips.provider = todo.provider
                    AND tips.status IN ('pending', 'failed')
                RETURNING {_QUALIFIED}, todo.kind, todo.event_id
            ), tx AS (
                INSERT INTO ledger_transactions (kind, external_ref)
                SELECT kind, 'tip:' || id FROM flipped WHERE 'tip:' || id = ANY($6::text[])
                ON CONFLICT (external_ref) DO NOTHING RETURNING id, external_ref
            ), entries AS (
                INSERT INTO ledger_entries (transaction_id, account_id, amount_minor, currency)
                SELECT tx.id, e.account_id, e.amount_minor, e.currency FROM tx
                JOIN unnest($6::text[], $7::bigint[], $8::bigint[], $9::text[])
                    AS e(ref, account_id, amount_minor, currency) ON e.ref = tx.external_ref
            )
            SELECT {", ".join(f"f.{c.strip()}" for c in _COLUMNS.split(","))},
                ev.id AS new_event
            FROM flipped f FULL JOIN ev ON ev.id = f.event_id
            """,
            [r.tip_id for r in requests], [r.provider for r in requests],
            [r.provider_ref for r in requests], [r.charge_ref for r in requests],
            [r.kind for r in requests], refs, accounts, amounts, currencies,
            [r.event_id for r in requests], [r.event_type for r in requests],
        )  # fmt: skip

    async def fail(self, tip_id: int, reason: str) -> Tip | None:
        """Mark a pending tip failed with the reason; None when it is not pending."""
        row = await self._db.pool.fetchrow(
            f"UPDATE tips SET status = 'failed', failure = $2, updated_at = now()"
            f" WHERE id = $1 AND status = 'pending' RETURNING {_COLUMNS}",
            tip_id,
            reason[:500],
        )
        return _tip(row) if row else None

    async def attach(self, tip_id: int, provider_ref: str) -> None:
        """Remember the processor's payment for a pending tip (its webhooks name it)."""
        await self._db.pool.execute(
            "UPDATE tips SET provider_ref = $2, updated_at = now()"
            " WHERE id = $1 AND provider_ref IS NULL",
            tip_id,
            provider_ref,
        )

    async def to_lane(self, tip_id: int, provider: Provider) -> Tip | None:
        """Move a pending tip that never reached its processor to another lane: None when it
        has a payment there, or a request that may have reached it (open calls)."""
        row = await self._db.pool.fetchrow(
            f"UPDATE tips SET provider = $2, updated_at = now() WHERE id = $1"
            f" AND status = 'pending' AND provider_ref IS NULL AND open_calls = 0"
            f" RETURNING {_COLUMNS}",
            tip_id,
            provider,
        )
        return _tip(row) if row else None

    async def reclaim(self, tip_id: int, provider: Provider) -> Tip | None:
        """Bring a tip that was moved to the fallback lane, and is not settled there, back to
        the processor that was paid for it after all."""
        row = await self._db.pool.fetchrow(
            f"UPDATE tips SET provider = $2, failure = NULL, updated_at = now() WHERE id = $1"
            f" AND provider = 'manual' AND status IN ('pending', 'failed') RETURNING {_COLUMNS}",
            tip_id,
            provider,
        )
        return _tip(row) if row else None

    async def call_started(self, tip_id: int) -> None:
        """A request about this tip is going to the processor: its answer is not known yet."""
        await self._db.pool.execute(
            "UPDATE tips SET open_calls = open_calls + 1 WHERE id = $1", tip_id
        )

    async def call_answered(self, tip_id: int) -> None:
        """A request about this tip was answered (or surely never reached the processor)."""
        await self._db.pool.execute(
            "UPDATE tips SET open_calls = open_calls - 1 WHERE id = $1 AND open_calls > 0",
            tip_id,
        )

    async def by_provider_ref(self, provider_ref: str) -> Tip | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM tips WHERE provider_ref = $1", provider_ref
        )
        return _tip(row) if row else None

    async def record_card(
        self, tip_id: int | None, provider_ref: str | None, fingerprint: str
    ) -> None:
        """Remember which card pays a tip (by its id, or by its processor payment)."""
        await self._db.pool.execute(
            "UPDATE tips SET card_fingerprint = $3 WHERE (id = $1 OR provider_ref = $2)"
            " AND card_fingerprint IS DISTINCT FROM $3",
            tip_id,
            provider_ref,
            fingerprint,
        )

    async def list_for_creator(
        self, creator_id: int, status: TipStatus | None, provider: Provider | None, limit: int
    ) -> list[Tip]:
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM tips WHERE creator_id = $1"
            f" AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR provider = $3)"
            f" ORDER BY created_at DESC, id DESC LIMIT $4",
            creator_id,
            status,
            provider,
            limit,
        )
        return [_tip(r) for r in rows]

    async def get_many(self, tip_ids: Sequence[int]) -> list[Tip | None]:
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM tips WHERE id = ANY($1::bigint[])", list(tip_ids)
        )
        found = {row["id"]: _tip(row) for row in rows}
        return [found.get(tip_id) for tip_id in tip_ids]

    async def get(self, tip_id: int) -> Tip | None:
        row = await self._db.pool.fetchrow(f"SELECT {_COLUMNS} FROM tips WHERE id = $1", tip_id)
        return _tip(row) if row else None
