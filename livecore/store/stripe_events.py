"""Stripe webhook events seen, by id: each one's effects are applied once."""

from __future__ import annotations

from collections.abc import Sequence

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

    async def begin_many(self, events: Sequence[tuple[str, str]]) -> list[bool]:
        """`begin` for many (id, type) pairs in one statement, answers in order."""
        unique = dict(events)  # one event twice in a batch: its first delivery handles it
        rows = await self._db.pool.fetch(
            "INSERT INTO stripe_events (id, type) SELECT * FROM unnest($1::text[], $2::text[])"
            " ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type RETURNING id, processed_at",
            list(unique),
            list(unique.values()),
        )
        fresh = {r["id"] for r in rows if r["processed_at"] is None}
        answers = []
        for event_id, _ in events:
            answers.append(event_id in fresh)
            fresh.discard(event_id)
        return answers

    async def done_many(self, event_ids: Sequence[str]) -> None:
        await self._db.pool.execute(
            "UPDATE stripe_events SET processed_at = now()"
            " WHERE id = ANY($1::text[]) AND processed_at IS NULL",
            list(event_ids),
        )

    async def done(self, event_id: str) -> None:
        await self._db.pool.execute(
            "UPDATE stripe_events SET processed_at = now() WHERE id = $1 AND processed_at IS NULL",
            event_id,
        )
