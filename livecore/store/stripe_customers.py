"""Each user's customer at the payment processor (a Stripe Customer id), kept once made."""

from __future__ import annotations

from livecore.store.db import Database


class StripeCustomers:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> str | None:
        ref = await self._db.pool.fetchval(
            "SELECT customer_ref FROM stripe_customers WHERE user_id = $1", user_id
        )
        return str(ref) if ref is not None else None

    async def keep(self, user_id: int, customer_ref: str) -> str:
        """Remember the user's customer; the one kept first wins (returned either way)."""
        # No conflict target: requests racing for one user carry the same customer (Stripe
        # answers one idempotency key once), and their inserts meet on both unique columns;
        # naming only user_id made the customer_ref clash an error.
        ref = await self._db.pool.fetchval(
            "INSERT INTO stripe_customers (user_id, customer_ref) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING customer_ref",
            user_id,
            customer_ref,
        )
        if ref is None:
            # Kept by a request racing this one: a new statement sees its committed row.
            ref = await self._db.pool.fetchval(
                "SELECT customer_ref FROM stripe_customers WHERE user_id = $1", user_id
            )
        assert ref is not None
        return str(ref)
