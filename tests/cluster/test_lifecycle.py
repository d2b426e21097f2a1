"""A broadcast's life across nodes at its edges: an account suspended or deleted while its
broadcast is between nodes ends it at once; a node started again under the same id ends the
broadcasts it still carries (at once after a crash, after the handover wait after a drain);
the admin view names a stream's owner only while an older node yields it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from livecore.appkeys import AUDIT, BUS, DB, DRAIN, RECORDINGS
from livecore.cluster.reaper import Reaper
from livecore.cluster.redis_directory import PREFIX
from livecore.cluster.routes import DIRECTORY
from livecore.config import Config
from livecore.store import Database
from tests.admin.accounts import admin, suspend
from tests.chat.conftest import Viewer, connect
from tests.cluster.conftest import FAST, Node, creator_stream
from tests.cluster.serve import NODE_A, Services, not_ready, served_node
from tests.conftest import PASSWORD, wait_state
from tests.streams.test_end_now import listed_recording
from tests.support import media
from tests.support.handover import HLS, broadcasts, carried_by, owned_stream
from tests.support.live_hls import PLAYLIST, playlist_with_segment
from tests.support.rtc import Publication, publish


@pytest.mark.parametrize("act", ["suspension", "deletion"])
async def test_a_suspension_or_deletion_while_a_broadcast_is_between_nodes_ends_it_at_once(
    node: Node, redis_url: str, db: Database, act: str
) -> None:
    # A handover wait far longer than the test: only the act can close the broadcast.
    a, b = [await node(name, redis_url, changes=HLS, handover_s=600.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    a_url = f"http://127.0.0.1:{a.server.port}"
    stream_id, key, owner = await owned_stream(b, "cooking")
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

            if act == "suspension":
                status, body = await suspend(b, root["token"], owner_id, "spam")
                assert status in (200, 201), body
                ended_by = "platform"
            else:
                resp = await b.delete("/api/v1/me", json={"password": PASSWORD}, headers=owner)
                assert resp.status == 200, await resp.text()
                ended_by = "owner"
            # Ended when the act is answered, not after the handover wait.
            assert await broadcasts(db, stream_id) == [{**first, "open": False}]
            for viewer in viewers:
                said = await viewer.wait_for(
                    lambda e: e["type"] == "stream_state" and e.get("ended_by") == ended_by, 30
                )
                assert said["state"] == "offline"
            state = await db.pool.fetchval("SELECT state FROM streams WHERE id = $1", stream_id)
            assert state == "offline"
            if act == "suspension":  # a deleted account's streams are no longer shown
                for n in (a, b):
                    await wait_state(n, "cooking", "offline")
                recording = await listed_recording(b, "cooking")
                assert recording["id"] == first["id"]
        finally:
            for viewer in viewers:
                await viewer.close()
            await pub.close()


async def test_a_node_started_again_quickly_after_a_crash_ends_what_it_carried(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    """Node A (a real `livecore serve`) is killed and started again under the same id
    before the survivors' wait is over (far longer than the test here): it ends the
    broadcast its row still names as it starts, and viewers on every node are told."""
    b = await node("node-b", redis_url, changes=HLS, handover_s=600.0, **FAST)
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    viewers: list[Viewer] = []
    async with aiohttp.ClientSession() as http:
        async with served_node("node-a", tmp_path, services, node=NODE_A) as a:
            pub = await publish(http, f"{a.url}/whip/cooking", key, media.clip())
            try:
                await wait_state(b, "cooking", "live")
                await carried_by(db, stream_id, "node-a")
                viewers.append(await connect(b, "cooking"))
                await a.kill_hard()
            finally:
                await pub.close()
        [first] = await broadcasts(db, stream_id)
        assert first["open"]
        try:
            async with served_node("node-a", tmp_path, services, node=NODE_A):
                said = await viewers[0].wait_for(
                    lambda e: e["type"] == "stream_state" and e["state"] == "offline", 30
                )
                assert "ended_by" not in said
                assert await broadcasts(db, stream_id) == [{**first, "open": False}]
                await wait_state(b, "cooking", "offline")
                audited = await db.pool.fetch(
                    "SELECT details FROM audit_log WHERE action = 'broadcast.node_lost'"
                )
                assert [json.loads(r["details"]) for r in audited] == [
                    {"stream_id": stream_id, "node_id": "node-a", "restarted": True}
                ]
        finally:
            for viewer in viewers:
                await viewer.close()


async def test_a_drained_node_started_again_quickly_leaves_its_broadcast_to_the_next_node(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    """Node A drains (SIGTERM), its publisher leaves it, it exits and is started again
    under the same id before the handover wait is over: the broadcast stays open, and the
    publisher reconnecting to B continues it there (A being alive again does not make it a
    new broadcast)."""
    b = await node("node-b", redis_url, changes=HLS, handover_s=60.0, **FAST)
    b_url = f"http://127.0.0.1:{b.server.port}"
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    settings = {**NODE_A, "drain_grace_s": "120", "handover_s": "600"}
    async with aiohttp.ClientSession() as http:
        pubs = [await publish_when_served(http, tmp_path, services, settings, key)]
        try:
            [first] = await broadcasts(db, stream_id)
            assert first["open"] and first["node_id"] == "node-a"
            async with served_node("node-a", tmp_path, services, node=settings):
                # Started again: the broadcast left for a handover is still open.
                assert await broadcasts(db, stream_id) == [first]
                pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
                await carried_by(db, stream_id, "node-b")
                assert await broadcasts(db, stream_id) == [
                    {"id": first["id"], "node_id": "node-b", "continuations": 1, "open": True}
                ]
                await wait_state(b, "cooking", "live")
        finally:
            for pub in pubs:
                await pub.close()


async def publish_when_served(
    http: aiohttp.ClientSession, tmp: Path, services: Services, settings: dict[str, str],
    key: str,
) -> Publication:  # fmt: skip
    """Publish on node A, drain it (SIGTERM), and let the publisher leave it: A exits by
    itself, the broadcast left open for a handover. Returns the (closed) publication."""
    async with served_node("node-a", tmp, services, node=settings) as a:
        pub = await publish(http, f"{a.url}/whip/cooking", key, media.clip())
        try:
            await playlist_with_segment(http, a.url + PLAYLIST)
            a.terminate()
            await not_ready(http, a)
        finally:
            await pub.close()
        assert await a.exited() == 0, a.log()
    return pub


async def test_a_broadcast_left_for_a_handover_is_ended_by_its_node_when_the_wait_is_over(
    node: Node, redis_url: str, db: Database
) -> None:
    """Node A drained and its publisher left without reconnecting anywhere; A, started again
    within the wait (its start rule run here on A's own parts), leaves the broadcast open
    until the wait noted in the directory is over, then ends it: viewers on every node are
    told, as when a survivor ends a dead node's broadcast."""
    a, b = [await node(name, redis_url, changes=HLS, handover_s=600.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    a_url = f"http://127.0.0.1:{a.server.port}"
    stream_id, key, _ = await owned_stream(b, "cooking")
    async with aiohttp.ClientSession() as http:
        pub = await publish(http, f"{a_url}/whip/cooking", key, media.clip())
        try:
            await wait_state(b, "cooking", "live")
            viewer = await connect(b, "cooking")
            await playlist_with_segment(http, a_url + PLAYLIST)
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            async with http.delete(a_url + pub.location) as resp:
                assert resp.status == 200
            await drained
        finally:
            await pub.close()
    [first] = await broadcasts(db, stream_id)
    assert first["open"] and first["node_id"] == "node-a"
    # The wait A noted as it drained, shortened: the test does not wait out handover_s.
    redis = aioredis.Redis.from_url(redis_url)
    try:
        assert await redis.pexpire(f"{PREFIX}handover:node-a", 3000)
    finally:
        await redis.aclose()
    reaper = Reaper(
        a.app[DB], a.app[DIRECTORY], a.app[BUS], a.app[AUDIT], a.app[RECORDINGS],
        interval_s=1.0, handover_s=600.0, on_change=lambda: None,
    )  # fmt: skip
    try:
        waiting = await reaper.after_start()
        assert waiting is not None
        assert await broadcasts(db, stream_id) == [first]  # left open for the wait
        assert await waiting == 1
        assert await broadcasts(db, stream_id) == [{**first, "open": False}]
        said = await viewer.wait_for(
            lambda e: e["type"] == "stream_state" and e["state"] == "offline", 30
        )
        assert "ended_by" not in said
        await wait_state(b, "cooking", "offline")
    finally:
        await viewer.close()
