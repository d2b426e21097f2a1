"""The append-only audit log of security- and moderation-relevant actions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from livecore.store.admin_users import like_anywhere
from livecore.store.db import Database

JsonValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: int | None
    actor_name: str | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    user_name: str | None  # the user acted on (a target user, or details.user_id)


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        action: str,
        target_type: str,
        target_id: str | int,
        *,
        actor_id: int | None = None,
        details: Mapping[str, JsonValue] | None = None,
        client_ip: str = "",
    ) -> None:
        await self._db.pool.execute(
            "INSERT INTO audit_log (actor_id, action, target_type, target_id, details, client_ip)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            actor_id,
            action,
            target_type,
            str(target_id),
            json.dumps(dict(details or {})),
            client_ip,
        )

    async def actions_for(self, target_type: str, target_id: str | int) -> list[str]:
        rows = await self._db.pool.fetch(
            "SELECT action FROM audit_log WHERE target_type = $1 AND target_id = $2 ORDER BY id",
            target_type,
            str(target_id),
        )
        return [r["action"] for r in rows]

    async def for_stream(
        self, stream_id: int, *, before_id: int | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """What was done to a stream, newest first: the stream itself, chat actions on its
        users (details.stream_id) and its recordings (target 'broadcast')."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM audit_log a {_JOINS}"
            " WHERE ((a.target_type = 'stream' AND a.target_id = $1)"
            " OR a.details->>'stream_id' = $1"
            " OR (a.target_type = 'broadcast' AND a.target_id IN"
            "  (SELECT id::text FROM broadcasts WHERE stream_id = $2)))"
            " AND ($3::bigint IS NULL OR a.id < $3)"
            " ORDER BY a.id DESC LIMIT $4",
            str(stream_id), stream_id, before_id, limit,
        )  # fmt: skip
        return [_entry(r) for r in rows]

    async def search(self, where: AuditFilter, limit: int) -> list[AuditEntry]:
        """Entries matching every given filter, newest first, at most `limit`."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM audit_log a {_JOINS}"
            " WHERE ($1::bigint IS NULL OR a.actor_id = $1)"
            " AND ($2::text IS NULL OR lower(u.email) LIKE $2 OR lower(u.display_name) LIKE $2)"
            " AND ($3::text IS NULL OR a.action = $3)"
            " AND ($4::text IS NULL OR starts_with(a.action, $4))"
            " AND ($5::text IS NULL OR a.target_type = $5)"
            " AND ($6::text IS NULL OR a.target_id = $6)"
            " AND ($7::timestamptz IS NULL OR a.at >= $7)"
            " AND ($8::timestamptz IS NULL OR a.at < $8)"
            " AND ($9::bigint IS NULL OR a.id < $9)"
            " ORDER BY a.id DESC LIMIT $10",
            where.actor_id, like_anywhere(where.actor_text) if where.actor_text else None,
            where.action, where.action_prefix, where.target_type, where.target_id,
            where.since, where.until, where.before_id, limit,
        )  # fmt: skip
        return [_entry(r) for r in rows]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What GET /api/v1/admin/audit narrows the log to; None is no filter."""

    actor_id: int | None = None
    actor_text: str | None = None  # part of the actor's e-mail or display name, any case
    action: str | None = None
    action_prefix: str | None = None  # a family of actions: "user." or "stream."
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    before_id: int | None = None  # the page before this entry


_COLUMNS = (
    "a.id, a.at, a.actor_id, u.display_name AS actor_name, a.action,"
    " a.target_type, a.target_id, a.details, t.display_name AS user_name"
)
# The actor, and the user acted on (a target user, or details.user_id), each looked up by
# primary key; the CASE casts only digits.
_JOINS = (
    "LEFT JOIN users u ON u.id = a.actor_id"
    " LEFT JOIN LATERAL (SELECT CASE WHEN a.target_type = 'user' THEN a.target_id"
    "  ELSE a.details->>'user_id' END AS uid) x ON true"
    " LEFT JOIN users t ON t.id = CASE WHEN x.uid ~ '^[0-9]{1,18}$' THEN x.uid::bigint END"
)


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        r["id"], r["at"], r["actor_id"], r["actor_name"], r["action"], r["target_type"],
        r["target_id"], json.loads(r["details"]), r["user_name"],
    )  # fmt: skip
