"""The live-stream listing carries each stream's viewer count, summed across nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.chat.conftest import connect, stream, user
from tests.conftest import Client


async def _viewers(client: Client, slug: str, want: int) -> None:
    """Wait until the listing (cached for a second) shows `want` viewers of `slug`."""
    seen: Any = None
    try:
        async with asyncio.timeout(10):
            while True:
                body = await (await client.get("/api/v1/streams?state=live")).json()
                seen = {s["slug"]: s["viewers"] for s in body["streams"]}
                if seen.get(slug) == want:
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"wanted {want} viewers of {slug}, the listing said {seen}") from None


async def test_live_listing_counts_the_chat_viewers_of_every_node(
    node_a: Client, node_b: Client, dsn: str
) -> None:
    owner = await user(node_a, "Host", creator=True)
    await stream(node_a, owner["token"], "room-one")
    await stream(node_a, owner["token"], "room-two")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE streams SET state = 'live', started_at = now()")
    finally:
        await conn.close()
    await _viewers(node_a, "room-one", 0)
    on_a = [await connect(node_a, "room-one") for _ in range(2)]
    on_b = await connect(node_b, "room-one")
    other = await connect(node_b, "room-two")
    try:
        await _viewers(node_a, "room-one", 3)
        await _viewers(node_b, "room-one", 3)
        await _viewers(node_a, "room-two", 1)
        await on_a[0].close()
        await _viewers(node_b, "room-one", 2)
    finally:
        for viewer in (*on_a, on_b, other):
            await viewer.close()
    await _viewers(node_a, "room-one", 0)
