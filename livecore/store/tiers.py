"""Creators' subscription tiers, as stored: a name unique per creator, a monthly price, the
processor's price id, and whether new subscribers are taken. Imports nothing from livecore
but the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from livecore.store.db import Database, unique_violation

_TIER_COLUMNS = "id, creator_id, name, price_minor, currency, stripe_price_id, active, created_at"


@dataclass(frozen=True, slots=True)
class Tier:
    id: int
    creator_id: int
    name: str
    price_minor: int
    currency: str
    stripe_price_id: str | None
    active: bool
    created_at: datetime


def _tier(row: asyncpg.Record) -> Tier:
    return Tier(*(row[c.strip()] for c in _TIER_COLUMNS.split(",")))


class Tiers:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def next_id(self) -> int:
        """Reserve a tier id (the processor's price is made for it before the tier is stored)."""
        value = await self._db.pool.fetchval("SELECT nextval('subscription_tiers_id_seq')")
        return int(value)

    async def name_taken(self, creator_id: int, name: str) -> bool:
        return bool(
            await self._db.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM subscription_tiers"
                " WHERE creator_id = $1 AND name = $2)",
                creator_id,
                name,
            )
        )

    async def create(
        self, creator_id: int, name: str, price_minor: int, currency: str, *,
        tier_id: int | None = None, stripe_price_id: str | None = None,
    ) -> Tier:  # fmt: skip
        """Store a tier; raises UniqueViolation when the creator has one of that name."""
        with unique_violation():
            row = await self._db.pool.fetchrow(
                f"INSERT INTO subscription_tiers (id, creator_id, name, price_minor, currency,"
                f" stripe_price_id) VALUES (coalesce($1, nextval('subscription_tiers_id_seq')),"
                f" $2, $3, $4, $5, $6) RETURNING {_TIER_COLUMNS}",
                tier_id, creator_id, name, price_minor, currency, stripe_price_id,
            )  # fmt: skip
        assert row is not None
        return _tier(row)

    async def set_price_id(self, tier_id: int, stripe_price_id: str) -> None:
        """Remember the processor's price of a tier made without one (in test mode)."""
        await self._db.pool.execute(
            "UPDATE subscription_tiers SET stripe_price_id = $2"
            " WHERE id = $1 AND stripe_price_id IS NULL",
            tier_id,
            stripe_price_id,
        )

    async def get(self, tier_id: int) -> Tier | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_TIER_COLUMNS} FROM subscription_tiers WHERE id = $1", tier_id
        )
        return _tier(row) if row else None

    async def of_creator(self, creator_id: int, *, include_inactive: bool = False) -> list[Tier]:
        rows = await self._db.pool.fetch(
            f"SELECT {_TIER_COLUMNS} FROM subscription_tiers WHERE creator_id = $1"
            f" AND (active OR $2) ORDER BY price_minor, id",
            creator_id,
            include_inactive,
        )
        return [_tier(r) for r in rows]

    async def rename(self, tier_id: int, creator_id: int, name: str) -> Tier | None:
        """Rename a creator's tier; None if not theirs, UniqueViolation when the name is taken."""
        with unique_violation():
            row = await self._db.pool.fetchrow(
                f"UPDATE subscription_tiers SET name = $3 WHERE id = $1 AND creator_id = $2"
                f" RETURNING {_TIER_COLUMNS}",
                tier_id, creator_id, name,
            )  # fmt: skip
        return _tier(row) if row else None

    async def deactivate(self, tier_id: int, creator_id: int) -> Tier | None:
        """Stop offering a creator's tier (its subscriptions continue); None if not theirs."""
        row = await self._db.pool.fetchrow(
            f"UPDATE subscription_tiers SET active = false WHERE id = $1 AND creator_id = $2"
            f" RETURNING {_TIER_COLUMNS}",
            tier_id,
            creator_id,
        )
        return _tier(row) if row else None
