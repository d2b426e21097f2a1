"""A broadcast's life across nodes at its edges: an account suspended or deleted while its
broadcast is between nodes ends it at once; a node started again under the same id ends the
broadcasts it still carries (at once after a crash, after the handover wait after a drain);
the admin view names a stream's owner only while an older node yields it."""

from __future__ import annotations

import asyncio

import aiohttp

from livecore.appkeys import DRAIN
from livecore.store import Database
from tests.admin.accounts import admin, suspend
from tests.chat.conftest import Viewer, connect
from tests.cluster.conftest import FAST, Node
from tests.cluster.test_drain import (
    HLS,
    PLAYLIST,
    broadcasts,
    not_ready,
    owned_stream,
    playlist_with_segment,
)
from tests.conftest import wait_state
from tests.streams.test_end_now import listed_recording
from tests.support import media
from tests.support.rtc import publish


async def test_a_suspension_while_a_broadcast_is_between_nodes_ends_it_at_once(
    node: Node, redis_url: str, db: Database
) -> None:
    # A handover wait far longer than the test: only the suspension can close the broadcast.
    a, b = [await node(name, redis_url, changes=HLS, handover_s=600.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    a_url = f"http://127.0.0.1:{a.server.port}"
    stream_id, key, _ = await owned_stream(b, "cooking")
    owner_id = await db.pool.fetchval("SELECT owner_id FROM streams WHERE id = $1", stream_id)
    root = await admin(b, db)
    viewers: list[Viewer] = []
    async with aiohttp.ClientSession() as http:
        pub = await publish(http, f"{a_url}/whip/cooking", key, media.clip())
        try:
            await wait_state(b, "cooking", "live")
            viewers += [await connect(n, "cooking") for n in (a, b)]
            await playlist_with_segment(http, a_url + PLAYLIST)
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            # The publisher leaves draining A to reconnect elsewhere: between nodes now.
            async with http.delete(a_url + pub.location) as resp:
                assert resp.status == 200
            await pub.close()
            await drained
            [first] = await broadcasts(db, stream_id)
            assert first["open"] and first["node_id"] == "node-a"

            status, body = await suspend(b, root["token"], owner_id, "spam")
            assert status in (200, 201), body
            # Ended when the suspension is answered, not after the handover wait.
            assert await broadcasts(db, stream_id) == [{**first, "open": False}]
            for viewer in viewers:
                said = await viewer.wait_for(
                    lambda e: e["type"] == "stream_state" and e.get("ended_by") == "platform", 30
                )
                assert said["state"] == "offline"
            for n in (a, b):
                await wait_state(n, "cooking", "offline")
            recording = await listed_recording(b, "cooking")
            assert recording["id"] == first["id"]
        finally:
            for viewer in viewers:
                await viewer.close()
            await pub.close()
