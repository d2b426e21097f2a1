"""A creator's money settings: a revenue-share override and a Stripe connected account."""

from __future__ import annotations

from dataclasses import dataclass

from livecore.store.db import Database


@dataclass(frozen=True, slots=True)
class CreatorMoney:
    user_id: int
    platform_fee_bps: int | None  # None: the platform default (tips.platform_fee_bps)
    stripe_account_id: str | None  # None: payouts are recorded for a manual transfer


class CreatorSettings:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> CreatorMoney:
        row = await self._db.pool.fetchrow(
            "SELECT platform_fee_bps, stripe_account_id FROM creator_settings WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return CreatorMoney(user_id, None, None)
        return CreatorMoney(user_id, row["platform_fee_bps"], row["stripe_account_id"])

    async def put(
        self, user_id: int, platform_fee_bps: int | None, stripe_account_id: str | None
    ) -> CreatorMoney:
        await self._db.pool.execute(
            "INSERT INTO creator_settings (user_id, platform_fee_bps, stripe_account_id)"
            " VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET"
            " platform_fee_bps = EXCLUDED.platform_fee_bps,"
            " stripe_account_id = EXCLUDED.stripe_account_id, updated_at = now()",
            user_id,
            platform_fee_bps,
            stripe_account_id,
        )
        return CreatorMoney(user_id, platform_fee_bps, stripe_account_id)
