"""Streams, their hashed stream keys and their moderators."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from livecore.store.db import Database, unique_violation

Visibility = Literal["public", "subscribers"]
StreamState = Literal["offline", "live"]

_COLUMNS = (
    "s.id, s.slug, s.owner_id, s.title, s.visibility, s.state, s.started_at, s.ended_at,"
    " s.created_at, u.display_name AS owner_name"
)
# A deleted account's streams are found no more (livecore.store.data_rights).
_FROM = "FROM streams s JOIN users u ON u.id = s.owner_id AND u.deleted_at IS NULL"
# The CHECK on streams.slug (0001_init.sql), as Python matches it.
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,38}[a-z0-9]")


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape character `\\`) matching `text` anywhere, taken literally:
    a `%` or `_` someone searches for is that character, not a wildcard."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Stream:
    id: int
    slug: str
    owner_id: int
    owner_name: str
    title: str
    visibility: Visibility
    state: StreamState
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime


def _stream(row: asyncpg.Record) -> Stream:
    return Stream(
        id=row["id"],
        slug=row["slug"],
        owner_id=row["owner_id"],
        owner_name=row["owner_name"],
        title=row["title"],
        visibility=row["visibility"],
        state=row["state"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        created_at=row["created_at"],
    )


class Streams:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, owner_id: int, slug: str, title: str, visibility: Visibility, key_hash: bytes
    ) -> Stream:
        """Create a stream with its first key; raises UniqueViolation when the slug is taken."""
        async with self._db.transaction() as conn:
            with unique_violation():
                stream_id = await conn.fetchval(
                    "INSERT INTO streams (owner_id, slug, title, visibility)"
                    " VALUES ($1, $2, $3, $4) RETURNING id",
                    owner_id,
                    slug,
                    title,
                    visibility,
                )
            await conn.execute(
                "INSERT INTO stream_keys (stream_id, key_hash) VALUES ($1, $2)", stream_id, key_hash
            )
            row = await conn.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE s.id = $1", stream_id)
        assert row is not None
        return _stream(row)

    async def by_slug(self, slug: str) -> Stream | None:
        if not _SLUG.fullmatch(slug):
            # Not asked: no row can match, and text such as NUL fails inside PostgreSQL.
            return None
        row = await self._db.pool.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE s.slug = $1", slug)
        return _stream(row) if row else None

    async def find(
        self,
        *,
        state: StreamState | None = None,
        owner_id: int | None = None,
        search: str | None = None,
        limit: int = 100,
    ) -> list[Stream]:
        """Streams, most recently started first. `search`: text found (case-insensitively,
        literally) in the title, the slug or the owner's display name."""
        pattern = like_pattern(search) if search else None
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} {_FROM}"
            " WHERE ($1::text IS NULL OR s.state = $1) AND ($2::bigint IS NULL OR s.owner_id = $2)"
            " AND ($3::text IS NULL OR s.title ILIKE $3 ESCAPE '\\'"
            " OR s.slug ILIKE $3 ESCAPE '\\' OR u.display_name ILIKE $3 ESCAPE '\\')"
            " ORDER BY s.started_at DESC NULLS LAST, s.id DESC LIMIT $4",
            state,
            owner_id,
            pattern,
            limit,
        )
        return [_stream(r) for r in rows]

    async def update(
        self, stream_id: int, *, title: str | None = None, visibility: Visibility | None = None
    ) -> Stream | None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE streams SET title = coalesce($2, title),"
                " visibility = coalesce($3, visibility), updated_at = now() WHERE id = $1",
                stream_id,
                title,
                visibility,
            )
            row = await conn.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE s.id = $1", stream_id)
        return _stream(row) if row else None

    async def delete(self, stream_id: int) -> bool:
        """Delete an offline stream; False when it is live (or gone)."""
        status = await self._db.pool.execute(
            "DELETE FROM streams WHERE id = $1 AND state = 'offline'", stream_id
        )
        return status.endswith(" 1")

    async def rotate_key(self, stream_id: int, key_hash: bytes) -> None:
        """Revoke the current key and store a new one, atomically."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE stream_keys SET revoked_at = now()"
                " WHERE stream_id = $1 AND revoked_at IS NULL",
                stream_id,
            )
            await conn.execute(
                "INSERT INTO stream_keys (stream_id, key_hash) VALUES ($1, $2)", stream_id, key_hash
            )

    async def for_key(self, slug: str, key_hash: bytes) -> Stream | None:
        """The stream `slug` if `key_hash` is its current key (looked up by hash, not compared)."""
        if not _SLUG.fullmatch(slug):
            return None
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} {_FROM} JOIN stream_keys k ON k.stream_id = s.id"
            " WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND s.slug = $2",
            key_hash,
            slug,
        )
        return _stream(row) if row else None

    async def is_moderator(self, stream_id: int, user_id: int) -> bool:
        return bool(
            await self._db.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM stream_moderators"
                " WHERE stream_id = $1 AND user_id = $2)",
                stream_id,
                user_id,
            )
        )

    async def add_moderator(self, stream_id: int, user_id: int) -> None:
        await self._db.pool.execute(
            "INSERT INTO stream_moderators (stream_id, user_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            stream_id,
            user_id,
        )

    async def remove_moderator(self, stream_id: int, user_id: int) -> bool:
        status = await self._db.pool.execute(
            "DELETE FROM stream_moderators WHERE stream_id = $1 AND user_id = $2",
            stream_id,
            user_id,
        )
        return status.endswith(" 1")

    async def moderators(self, stream_id: int) -> list[int]:
        rows = await self._db.pool.fetch(
            "SELECT user_id FROM stream_moderators WHERE stream_id = $1 ORDER BY added_at",
            stream_id,
        )
        return [r["user_id"] for r in rows]
