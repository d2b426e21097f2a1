"""Chat rooms' settings, bans and timeouts, stored messages and the reports queue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from livecore.store.db import Database, unique_violation


@dataclass(frozen=True, slots=True)
class RoomSettings:
    slow_mode_s: int = 0
    subscribers_only: bool = False
    links_allowed: bool = False
    banned_terms: tuple[str, ...] = ()
    max_length: int = 500


@dataclass(frozen=True, slots=True)
class Ban:
    user_id: int
    until: datetime | None  # None: banned until unbanned


@dataclass(frozen=True, slots=True)
class BanEntry:
    """A ban or timeout in force, as moderators list them."""

    user_id: int
    user_name: str
    until: datetime | None
    reason: str
    by_name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    user_id: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    message_id: int
    reporter_id: int
    reason: str
    state: str
    text: str | None
    author_id: int | None
    created_at: datetime


def _settings(row: asyncpg.Record | None) -> RoomSettings:
    if row is None:
        return RoomSettings()
    return RoomSettings(
        row["slow_mode_s"], row["subscribers_only"], row["links_allowed"],
        tuple(row["banned_terms"]), row["max_length"],
    )  # fmt: skip


class ChatStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._reading: dict[int, asyncio.Future[RoomSettings]] = {}

    async def settings(self, stream_id: int) -> RoomSettings:
        # Concurrent reads of one stream's settings (a burst of tips to it) share one query.
        pending = self._reading.get(stream_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read_settings(stream_id))
            self._reading[stream_id] = pending
            pending.add_done_callback(lambda _: self._reading.pop(stream_id, None))
        return await asyncio.shield(pending)

    async def _read_settings(self, stream_id: int) -> RoomSettings:
        row = await self._db.pool.fetchrow(
            "SELECT * FROM chat_settings WHERE stream_id = $1", stream_id
        )
        return _settings(row)

    async def save_settings(self, stream_id: int, s: RoomSettings) -> RoomSettings:
        row = await self._db.pool.fetchrow(
            "INSERT INTO chat_settings (stream_id, slow_mode_s, subscribers_only, links_allowed,"
            " banned_terms, max_length) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (stream_id) DO UPDATE SET slow_mode_s = $2, subscribers_only = $3,"
            " links_allowed = $4, banned_terms = $5, max_length = $6, updated_at = now()"
            " RETURNING *",
            stream_id, s.slow_mode_s, s.subscribers_only, s.links_allowed,
            list(s.banned_terms), s.max_length,
        )  # fmt: skip
        return _settings(row)

    async def active_bans(self, stream_id: int) -> list[Ban]:
        rows = await self._db.pool.fetch(
            "SELECT user_id, until FROM chat_bans WHERE stream_id = $1"
            " AND (until IS NULL OR until > now())",
            stream_id,
        )
        return [Ban(r["user_id"], r["until"]) for r in rows]

    async def ban_list(self, stream_id: int) -> list[BanEntry]:
        """Bans and timeouts in force, newest first, with who they are and who set them."""
        rows = await self._db.pool.fetch(
            "SELECT b.user_id, u.display_name AS user_name, b.until, b.reason,"
            " m.display_name AS by_name, b.created_at FROM chat_bans b"
            " JOIN users u ON u.id = b.user_id LEFT JOIN users m ON m.id = b.by_user"
            " WHERE b.stream_id = $1 AND (b.until IS NULL OR b.until > now())"
            " ORDER BY b.created_at DESC, b.user_id",
            stream_id,
        )
        return [
            BanEntry(
                r["user_id"], r["user_name"], r["until"], r["reason"], r["by_name"], r["created_at"]
            )
            for r in rows
        ]

    async def ban(
        self, stream_id: int, user_id: int, *, seconds: int | None, reason: str, by: int
    ) -> Ban | None:
        """Ban (seconds None) or time out a user; replaces an earlier ban or timeout. None
        when there is no such user (read in the same statement: no foreign-key error)."""
        row = await self._db.pool.fetchrow(
            "INSERT INTO chat_bans (stream_id, user_id, until, reason, by_user)"
            " SELECT $1, id, CASE WHEN $3::int IS NULL THEN NULL"
            " ELSE now() + make_interval(secs => $3::int) END, $4, $5 FROM users WHERE id = $2"
            " ON CONFLICT (stream_id, user_id) DO UPDATE SET until = EXCLUDED.until,"
            " reason = EXCLUDED.reason, by_user = EXCLUDED.by_user, created_at = now()"
            " RETURNING user_id, until",
            stream_id, user_id, seconds, reason, by,
        )  # fmt: skip
        return Ban(row["user_id"], row["until"]) if row is not None else None

    async def unban(self, stream_id: int, user_id: int) -> bool:
        status = await self._db.pool.execute(
            "DELETE FROM chat_bans WHERE stream_id = $1 AND user_id = $2", stream_id, user_id
        )
        return status.endswith(" 1")

    async def save_messages(
        self, rows: Sequence[tuple[int, int, int | None, str, str]]
    ) -> set[tuple[int, int]]:
        """Store (stream id, event id, user id, text, event body) rows in one round trip;
        returns the (stream id, event id) of those stored.

        A row is not stored when its stream is gone or its id is taken already (ids are never
        given twice, so that is a fault): the caller learns which and says so. A sender whose
        account was deleted meanwhile is stored without it, as the table's foreign key would.
        """
        stored = await self._db.pool.fetch(
            "INSERT INTO chat_messages (stream_id, id, user_id, text, body)"
            " SELECT r.stream_id, r.id, u.id, r.text, r.body"
            " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])"
            "  AS r (stream_id, id, user_id, text, body)"
            " JOIN streams s ON s.id = r.stream_id"
            " LEFT JOIN users u ON u.id = r.user_id"
            " ON CONFLICT DO NOTHING RETURNING stream_id, id",
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            [r[3] for r in rows], [r[4] for r in rows],
        )  # fmt: skip
        return {(r["stream_id"], r["id"]) for r in stored}

    async def recent_lines(self, stream_id: int, limit: int) -> list[bytes]:
        """The room's last stored chat lines (not deleted) as viewers got them, oldest first."""
        rows = await self._db.pool.fetch(
            "SELECT body FROM (SELECT id, body FROM chat_messages WHERE stream_id = $1"
            " AND deleted_at IS NULL AND body IS NOT NULL ORDER BY id DESC LIMIT $2) recent"
            " ORDER BY id",
            stream_id,
            limit,
        )
        return [r["body"].encode() for r in rows]

    async def reserve_event_ids(self, stream_id: int, count: int) -> int:
        """Reserve the room's next `count` event ids; returns the highest of them.

        The first block starts above every line already stored (rooms that numbered their
        events before blocks existed), each later one above the one before.
        """
        reserved = await self._db.pool.fetchval(
            "INSERT INTO room_event_ids AS r (stream_id, reserved)"
            " SELECT $1, coalesce(max(id), 0) + $2 FROM chat_messages WHERE stream_id = $1"
            " ON CONFLICT (stream_id) DO UPDATE SET reserved = r.reserved + $2"
            " RETURNING reserved",
            stream_id,
            count,
        )
        return int(reserved)

    async def message(self, stream_id: int, message_id: int) -> StoredMessage | None:
        row = await self._db.pool.fetchrow(
            "SELECT id, user_id, text FROM chat_messages WHERE stream_id = $1 AND id = $2"
            " AND deleted_at IS NULL",
            stream_id,
            message_id,
        )
        return StoredMessage(row["id"], row["user_id"], row["text"]) if row else None

    async def mark_deleted(self, stream_id: int, message_id: int) -> None:
        await self._db.pool.execute(
            "UPDATE chat_messages SET deleted_at = now() WHERE stream_id = $1 AND id = $2",
            stream_id,
            message_id,
        )

    async def report(self, stream_id: int, message_id: int, reporter_id: int, reason: str) -> int:
        """File a report; raises UniqueViolation when this user reported it already."""
        with unique_violation():
            report_id = await self._db.pool.fetchval(
                "INSERT INTO chat_reports (stream_id, message_id, reporter_id, reason)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                stream_id, message_id, reporter_id, reason,
            )  # fmt: skip
        return int(report_id)

    async def reports(self, stream_id: int, *, state: str = "open") -> list[Report]:
        rows = await self._db.pool.fetch(
            "SELECT r.id, r.message_id, r.reporter_id, r.reason, r.state, r.created_at,"
            " m.text, m.user_id AS author_id FROM chat_reports r"
            " LEFT JOIN chat_messages m ON m.stream_id = r.stream_id AND m.id = r.message_id"
            " WHERE r.stream_id = $1 AND r.state = $2 ORDER BY r.created_at LIMIT 200",
            stream_id,
            state,
        )
        return [
            Report(r["id"], r["message_id"], r["reporter_id"], r["reason"], r["state"],
                   r["text"], r["author_id"], r["created_at"])
            for r in rows
        ]  # fmt: skip

    async def resolve_report(self, stream_id: int, report_id: int, *, state: str, by: int) -> bool:
        status = await self._db.pool.execute(
            "UPDATE chat_reports SET state = $3, resolved_by = $4, resolved_at = now()"
            " WHERE stream_id = $1 AND id = $2 AND state = 'open'",
            stream_id, report_id, state, by,
        )  # fmt: skip
        return status.endswith(" 1")
