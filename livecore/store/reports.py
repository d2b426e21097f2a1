"""Platform reports and screening flags, their targets' context, and users' notifications."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from livecore.store.db import Database, unique_violation


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    reporter_id: int | None  # None: raised by the screening hook
    target_kind: str
    target_id: str
    stream_id: int | None
    subject_id: int | None
    category: str
    note: str
    score: float | None
    state: str
    outcome: str | None
    created_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Target:
    """What a report points at, as found when it is filed."""

    stream_id: int | None
    subject_id: int | None


@dataclass(frozen=True, slots=True)
class Line:
    id: int
    user_id: int | None
    text: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class StreamFacts:
    id: int
    slug: str
    title: str
    owner_id: int
    state: str


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    kind: str
    body: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChatLineReport:
    """A report filed through the chat moderation API (chat_reports)."""

    id: int
    message_id: int
    reporter_id: int
    reason: str
    state: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QueueFilter:
    state: str | None = "open"
    category: str | None = None
    target_kind: str | None = None
    min_age_s: int | None = None  # filed at least this long ago
    max_age_s: int | None = None  # filed at most this long ago
    limit: int = 100


_COLUMNS = (
    "id, reporter_id, target_kind, target_id, stream_id, subject_id, category, note, score,"
    " state, outcome, created_at, closed_at"
)


def _report(r: asyncpg.Record) -> Report:
    return Report(
        r["id"], r["reporter_id"], r["target_kind"], r["target_id"], r["stream_id"],
        r["subject_id"], r["category"], r["note"], r["score"], r["state"], r["outcome"],
        r["created_at"], r["closed_at"],
    )  # fmt: skip


class Reports:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- targets --------------------------------------------------------------------------------

    async def stream(self, stream_id: int) -> StreamFacts | None:
        row = await self._db.pool.fetchrow(
            "SELECT id, slug, title, owner_id, state FROM streams WHERE id = $1", stream_id
        )
        if row is None:
            return None
        return StreamFacts(row["id"], row["slug"], row["title"], row["owner_id"], row["state"])

    async def user_exists(self, user_id: int) -> bool:
        return bool(await self._db.pool.fetchval("SELECT 1 FROM users WHERE id = $1", user_id))

    async def recording_stream(self, broadcast_id: int) -> int | None:
        """The stream of a kept (not taken down) recording."""
        found: int | None = await self._db.pool.fetchval(
            "SELECT stream_id FROM broadcasts WHERE id = $1 AND ended_at IS NOT NULL"
            " AND recording_path <> '' AND recording_deleted_at IS NULL",
            broadcast_id,
        )
        return found

    async def line(self, stream_id: int, line_id: int) -> Line | None:
        row = await self._db.pool.fetchrow(
            "SELECT id, user_id, text, deleted_at IS NOT NULL AS deleted FROM chat_messages"
            " WHERE stream_id = $1 AND id = $2",
            stream_id,
            line_id,
        )
        return Line(row["id"], row["user_id"], row["text"], row["deleted"]) if row else None

    async def lines_around(self, stream_id: int, line_id: int, each_side: int) -> list[Line]:
        """The line and up to `each_side` stored lines before and after it, oldest first."""
        rows = await self._db.pool.fetch(
            "(SELECT id, user_id, text, deleted_at IS NOT NULL AS deleted FROM chat_messages"
            "  WHERE stream_id = $1 AND id <= $2 ORDER BY id DESC LIMIT $3 + 1)"
            " UNION ALL (SELECT id, user_id, text, deleted_at IS NOT NULL FROM chat_messages"
            "  WHERE stream_id = $1 AND id > $2 ORDER BY id LIMIT $3) ORDER BY id",
            stream_id, line_id, each_side,
        )  # fmt: skip
        return [Line(r["id"], r["user_id"], r["text"], r["deleted"]) for r in rows]

    async def recent_lines(self, stream_id: int, limit: int) -> list[Line]:
        rows = await self._db.pool.fetch(
            "SELECT * FROM (SELECT id, user_id, text, false AS deleted FROM chat_messages"
            " WHERE stream_id = $1 AND deleted_at IS NULL ORDER BY id DESC LIMIT $2) r ORDER BY id",
            stream_id,
            limit,
        )
        return [Line(r["id"], r["user_id"], r["text"], r["deleted"]) for r in rows]

    # -- reports --------------------------------------------------------------------------------

    async def create(
        self,
        reporter_id: int | None,
        kind: str,
        target_id: str,
        target: Target,
        category: str,
        note: str,
        score: float | None = None,
    ) -> Report:
        """File a report; raises UniqueViolation when the reporter has one open on the target."""
        with unique_violation():
            row = await self._db.pool.fetchrow(
                "INSERT INTO reports (reporter_id, target_kind, target_id, stream_id, subject_id,"
                " category, note, score) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                f" RETURNING {_COLUMNS}",
                reporter_id, kind, target_id, target.stream_id, target.subject_id,
                category, note, score,
            )  # fmt: skip
        assert row is not None
        return _report(row)

    async def has_open_flag(self, kind: str, target_id: str) -> bool:
        """Whether the screening hook has a flag waiting on this target."""
        return bool(
            await self._db.pool.fetchval(
                "SELECT 1 FROM reports WHERE target_kind = $1 AND target_id = $2"
                " AND state = 'open' AND reporter_id IS NULL LIMIT 1",
                kind,
                target_id,
            )
        )

    async def get(self, report_id: int) -> Report | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM reports WHERE id = $1", report_id
        )
        return _report(row) if row else None

    async def queue(self, f: QueueFilter) -> list[Report]:
        """Reports matching the filter, oldest first (the ones waiting longest lead)."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM reports WHERE ($1::text IS NULL OR state = $1)"
            " AND ($2::text IS NULL OR category = $2) AND ($3::text IS NULL OR target_kind = $3)"
            " AND ($4::int IS NULL OR created_at <= now() - make_interval(secs => $4::int))"
            " AND ($5::int IS NULL OR created_at >= now() - make_interval(secs => $5::int))"
            " ORDER BY created_at, id LIMIT $6",
            f.state, f.category, f.target_kind, f.min_age_s, f.max_age_s, f.limit,
        )  # fmt: skip
        return [_report(r) for r in rows]

    async def for_stream(self, stream_id: int, state: str, limit: int = 200) -> list[Report]:
        """Reports on a stream, its lines and its recordings, oldest first."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM reports WHERE stream_id = $1 AND state = $2"
            " AND target_kind <> 'user' ORDER BY created_at, id LIMIT $3",
            stream_id,
            state,
            limit,
        )
        return [_report(r) for r in rows]

    async def chat_line_reports(self, stream_id: int, state: str) -> list[ChatLineReport]:
        """Reports filed through the chat moderation API, for the same stream queue."""
        rows = await self._db.pool.fetch(
            "SELECT id, message_id, reporter_id, reason, state, created_at FROM chat_reports"
            " WHERE stream_id = $1 AND state = $2 ORDER BY created_at LIMIT 200",
            stream_id,
            state,
        )
        return [
            ChatLineReport(r["id"], r["message_id"], r["reporter_id"], r["reason"], r["state"],
                           r["created_at"])
            for r in rows
        ]  # fmt: skip

    async def about_subject(
        self, subject_id: int, *, except_id: int, limit: int = 20
    ) -> list[Report]:
        """Other reports about the same account, newest first."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM reports WHERE subject_id = $1 AND id <> $2"
            " ORDER BY created_at DESC, id DESC LIMIT $3",
            subject_id,
            except_id,
            limit,
        )
        return [_report(r) for r in rows]

    async def close_target(
        self, kind: str, target_id: str, *, state: str, outcome: str, by: int
    ) -> list[Report]:
        """Close every open report on a target (for a line, also those filed through the chat
        API) and notify each reporter, in one transaction; returns the reports closed here."""
        async with self._db.transaction() as conn:
            rows = await conn.fetch(
                "UPDATE reports SET state = $3, outcome = $4, closed_by = $5, closed_at = now()"
                " WHERE target_kind = $1 AND target_id = $2 AND state = 'open'"
                f" RETURNING {_COLUMNS}",
                kind, target_id, state, outcome, by,
            )  # fmt: skip
            closed = [_report(r) for r in rows]
            told = [
                (r.reporter_id, r.id, "user")
                for r in closed if r.reporter_id is not None
            ]  # fmt: skip
            if kind == "line":
                # The same line reported through the chat moderation API is decided with it.
                stream_id, line_id = target_id.split(":", 1)
                chat = await conn.fetch(
                    "UPDATE chat_reports SET state = $3, resolved_by = $4, resolved_at = now()"
                    " WHERE stream_id = $1 AND message_id = $2 AND state = 'open'"
                    " RETURNING id, reporter_id",
                    int(stream_id), int(line_id),
                    "dismissed" if state == "dismissed" else "resolved", by,
                )  # fmt: skip
                told += [(r["reporter_id"], r["id"], "chat") for r in chat]
            await conn.executemany(
                "INSERT INTO notifications (user_id, kind, body) VALUES ($1, 'report_closed', $2)",
                [
                    (user_id, json.dumps({
                        "report_id": report_id, "source": source, "target_kind": kind,
                        "target_id": target_id, "outcome": outcome,
                    }))
                    for user_id, report_id, source in told
                ],
            )  # fmt: skip
        return closed

    # -- notifications --------------------------------------------------------------------------

    async def notifications(
        self, user_id: int, *, unread_only: bool, limit: int = 100
    ) -> list[Notification]:
        rows = await self._db.pool.fetch(
            "SELECT id, kind, body, created_at, read_at FROM notifications WHERE user_id = $1"
            " AND (NOT $2 OR read_at IS NULL) ORDER BY id DESC LIMIT $3",
            user_id,
            unread_only,
            limit,
        )
        return [
            Notification(r["id"], r["kind"], json.loads(r["body"]), r["created_at"], r["read_at"])
            for r in rows
        ]

    async def mark_read(self, user_id: int, notification_id: int) -> bool:
        status = await self._db.pool.execute(
            "UPDATE notifications SET read_at = coalesce(read_at, now())"
            " WHERE user_id = $1 AND id = $2",
            user_id,
            notification_id,
        )
        return status.endswith(" 1")
