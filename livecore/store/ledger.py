"""The double-entry ledger: accounts, balanced transactions, and the checks that prove it.

The database enforces the rules (see migrations/0005_ledger.sql); this module posts
transactions in one database transaction each, and posts an external reference once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from livecore.store.db import Connection, Database

AccountKind = Literal[
    "creator",
    "platform_revenue",
    "processor_clearing",
    "processor_fees",
    "refunds",
    "disputes",
    "payouts_in_transit",
    "payouts_paid",
]


class Unbalanced(Exception):
    """The entries of a transaction do not sum to zero in every currency."""


@dataclass(frozen=True, slots=True)
class Entry:
    account_id: int
    amount_minor: int  # positive: debit-side growth of this account's balance
    currency: str


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    unbalanced_transactions: int
    accounts_off: int  # accounts whose balance differs from the sum of their entries

    @property
    def ok(self) -> bool:
        return self.unbalanced_transactions == 0 and self.accounts_off == 0


@dataclass(frozen=True, slots=True)
class LedgerSize:
    transactions: int
    entries: int


# Post a transaction and its entries; no row (None) when its external reference exists.
POST_SQL = """
    WITH tx AS (
        INSERT INTO ledger_transactions (kind, external_ref) VALUES ($1, $2)
        ON CONFLICT (external_ref) DO NOTHING RETURNING id
    ), entries AS (
        INSERT INTO ledger_entries (transaction_id, account_id, amount_minor, currency)
        SELECT tx.id, e.account_id, e.amount_minor, e.currency FROM tx,
            unnest($3::bigint[], $4::bigint[], $5::text[]) AS e(account_id, amount_minor, currency)
    )
    SELECT id FROM tx
"""


def entry_arrays(entries: Sequence[Entry]) -> tuple[list[int], list[int], list[str]]:
    return (
        [e.account_id for e in entries],
        [e.amount_minor for e in entries],
        [e.currency for e in entries],
    )


class Ledger:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Accounts are never deleted or renumbered: their ids are cached for good.
        self._ids: dict[tuple[AccountKind, str, int | None], int] = {}

    async def account(
        self,
        kind: AccountKind,
        currency: str,
        owner_id: int | None = None,
        conn: Connection | None = None,
    ) -> int:
        """The id of an account, made on first use (inside the caller's transaction with
        `conn`: a caller holding a connection must not wait for a second one)."""
        key = (kind, currency, owner_id)
        if (known := self._ids.get(key)) is not None:
            return known
        row_id = await (conn or self._db.pool).fetchval(
            "INSERT INTO ledger_accounts (kind, owner_id, currency) VALUES ($1, $2, $3)"
            # A no-op update, so that RETURNING yields the existing row's id too.
            " ON CONFLICT (kind, coalesce(owner_id, 0), currency)"
            " DO UPDATE SET kind = EXCLUDED.kind RETURNING id",
            kind,
            owner_id,
            currency,
        )
        if conn is None:
            # Made in a caller's transaction, it may yet roll back: cache only committed ids.
            self._ids[key] = int(row_id)
        return int(row_id)

    async def post(
        self,
        external_ref: str,
        kind: str,
        entries: Sequence[Entry],
        conn: Connection | None = None,
    ) -> int | None:
        """Post a balanced transaction; None when `external_ref` was posted already.

        Raises Unbalanced (and changes nothing) when the entries do not sum to zero. With
        `conn` (inside the caller's transaction) the posting commits or rolls back with it.
        """
        totals: dict[str, int] = {}
        for entry in entries:
            totals[entry.currency] = totals.get(entry.currency, 0) + entry.amount_minor
        if not entries or any(totals.values()):
            raise Unbalanced(f"{external_ref}: entries sum to {totals}")
        try:
            return await self._insert(conn or self._db.pool, external_ref, kind, entries)
        except asyncpg.CheckViolationError as exc:
            raise Unbalanced(str(exc)) from None

    @staticmethod
    async def _insert(
        db: Connection | asyncpg.Pool, external_ref: str, kind: str, entries: Sequence[Entry]
    ) -> int | None:
        # One statement, so that on its own it is one transaction and one round trip: the
        # accounts' rows are locked only while PostgreSQL runs it and commits, never across
        # a trip back to a busy client (a burst of tips meets on the same few accounts).
        tx_id = await db.fetchval(POST_SQL, kind, external_ref, *entry_arrays(entries))
        return int(tx_id) if tx_id is not None else None

    async def balance(self, account_id: int) -> int:
        value = await self._db.pool.fetchval(
            "SELECT balance_minor FROM ledger_accounts WHERE id = $1", account_id
        )
        return int(value or 0)

    async def balances(self, kind: AccountKind, owner_id: int | None) -> dict[str, int]:
        """Balances of an owner's accounts of one kind, by currency (none made on reading)."""
        rows = await self._db.pool.fetch(
            "SELECT currency, balance_minor FROM ledger_accounts WHERE kind = $1"
            " AND coalesce(owner_id, 0) = coalesce($2::bigint, 0)",
            kind,
            owner_id,
        )
        return {r["currency"]: int(r["balance_minor"]) for r in rows}

    async def check(self) -> LedgerCheck:
        """Prove the invariants from the entries themselves."""
        unbalanced = await self._db.pool.fetchval(
            "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries"
            " GROUP BY transaction_id, currency HAVING sum(amount_minor) <> 0) t"
        )
        off = await self._db.pool.fetchval(
            "SELECT count(*) FROM ledger_accounts a LEFT JOIN (SELECT account_id,"
            " sum(amount_minor) AS total FROM ledger_entries GROUP BY account_id) e"
            " ON e.account_id = a.id WHERE a.balance_minor <> coalesce(e.total, 0)"
        )
        return LedgerCheck(int(unbalanced), int(off))

    async def size(self) -> LedgerSize:
        """How many transactions and entries the ledger holds."""
        transactions = await self._db.pool.fetchval("SELECT count(*) FROM ledger_transactions")
        entries = await self._db.pool.fetchval("SELECT count(*) FROM ledger_entries")
        return LedgerSize(int(transactions), int(entries))
