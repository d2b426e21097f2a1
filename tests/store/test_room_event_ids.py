from __future__ import annotations

import asyncio

from livecore.store import Database
from livecore.store.chat import ChatStore


async def _stream(db: Database) -> int:
    owner = await db.pool.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role)"
        " VALUES ('o@example.com', 'x', 'O', 'creator') RETURNING id"
    )
    return int(
        await db.pool.fetchval(
            "INSERT INTO streams (owner_id, slug) VALUES ($1, 'ids') RETURNING id", owner
        )
    )


async def test_blocks_start_above_stored_lines_and_never_overlap(db: Database) -> None:
    store = ChatStore(db)
    stream_id = await _stream(db)
    # A room that numbered its lines before blocks existed.
    await db.pool.execute(
        "INSERT INTO chat_messages (stream_id, id, text) VALUES ($1, 41, 'old')", stream_id
    )
    first = await store.reserve_event_ids(stream_id, 10)
    assert first == 51  # ids 42..51
    lasts = await asyncio.gather(*(store.reserve_event_ids(stream_id, 10) for _ in range(5)))
    assert sorted(lasts) == [61, 71, 81, 91, 101]  # concurrent reservations never overlap
