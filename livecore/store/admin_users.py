"""What admins read and change of accounts: the user search and role changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from livecore.store.db import Database
from livecore.store.suspensions import IN_FORCE, Suspension
from livecore.store.users import Role, User, _user


class LastAdmin(Exception):
    """The change would leave the platform without an admin."""


@dataclass(frozen=True, slots=True)
class UserListing:
    user: User
    suspension: Suspension | None
    stream_count: int
    two_factor: bool  # TOTP enabled (enrolment confirmed)


def like_anywhere(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own wildcards taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class AdminUsers:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(self, query: str, limit: int = 50) -> list[UserListing]:
        """Accounts whose e-mail or display name contains `query` (any case), newest first;
        every account when `query` is empty."""
        rows = await self._db.pool.fetch(
            "SELECT u.id, u.email, u.display_name, u.role, u.created_at,"
            " (SELECT count(*) FROM streams st WHERE st.owner_id = u.id) AS stream_count,"
            " EXISTS (SELECT 1 FROM two_factor f WHERE f.user_id = u.id"
            "  AND f.enabled_at IS NOT NULL) AS two_factor,"
            " x.user_id AS suspended_id, x.reason, x.until, x.actor_id, x.created_at AS since"
            " FROM users u"
            f" LEFT JOIN user_suspensions x ON x.user_id = u.id AND {IN_FORCE}"
            " WHERE lower(u.email) LIKE $1 OR lower(u.display_name) LIKE $1"
            " ORDER BY u.id DESC LIMIT $2",
            like_anywhere(query),
            limit,
        )
        found = []
        for r in rows:
            suspension = None
            if r["suspended_id"] is not None:
                suspension = Suspension(r["id"], r["reason"], r["until"], r["actor_id"], r["since"])
            found.append(UserListing(_user(r), suspension, r["stream_count"], r["two_factor"]))
        return found

    async def set_role(self, user_id: int, role: Role) -> Role | None:
        """Give the user `role`; their role before, or None when there is no such user.

        Raises LastAdmin when the user is the only admin and would no longer be one. Every
        admin's row is locked first, so two admins demoting each other at once cannot both
        succeed and leave nobody."""
        async with self._db.transaction() as conn:
            admins = await conn.fetch(
                "SELECT id FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE"
            )
            before = await conn.fetchval("SELECT role FROM users WHERE id = $1 FOR UPDATE", user_id)
            if before is None:
                return None
            if before == "admin" and role != "admin" and len(admins) <= 1:
                raise LastAdmin()
            await conn.execute(
                "UPDATE users SET role = $2, updated_at = now() WHERE id = $1", user_id, role
            )
        return before  # type: ignore[no-any-return]

    async def live_streams_of(self, user_id: int) -> list[tuple[int, str]]:
        """(id, slug) of the user's streams that are live now."""
        rows = await self._db.pool.fetch(
            "SELECT id, slug FROM streams WHERE owner_id = $1 AND state = 'live' ORDER BY id",
            user_id,
        )
        return [(r["id"], r["slug"]) for r in rows]

    async def streams_of(self, user_id: int) -> list[OwnedStream]:
        rows = await self._db.pool.fetch(
            "SELECT id, slug, title, state, started_at FROM streams WHERE owner_id = $1"
            " ORDER BY id",
            user_id,
        )
        return [
            OwnedStream(r["id"], r["slug"], r["title"], r["state"], r["started_at"]) for r in rows
        ]

    async def tips_of(self, user_id: int, limit: int = 20) -> list[TipLine]:
        """The newest tips the user gave or received, with both people's names."""
        rows = await self._db.pool.fetch(
            "SELECT t.id, t.amount_minor, t.currency, t.status, t.created_at, t.viewer_id,"
            " v.display_name AS viewer_name, t.creator_id, c.display_name AS creator_name,"
            " s.slug FROM tips t LEFT JOIN users v ON v.id = t.viewer_id"
            " LEFT JOIN users c ON c.id = t.creator_id LEFT JOIN streams s ON s.id = t.stream_id"
            " WHERE t.viewer_id = $1 OR t.creator_id = $1 ORDER BY t.id DESC LIMIT $2",
            user_id,
            limit,
        )
        return [
            TipLine(
                r["id"], r["amount_minor"], r["currency"], r["status"], r["created_at"],
                r["viewer_id"], r["viewer_name"], r["creator_id"], r["creator_name"], r["slug"],
            )
            for r in rows
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class OwnedStream:
    id: int
    slug: str
    title: str
    state: str
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class TipLine:
    id: int
    amount_minor: int
    currency: str
    status: str
    created_at: datetime
    viewer_id: int
    viewer_name: str | None
    creator_id: int
    creator_name: str | None
    stream_slug: str | None
