"""Stripe webhook events seen, by id: each one's effects are applied once."""

from __future__ import annotations

from livecore.store.db import Database


class StripeEvents:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(self, event_id: str, event_type: str) -> bool:
        """Record an event; False when it was processed before (a duplicate delivery).

        An event seen but never finished (its handling failed) is handled again.
        """
        processed_at = await self._db.pool.fetchval(
            "INSERT INTO stripe_events (id, type) VALUES ($1, $2)"
            # A no-op update, so that RETURNING also yields an existing row.
            " ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type RETURNING processed_at",
            event_id,
            event_type,
        )
        return processed_at is None

    async def done(self, event_id: str) -> None:
        await self._db.pool.execute(
            "UPDATE stripe_events SET processed_at = now() WHERE id = $1 AND processed_at IS NULL",
            event_id,
        )
