"""A broadcast carried from node to node: its rows, and the settings the handover tests
give their nodes."""

from __future__ import annotations

import asyncio
from typing import Any

from livecore.config import HlsConfig
from livecore.store import Database
from tests.chat.conftest import user
from tests.conftest import Client, bearer, create_stream

HLS = {"hls": HlsConfig(renditions=("source",))}


async def broadcasts(db: Database, stream_id: int) -> list[dict[str, Any]]:
    rows = await db.pool.fetch(
        "SELECT id, node_id, continuations, ended_at IS NULL AS open FROM broadcasts"
        " WHERE stream_id = $1 ORDER BY id",
        stream_id,
    )
    return [dict(r) for r in rows]


async def carried_by(db: Database, stream_id: int, node_id: str) -> None:
    """Wait (30 s at most) until the stream's open broadcast names `node_id`: the database is
    written a moment after the hub opens and the directory names the node."""
    async with asyncio.timeout(30):
        while True:
            rows = await broadcasts(db, stream_id)
            if any(b["open"] and b["node_id"] == node_id for b in rows):
                return
            await asyncio.sleep(0.05)


async def owned_stream(client: Client, slug: str) -> tuple[int, str, dict[str, str]]:
    """A creator's new stream: its id, its key, and the creator's Authorization."""
    owner = await user(client, slug, creator=True)
    key = await create_stream(client, owner["token"], slug)
    resp = await client.get(f"/api/v1/streams/{slug}")
    return int((await resp.json())["stream"]["id"]), key, bearer(owner["token"])
