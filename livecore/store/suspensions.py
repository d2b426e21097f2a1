"""Account suspensions: in force until lifted or until their end, whichever comes first.

The database's clock decides whether a suspension is in force, as it does for every node,
so a timed suspension ends by itself at `until` with nothing to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from livecore.store.db import Database

# A suspension row that is in force now (the table aliased `x`).
IN_FORCE = "x.lifted_at IS NULL AND (x.until IS NULL OR x.until > now())"
_COLUMNS = "x.user_id, x.reason, x.until, x.actor_id, x.created_at"


@dataclass(frozen=True, slots=True)
class Suspension:
    user_id: int
    reason: str
    until: datetime | None  # None: until an admin lifts it
    actor_id: int | None
    created_at: datetime


def _suspension(row: asyncpg.Record) -> Suspension:
    return Suspension(
        row["user_id"], row["reason"], row["until"], row["actor_id"], row["created_at"]
    )


class Suspensions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def suspend(
        self, user_id: int, reason: str, until: datetime | None, actor_id: int | None
    ) -> tuple[Suspension, list[bytes]]:
        """Suspend the user (replacing a suspension in force) and revoke every session of
        theirs, in one transaction; returns the suspension and the revoked token hashes."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE user_suspensions SET lifted_at = now(), lifted_by = $2"
                " WHERE user_id = $1 AND lifted_at IS NULL",
                user_id,
                actor_id,
            )
            row = await conn.fetchrow(
                "INSERT INTO user_suspensions AS x (user_id, reason, until, actor_id)"
                f" VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
                user_id,
                reason,
                until,
                actor_id,
            )
            assert row is not None  # INSERT ... RETURNING always answers a row
            revoked = await conn.fetch(
                "UPDATE sessions SET revoked_at = now()"
                " WHERE user_id = $1 AND revoked_at IS NULL RETURNING token_hash",
                user_id,
            )
        return _suspension(row), [r["token_hash"] for r in revoked]

    async def lift(self, user_id: int, actor_id: int | None) -> bool:
        """Lift the user's suspension now; False when none was in force."""
        value = await self._db.pool.fetchval(
            # An expired suspension is marked lifted too (it ended already: False).
            "UPDATE user_suspensions x SET lifted_at = now(), lifted_by = $2"
            " WHERE x.user_id = $1 AND x.lifted_at IS NULL"
            " RETURNING x.until IS NULL OR x.until > now()",
            user_id,
            actor_id,
        )
        return bool(value)

    async def active(self, user_id: int) -> Suspension | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM user_suspensions x WHERE x.user_id = $1 AND {IN_FORCE}",
            user_id,
        )
        return _suspension(row) if row else None

    async def active_many(self, user_ids: Sequence[int]) -> dict[int, Suspension]:
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM user_suspensions x"
            f" WHERE x.user_id = ANY($1::bigint[]) AND {IN_FORCE}",
            list(user_ids),
        )
        return {r["user_id"]: _suspension(r) for r in rows}

    async def for_token(self, token_hash: bytes) -> Suspension | None:
        """The suspension in force of the user a session token (revoked or not) was for."""
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM sessions s JOIN user_suspensions x ON x.user_id = s.user_id"
            f" WHERE s.token_hash = $1 AND {IN_FORCE}",
            token_hash,
        )
        return _suspension(row) if row else None
