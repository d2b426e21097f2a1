"""Requests to become a creator, made at sign-up when creators may not sign up freely."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from livecore.store.db import Database

RequestState = Literal["pending", "approved", "declined"]
_COLUMNS = "r.id, r.user_id, r.state, r.created_at, r.decided_at, u.email, u.display_name"


@dataclass(frozen=True, slots=True)
class CreatorRequest:
    id: int
    user_id: int
    state: RequestState
    created_at: datetime
    decided_at: datetime | None
    email: str
    display_name: str


def _request(row: asyncpg.Record) -> CreatorRequest:
    return CreatorRequest(
        row["id"], row["user_id"], row["state"], row["created_at"], row["decided_at"],
        row["email"], row["display_name"],
    )  # fmt: skip


class CreatorRequests:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, user_id: int) -> None:
        """A pending request for the user (nothing when one is pending already)."""
        await self._db.pool.execute(
            "INSERT INTO creator_requests (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
        )

    async def latest_of(self, user_id: int) -> CreatorRequest | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM creator_requests r JOIN users u ON u.id = r.user_id"
            " WHERE r.user_id = $1 ORDER BY r.id DESC LIMIT 1",
            user_id,
        )
        return _request(row) if row else None

    async def listing(self, state: RequestState | None, limit: int = 200) -> list[CreatorRequest]:
        """Requests oldest first (the queue's order), of one state or all."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM creator_requests r JOIN users u ON u.id = r.user_id"
            " WHERE $1::text IS NULL OR r.state = $1 ORDER BY r.id LIMIT $2",
            state,
            limit,
        )
        return [_request(r) for r in rows]

    async def decide(self, request_id: int, approve: bool, actor_id: int) -> CreatorRequest | None:
        """Approve (a viewer becomes a creator) or decline a pending request; None when the
        request is unknown or already decided."""
        async with self._db.transaction() as conn:
            user_id = await conn.fetchval(
                "UPDATE creator_requests SET state = $2, decided_at = now(), decided_by = $3"
                " WHERE id = $1 AND state = 'pending' RETURNING user_id",
                request_id,
                "approved" if approve else "declined",
                actor_id,
            )
            if user_id is None:
                return None
            if approve:
                # An admin stays an admin: only a viewer is made a creator.
                await conn.execute(
                    "UPDATE users SET role = 'creator', updated_at = now()"
                    " WHERE id = $1 AND role = 'viewer'",
                    user_id,
                )
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM creator_requests r JOIN users u ON u.id = r.user_id"
                " WHERE r.id = $1",
                request_id,
            )
        assert row is not None
        return _request(row)
