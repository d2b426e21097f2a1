"""Statements read from the ledger: a creator's earnings by day, the platform's revenue by day.

Every figure is a sum of ledger entries grouped by UTC day, currency and transaction kind,
so a statement always agrees with the balances.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from livecore.store.db import Database

# A creator's entries by day, currency and kind, with the platform's share of the same
# transactions (creator accounts: negative = owed to the creator, so signs are flipped).
_CREATOR_SQL = """
    WITH mine AS (
        SELECT e.transaction_id, e.amount_minor, e.currency,
            (e.created_at AT TIME ZONE 'UTC')::date AS day
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE a.kind = 'creator' AND coalesce(a.owner_id, 0) = $1  -- as ledger_accounts_key
          AND e.created_at >= $2 AND e.created_at < $3
    )
    SELECT m.day, m.currency, t.kind, -sum(m.amount_minor) AS creator,
        coalesce(sum(p.platform), 0) AS platform
    FROM mine m JOIN ledger_transactions t ON t.id = m.transaction_id
    LEFT JOIN LATERAL (
        SELECT -sum(e.amount_minor) AS platform FROM ledger_entries e
        JOIN ledger_accounts a ON a.id = e.account_id
        WHERE e.transaction_id = m.transaction_id AND a.kind = 'platform_revenue'
    ) p ON true
    GROUP BY 1, 2, 3
"""

# The platform's own accounts by day, currency, account kind and transaction kind.
_PLATFORM_SQL = """
    SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day, e.currency, a.kind AS account,
        t.kind, sum(e.amount_minor) AS amount
    FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
    JOIN ledger_transactions t ON t.id = e.transaction_id
    WHERE a.kind IN ('platform_revenue', 'processor_fees', 'processor_clearing')
      AND e.created_at >= $1 AND e.created_at < $2
    GROUP BY 1, 2, 3, 4
"""


@dataclass(slots=True)
class StatementDay:
    """One day of a creator's earnings in one currency, in minor units, from the creator's
    side: money earned is positive, money taken back or paid out negative."""

    day: date
    currency: str
    tips: int = 0  # their share of tips (an invoiced tip counts as minus the share they owe)
    subscriptions: int = 0
    platform_fees: int = 0  # the platform's share of that day's tips and subscriptions
    refunds: int = 0
    disputes: int = 0  # withdrawn when opened, returned when won
    payouts: int = 0  # paid out (negative), or returned by a failed payout
    net: int = 0  # the change in what the platform owes them


@dataclass(slots=True)
class RevenueDay:
    """One day of the platform's revenue in one currency, in minor units."""

    day: date
    currency: str
    gross_volume: int = 0  # tips and subscriptions charged
    fees_earned: int = 0  # the platform's share of them
    fees_returned: int = 0  # its share given back by refunds and disputes (negative)
    processor_fees: int = 0  # the processor's fees (negative)
    net: int = 0


def as_row(day: StatementDay | RevenueDay) -> dict[str, Any]:
    return {f.name: getattr(day, f.name) for f in fields(day)}


_CREATOR_COLUMN = {
    "tip": "tips", "tip_manual": "tips", "subscription": "subscriptions", "refund": "refunds",
    "dispute": "disputes", "dispute_won": "disputes", "payout": "payouts",
    "payout_failed": "payouts",
}  # fmt: skip


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, the day after end 00:00 UTC): `end` is inclusive."""
    return (
        datetime.combine(start, time(), UTC),
        datetime.combine(end + timedelta(days=1), time(), UTC),
    )


class Earnings:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def creator_days(self, creator_id: int, start: date, end: date) -> list[StatementDay]:
        rows = await self._db.pool.fetch(_CREATOR_SQL, creator_id, *_bounds(start, end))
        days: dict[tuple[date, str], StatementDay] = {}
        for r in rows:
            key = (r["day"], r["currency"])
            day = days.setdefault(key, StatementDay(*key))
            column = _CREATOR_COLUMN.get(r["kind"])
            if column is not None:
                setattr(day, column, getattr(day, column) + int(r["creator"]))
            if r["kind"] in ("tip", "tip_manual", "subscription"):
                day.platform_fees += int(r["platform"])
            day.net += int(r["creator"])
        return [days[k] for k in sorted(days)]

    async def platform_days(self, start: date, end: date) -> list[RevenueDay]:
        rows = await self._db.pool.fetch(_PLATFORM_SQL, *_bounds(start, end))
        days: dict[tuple[date, str], RevenueDay] = {}
        for r in rows:
            key = (r["day"], r["currency"])
            day = days.setdefault(key, RevenueDay(*key))
            amount, kind, account = int(r["amount"]), r["kind"], r["account"]
            if account == "processor_clearing":
                if kind in ("tip", "subscription"):
                    day.gross_volume += amount
            elif account == "processor_fees":
                day.processor_fees -= amount
                day.net -= amount
            else:  # platform_revenue: credits (negative) are revenue
                if kind in ("tip", "tip_manual", "subscription"):
                    day.fees_earned -= amount
                else:
                    day.fees_returned -= amount
                day.net -= amount
        return [days[k] for k in sorted(days)]
