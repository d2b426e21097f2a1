"""Payouts of creators' earnings as stored, and the creator-account reads that size them.

A payout is in transit until paid, or failed (its money goes back to the creator). The
ledger postings that move the money are the caller's (livecore.tips.payouts); this module
only reads and writes rows, inside the caller's transaction where one is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from livecore.store.db import Connection, Database

PayoutStatus = Literal["in_transit", "paid", "failed"]
PayoutRailName = Literal["stripe", "manual"]

_COLUMNS = (
    "id, creator_id, amount_minor, currency, rail, provider_ref, status, failure, created_at,"
    " updated_at"
)


@dataclass(frozen=True, slots=True)
class Payout:
    id: int
    creator_id: int
    amount_minor: int
    currency: str
    rail: PayoutRailName
    provider_ref: str | None  # the processor's transfer id, once it answered
    status: PayoutStatus
    failure: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Position:
    """A creator account's balance and its recent credits (earnings still on hold)."""

    account_id: int
    currency: str
    balance_minor: int  # negative: what the platform owes the creator
    recent_credits_minor: int  # >= 0: credits posted within the holding period


def _payout(row: asyncpg.Record) -> Payout:
    return Payout(*(row[c.strip()] for c in _COLUMNS.split(",")))


def _recent_credits(account: str) -> str:
    """Credits (negative entries) to the account `account` newer than the holding period
    ($2), leaving out the kinds of transaction named in $3."""
    return (
        "SELECT coalesce(-sum(e.amount_minor), 0) FROM ledger_entries e"
        " JOIN ledger_transactions t ON t.id = e.transaction_id"
        f" WHERE e.account_id = {account} AND e.amount_minor < 0"
        " AND e.created_at > now() - $2::interval AND t.kind <> ALL($3::text[])"
    )


class Payouts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, creator_id: int, amount_minor: int, currency: str, rail: PayoutRailName,
        conn: Connection,
    ) -> Payout:  # fmt: skip
        row = await conn.fetchrow(
            "INSERT INTO payouts (creator_id, amount_minor, currency, rail)"
            f" VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
            creator_id,
            amount_minor,
            currency,
            rail,
        )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return _payout(row)

    async def get(self, payout_id: int) -> Payout | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM payouts WHERE id = $1", payout_id
        )
        return _payout(row) if row else None

    async def lock(self, payout_id: int, conn: Connection) -> Payout | None:
        """The payout, its row locked until the caller's transaction ends."""
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM payouts WHERE id = $1 FOR UPDATE", payout_id
        )
        return _payout(row) if row else None

    async def finish(
        self, payout_id: int, status: PayoutStatus, provider_ref: str | None,
        failure: str | None, conn: Connection,
    ) -> Payout:  # fmt: skip
        """Set a locked payout's outcome (a provider_ref given replaces none)."""
        row = await conn.fetchrow(
            "UPDATE payouts SET status = $2, provider_ref = coalesce($3, provider_ref),"
            f" failure = $4, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
            payout_id,
            status,
            provider_ref,
            failure,
        )
        if row is None:
            raise LookupError(f"payout {payout_id}")
        return _payout(row)

    async def touch(self, payout_id: int) -> None:
        """Note an attempt to send it (a retry sweep waits a while after the last one)."""
        await self._db.pool.execute(
            "UPDATE payouts SET updated_at = now() WHERE id = $1 AND status = 'in_transit'",
            payout_id,
        )

    async def claim_unsent(
        self, rail: PayoutRailName, quiet_for: timedelta, younger_than: timedelta,
        skip: list[int],
    ) -> Payout | None:  # fmt: skip
        """Claim the oldest payout in transit on `rail` that the processor has not answered
        for, untouched for `quiet_for`, made within `younger_than` and not in `skip`.

        Claiming touches it, so that another sweep (on this node or another) leaves it alone
        for `quiet_for`; a row another sweep is claiming at this moment is skipped.
        """
        row = await self._db.pool.fetchrow(
            "UPDATE payouts SET updated_at = now() WHERE id = ("
            " SELECT id FROM payouts WHERE rail = $1 AND status = 'in_transit'"
            " AND provider_ref IS NULL AND updated_at <= now() - $2::interval"
            " AND created_at > now() - $3::interval AND id <> ALL($4::bigint[])"
            " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
            f") RETURNING {_COLUMNS}",
            rail,
            quiet_for,
            younger_than,
            skip,
        )
        return _payout(row) if row else None

    async def for_creator(self, creator_id: int, limit: int) -> list[Payout]:
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM payouts WHERE creator_id = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2",
            creator_id,
            limit,
        )
        return [_payout(r) for r in rows]

    async def count_in_transit(self, creator_id: int, rail: PayoutRailName) -> int:
        value = await self._db.pool.fetchval(
            "SELECT count(*) FROM payouts WHERE creator_id = $1 AND rail = $2"
            " AND status = 'in_transit'",
            creator_id,
            rail,
        )
        return int(value)

    async def listing(self, status: PayoutStatus | None, limit: int) -> list[Payout]:
        """Payouts of every creator (in one status when given), newest first."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM payouts WHERE $1::text IS NULL OR status = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2",
            status,
            limit,
        )
        return [_payout(r) for r in rows]

    # -- the creator account ------------------------------------------------------------------

    async def lock_account(self, account_id: int, conn: Connection) -> None:
        """Lock a ledger account's row until the caller's transaction ends (callers lock a
        creator's account before the platform's accounts, so that they never deadlock)."""
        await conn.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", account_id)

    async def positions(
        self, creator_id: int, hold: timedelta, not_held_kinds: list[str]
    ) -> list[Position]:
        """Each of a creator's accounts (one per currency), none made on reading."""
        rows = await self._db.pool.fetch(
            f"SELECT a.id, a.currency, a.balance_minor, ({_recent_credits('a.id')}) AS recent"
            " FROM ledger_accounts a WHERE a.kind = 'creator' AND a.owner_id = $1"
            " ORDER BY a.currency",
            creator_id,
            hold,
            not_held_kinds,
        )
        return [
            Position(r["id"], r["currency"], int(r["balance_minor"]), int(r["recent"]))
            for r in rows
        ]

    async def lock_position(
        self, creator_id: int, currency: str, hold: timedelta, not_held_kinds: list[str],
        conn: Connection,
    ) -> Position | None:  # fmt: skip
        """The creator's account in `currency`, its row locked until the caller's transaction
        ends (no posting to it can commit meanwhile); None when it has none.

        The credits are read by a second statement, after the lock is held: in READ
        COMMITTED a statement's snapshot is taken when it starts, and one that waited for
        the lock would see the locked row's newest balance but not the entries behind it.
        """
        row = await conn.fetchrow(
            "SELECT id, balance_minor FROM ledger_accounts"
            " WHERE kind = 'creator' AND owner_id = $1 AND currency = $2 FOR UPDATE",
            creator_id,
            currency,
        )
        if row is None:
            return None
        recent = await conn.fetchval(_recent_credits("$1"), row["id"], hold, not_held_kinds)
        return Position(row["id"], currency, int(row["balance_minor"]), int(recent))
