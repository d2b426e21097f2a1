"""A creator's figures for their Money page: each broadcast with its audience and the tips
paid during it, and how many subscribers they have.

Read-only. Statements by day come from the ledger (`store/earnings.py`); these are counts
over the tips, broadcasts and subscriptions tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from livecore.store.db import Database

# A tip belongs to the broadcast of its stream that was on air when it was sent (tips sent
# while the stream was offline belong to none). A tip counts once it was paid: `refunded` and
# `disputed` tips were paid too, and their reversals are in the statement, not here.
_BROADCASTS_SQL = """
    WITH recent AS (
        SELECT b.id, b.stream_id, s.slug, s.title, b.started_at, b.ended_at,
            b.peak_viewers, b.unique_viewers
        FROM broadcasts b JOIN streams s ON s.id = b.stream_id
        WHERE s.owner_id = $1
        ORDER BY b.started_at DESC, b.id DESC
        LIMIT $2
    )
    SELECT r.id, r.slug, r.title, r.started_at, r.ended_at, r.peak_viewers,
        r.unique_viewers, t.currency, coalesce(t.tips, 0) AS tips,
        coalesce(t.amount, 0) AS amount, coalesce(t.share, 0) AS share
    FROM recent r
    LEFT JOIN LATERAL (
        SELECT tips.currency, count(*)::int AS tips, sum(tips.amount_minor)::bigint AS amount,
            sum(tips.amount_minor - tips.platform_fee_minor)::bigint AS share
        FROM tips
        WHERE tips.creator_id = $1 AND tips.stream_id = r.stream_id
          AND tips.status IN ('succeeded', 'refunded', 'disputed')
          AND tips.created_at >= r.started_at
          AND (r.ended_at IS NULL OR tips.created_at < r.ended_at)
        GROUP BY tips.currency
    ) t ON true
    ORDER BY r.started_at DESC, r.id DESC, t.currency
"""

# Subscribers let in right now (as subscriptions.has_access decides), per tier.
_SUBSCRIBERS_SQL = """
    SELECT t.id, t.name, t.price_minor, t.currency, t.active, count(s.id) AS subscribers
    FROM subscription_tiers t
    LEFT JOIN subscriptions s ON s.tier_id = t.id AND (
        (s.status = 'active' AND (s.current_period_end IS NULL OR s.current_period_end > now()))
        OR (s.status = 'past_due' AND s.grace_until > now()))
    WHERE t.creator_id = $1
    GROUP BY t.id
    ORDER BY t.active DESC, t.created_at, t.id
"""

_DISTINCT_SUBSCRIBERS_SQL = """
    SELECT count(DISTINCT s.viewer_id) FROM subscriptions s
    WHERE s.creator_id = $1 AND (
        (s.status = 'active' AND (s.current_period_end IS NULL OR s.current_period_end > now()))
        OR (s.status = 'past_due' AND s.grace_until > now()))
"""


@dataclass(frozen=True, slots=True)
class BroadcastTips:
    """The tips paid during one broadcast in one currency, in minor units."""

    currency: str
    count: int
    amount_minor: int  # what the viewers paid
    share_minor: int  # the creator's share of it (before any later refund or dispute)


@dataclass(frozen=True, slots=True)
class BroadcastFigures:
    id: int
    slug: str
    title: str
    started_at: datetime
    ended_at: datetime | None  # None: on air now
    peak_viewers: int
    unique_viewers: int
    tips: tuple[BroadcastTips, ...]  # by currency, in alphabetical order


@dataclass(frozen=True, slots=True)
class TierSubscribers:
    tier_id: int
    name: str
    price_minor: int
    currency: str
    active: bool
    subscribers: int


@dataclass(frozen=True, slots=True)
class Subscribers:
    total: int  # different viewers subscribed to any tier (one viewer may have two tiers)
    tiers: tuple[TierSubscribers, ...]


def _figures(r: asyncpg.Record, tips: list[BroadcastTips]) -> BroadcastFigures:
    return BroadcastFigures(
        r["id"], r["slug"], r["title"], r["started_at"], r["ended_at"], r["peak_viewers"],
        r["unique_viewers"], tuple(tips),
    )  # fmt: skip


class CreatorFigures:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def broadcasts(self, creator_id: int, limit: int) -> list[BroadcastFigures]:
        """The creator's `limit` latest broadcasts, over all their streams, newest first."""
        rows = await self._db.pool.fetch(_BROADCASTS_SQL, creator_id, limit)
        # One row per broadcast and currency (one with a null currency: no tips), in order.
        tips: dict[int, list[BroadcastTips]] = {}
        first: dict[int, asyncpg.Record] = {}
        for r in rows:
            first.setdefault(r["id"], r)
            found = tips.setdefault(r["id"], [])
            if r["currency"] is not None:
                found.append(BroadcastTips(r["currency"], r["tips"], r["amount"], r["share"]))
        return [_figures(r, tips[r["id"]]) for r in first.values()]

    async def subscribers(self, creator_id: int) -> Subscribers:
        """Who is subscribed now, in all and per tier (retired tiers' subscriptions go on)."""
        async with self._db.pool.acquire() as conn:
            total = await conn.fetchval(_DISTINCT_SUBSCRIBERS_SQL, creator_id)
            rows = await conn.fetch(_SUBSCRIBERS_SQL, creator_id)
        tiers = tuple(
            TierSubscribers(r["id"], r["name"], r["price_minor"], r["currency"], r["active"],
                            int(r["subscribers"]))
            for r in rows
        )  # fmt: skip
        return Subscribers(int(total or 0), tiers)
