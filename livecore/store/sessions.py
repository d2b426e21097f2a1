"""Login sessions, looked up by the SHA-256 of their token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from livecore.store.db import Database
from livecore.store.suspensions import IN_FORCE
from livecore.store.users import User, _user


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    user: User
    token_hash: bytes
    expires_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What a user sees of one of their live sessions (never its token)."""

    id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str
    token_hash: bytes


def _session(row: asyncpg.Record) -> Session:
    return Session(
        row["sid"], _user(row), row["token_hash"], row["expires_at"], row["last_seen_at"]
    )


class Sessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, user_id: int, token_hash: bytes, ttl_s: int, user_agent: str) -> None:
        await self._db.pool.execute(
            "INSERT INTO sessions (user_id, token_hash, expires_at, user_agent)"
            " VALUES ($1, $2, now() + make_interval(secs => $3), $4)",
            user_id,
            token_hash,
            float(ttl_s),
            user_agent[:256],
        )

    async def active(self, token_hash: bytes) -> Session | None:
        """The live (not revoked, not expired) session with this token hash, with its user."""
        row = await self._db.pool.fetchrow(
            "SELECT s.id AS sid, s.token_hash, s.expires_at, s.last_seen_at,"
            " u.id, u.email, u.display_name, u.role, u.created_at"
            " FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"
            # A suspension revokes the sessions; this also refuses one made meanwhile.
            " AND NOT EXISTS (SELECT 1 FROM user_suspensions x"
            f" WHERE x.user_id = u.id AND {IN_FORCE})",
            token_hash,
        )
        return _session(row) if row else None

    async def touch(self, session_id: int) -> None:
        await self._db.pool.execute(
            "UPDATE sessions SET last_seen_at = now() WHERE id = $1", session_id
        )

    async def revoke(self, token_hash: bytes) -> None:
        await self._db.pool.execute(
            "UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )

    async def of_user(self, user_id: int) -> list[SessionInfo]:
        """The user's live sessions, most recently used first."""
        rows = await self._db.pool.fetch(
            "SELECT id, created_at, last_seen_at, expires_at, user_agent, token_hash"
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()"
            " ORDER BY last_seen_at DESC, id DESC",
            user_id,
        )
        return [SessionInfo(**dict(r)) for r in rows]

    async def revoke_id(self, user_id: int, session_id: int) -> bytes | None:
        """Revoke one of the user's sessions by id; its token hash, or None if not theirs."""
        row = await self._db.pool.fetchrow(
            "UPDATE sessions SET revoked_at = now()"
            " WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING token_hash",
            session_id,
            user_id,
        )
        return row["token_hash"] if row else None

    async def revoke_all(self, user_id: int, *, keep: bytes | None = None) -> list[bytes]:
        """Revoke every session of a user except `keep`; returns the revoked token hashes."""
        rows = await self._db.pool.fetch(
            "UPDATE sessions SET revoked_at = now()"
            " WHERE user_id = $1 AND revoked_at IS NULL AND token_hash IS DISTINCT FROM $2"
            " RETURNING token_hash",
            user_id,
            keep,
        )
        return [r["token_hash"] for r in rows]
