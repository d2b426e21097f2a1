"""Rows the stream tests start from, written straight into the test database."""

from __future__ import annotations

import asyncpg


async def creator_stream(conn: asyncpg.Connection, slug: str, *, live: bool = False) -> int:
    """A stream of a creator (made on first use); returns the stream's id."""
    owner = await conn.fetchval("SELECT id FROM users WHERE email = 'creator@example.com'")
    if owner is None:
        owner = await conn.fetchval(
            "INSERT INTO users (email, display_name, password_hash, role)"
            " VALUES ('creator@example.com', 'Creator', 'x', 'creator') RETURNING id"
        )
    return int(
        await conn.fetchval(
            "INSERT INTO streams (owner_id, slug, state, started_at)"
            " VALUES ($1, $2, $3, CASE WHEN $3 = 'live' THEN now() END) RETURNING id",
            owner,
            slug,
            "live" if live else "offline",
        )
    )
