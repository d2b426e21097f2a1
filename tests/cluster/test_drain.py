"""Drain and dead nodes, with node A a real `livecore serve` process (SIGTERM, kill -9) and
the other nodes in this process, all on one Redis and one PostgreSQL: a drained node's
publisher continues its broadcast on another node; a killed node's streams go offline
everywhere and their broadcasts are ended by exactly one survivor."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from livecore.appkeys import DRAIN, HLS_METRICS, HUBS
from livecore.cluster.node import NodeInfo
from livecore.cluster.redis_directory import PREFIX
from livecore.cluster.routes import DIRECTORY
from livecore.config import Config, ConfigError, NodeConfig, StorageConfig
from livecore.recordings.bucket import Bucket
from livecore.store import Database
from tests.chat.conftest import Viewer, connect
from tests.cluster.conftest import FAST, Node, creator_stream, owner_becomes
from tests.cluster.serve import NODE_A, Services, bucket_env, not_ready, served_node
from tests.conftest import Client, MakeClient, wait_state
from tests.streams.test_end_now import listed_recording, server_closed
from tests.support import media
from tests.support.handover import HLS, broadcasts, carried_by, owned_stream
from tests.support.live_hls import (
    PLAYLIST,
    get,
    keyframes_after_restart,
    playlist_with_segment,
    read_video,
)
from tests.support.media import hls_video_packets
from tests.support.rtc import Publication, publish


def blocking_reloads(client: Client) -> float:
    """How many blocking playlist reloads the node has started to hold."""
    for metric in client.app[HLS_METRICS].requests.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == {"kind": "blocking"}:
                return float(sample.value)
    return 0.0


async def next_part_served(http: aiohttp.ClientSession, url: str) -> None:
    """A blocking reload for the part the playlist hints at next answers with that part:
    the node still packages the stream."""
    _, playlist = await get(http, url)
    msn, index = map(int, re.findall(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)', playlist)[0])
    status, reloaded = await get(http, f"{url}?_HLS_msn={msn}&_HLS_part={index}")
    assert status == 200
    assert f'URI="part-{msn}-{index}.m4s"' in reloaded
    assert "#EXT-X-ENDLIST" not in reloaded


async def test_a_draining_node_hands_its_live_broadcast_to_the_node_its_publisher_moves_to(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    b = await node("node-b", redis_url, changes=HLS, handover_s=30.0, **FAST)
    stream_id, key = await creator_stream(b, "cooking")
    b_url = f"http://127.0.0.1:{b.server.port}"
    services = Services(dsn, redis_url, config.secret_key)
    async with (
        served_node("node-a", tmp_path, services, node={**NODE_A, "drain_grace_s": "120"}) as a,
        aiohttp.ClientSession() as http,
    ):
        pubs: list[Publication] = []
        try:
            pubs.append(await publish(http, f"{a.url}/whip/cooking", key, media.clip()))
            await wait_state(b, "cooking", "live")
            await owner_becomes(b, "cooking", NodeInfo("node-a", a.url))
            [first] = await broadcasts(db, stream_id)
            await playlist_with_segment(http, a.url + PLAYLIST)

            a.terminate()
            assert (await not_ready(http, a))["checks"]["node"] == "draining"
            [a_seen] = [n for n in await b.app[DIRECTORY].nodes() if n.node.id == "node-a"]
            assert a_seen.draining
            # New publishes go to B; the stream goes on on A meanwhile.
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
            post = http.post(f"{a.url}/whip/cooking", data="v=0\r\n", headers=headers,
                             allow_redirects=False)  # fmt: skip
            async with post as resp:
                assert resp.status == 307, await resp.text()
                location = resp.headers["Location"]
            assert location == f"{b_url}/whip/cooking"
            await next_part_served(http, a.url + PLAYLIST)

            # OBS drops its connection and publishes where it is sent.
            await pubs[0].close()
            pubs.append(await publish(http, location, key, media.clip()))
            await owner_becomes(b, "cooking", NodeInfo("node-b", b_url))
            # Its publisher gone, A has nothing left to serve: it exits by itself.
            assert await a.exited() == 0, a.log()

            # One broadcast, the same, carried by B now.
            await carried_by(db, stream_id, "node-b")
            assert await broadcasts(db, stream_id) == [
                {"id": first["id"], "node_id": "node-b", "continuations": 1, "open": True}
            ]
            await wait_state(b, "cooking", "live")
            playlist = await playlist_with_segment(http, b_url + PLAYLIST)
            assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in playlist
            seen = await asyncio.to_thread(hls_video_packets, b_url + PLAYLIST, 1.0)
            assert seen[0][1], "B's playlist starts at a keyframe"
        finally:
            for pub in pubs:
                await pub.close()
    await wait_state(b, "cooking", "offline")
    [ended] = await broadcasts(db, stream_id)
    assert ended["id"] == first["id"] and not ended["open"]


async def test_a_killed_nodes_streams_go_offline_everywhere_and_end_once(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    survivors: list[Client] = [
        await node(name, redis_url, changes=HLS, handover_s=0.5, **FAST)
        for name in ("node-b", "node-c")
    ]
    b = survivors[0]
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    async with (
        served_node("node-a", tmp_path, services, node=NODE_A) as a,
        aiohttp.ClientSession() as http,
    ):
        pub = await publish(http, f"{a.url}/whip/cooking", key, media.clip())
        try:
            await wait_state(b, "cooking", "live")
            viewers = [await connect(n, "cooking") for n in survivors]
            await a.kill_hard()
            for viewer in viewers:  # within the TTL and the handover wait (30 s at most)
                said = await viewer.wait_for(
                    lambda e: e["type"] == "stream_state" and e["state"] == "offline", 30
                )
                assert "ended_by" not in said
        finally:
            await pub.close()
    for survivor in survivors:
        await wait_state(survivor, "cooking", "offline")
    [ended] = await broadcasts(db, stream_id)
    assert not ended["open"] and ended["node_id"] == "node-a"
    audited = await db.pool.fetch(
        "SELECT details->>'node_id' AS node FROM audit_log WHERE action = 'broadcast.node_lost'"
    )
    assert [r["node"] for r in audited] == ["node-a"]


async def test_a_draining_node_with_nowhere_to_send_publishers_ends_its_streams_after_the_grace(
    make_client: MakeClient, redis_url: str, dsn: str, db: Database, config: Config,
    tmp_path: Path,
) -> None:  # fmt: skip
    helper = await make_client()  # not a node of the directory: reads the stream's state
    stream_id, key = await creator_stream(helper, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    async with (
        served_node("node-a", tmp_path, services, node={**NODE_A, "drain_grace_s": "2"}) as a,
        aiohttp.ClientSession() as http,
    ):
        pub = await publish(http, f"{a.url}/whip/cooking", key, media.clip())
        try:
            await wait_state(helper, "cooking", "live")
            a.terminate()
            await not_ready(http, a)
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
            async with http.post(f"{a.url}/whip/cooking", data="v=0\r\n", headers=headers) as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "5"
            # The publisher stays; the grace ends; the node ends the broadcast and exits.
            assert await a.exited() == 0, a.log()
        finally:
            await pub.close()
    await wait_state(helper, "cooking", "offline")
    [ended] = await broadcasts(db, stream_id)
    assert not ended["open"] and ended["node_id"] == "node-a"


async def test_a_second_sigterm_hands_the_broadcasts_left_to_the_node_their_publishers_reach(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    b = await node("node-b", redis_url, changes=HLS, handover_s=30.0, **FAST)
    stream_id, key = await creator_stream(b, "cooking")
    b_url = f"http://127.0.0.1:{b.server.port}"
    services = Services(dsn, redis_url, config.secret_key)
    async with (
        served_node("node-a", tmp_path, services, node={**NODE_A, "drain_grace_s": "120"}) as a,
        aiohttp.ClientSession() as http,
    ):
        pubs = [await publish(http, f"{a.url}/whip/cooking", key, media.clip())]
        try:
            await wait_state(b, "cooking", "live")
            viewer = await connect(b, "cooking")
            [first] = await broadcasts(db, stream_id)
            await playlist_with_segment(http, a.url + PLAYLIST)
            a.terminate()
            await not_ready(http, a)
            # The publisher stays; a second SIGTERM closes its session and the node exits.
            a.terminate()
            assert await a.exited() == 0, a.log()
            # Its connection gone, the publisher reaches B (a load balancer's choice now).
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await owner_becomes(b, "cooking", NodeInfo("node-b", b_url))
            await carried_by(db, stream_id, "node-b")
            assert await broadcasts(db, stream_id) == [
                {"id": first["id"], "node_id": "node-b", "continuations": 1, "open": True}
            ]
            playlist = await playlist_with_segment(http, b_url + PLAYLIST)
            assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in playlist
            await wait_state(b, "cooking", "live")
            # A told viewers nothing as it went: for them the broadcast never stopped.
            assert "offline" not in [e["state"] for e in viewer.of("stream_state")]
        finally:
            for pub in pubs:
                await pub.close()
    # B's own end, once its publisher left.
    await viewer.wait_for(lambda e: e["type"] == "stream_state" and e["state"] == "offline", 30)
    await viewer.close()


async def test_viewers_of_a_node_that_handed_a_stream_over_are_served_by_the_node_that_continued_it(
    node: Node, redis_url: str, db: Database
) -> None:
    a, b = [await node(name, redis_url, changes=HLS, handover_s=30.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    a_url, b_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b))
    stream_id, key = await creator_stream(b, "cooking")
    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await wait_state(b, "cooking", "live")
            playlist = await playlist_with_segment(http, a_url + PLAYLIST)
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            # A viewer's blocking reload for the segment after next, held on A.
            hint = re.findall(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-', playlist)[0]
            held = asyncio.create_task(
                get(http, f"{a_url}{PLAYLIST}?_HLS_msn={int(hint) + 1}&_HLS_part=0")
            )
            async with asyncio.timeout(30):
                while True:  # until A holds it
                    if blocking_reloads(a):
                        break
                    await asyncio.sleep(0.05)
            # The publisher ends its session on A, and A has nothing left to hold.
            async with http.delete(a_url + pubs[0].location) as resp:
                assert resp.status == 200
            await pubs[0].close()
            await drained
            status, reloaded = await held
            assert status in (200, 503)  # the part came in time, or ask again
            assert "#EXT-X-ENDLIST" not in reloaded  # the broadcast goes on elsewhere
            assert (await get(http, a_url + PLAYLIST))[0] == 404  # nobody holds it yet

            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await carried_by(db, stream_id, "node-b")
            # A's viewers now get B's playlist, one discontinuity on.
            async with asyncio.timeout(30):
                while True:
                    playlist = await playlist_with_segment(http, a_url + PLAYLIST)
                    if "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in playlist:
                        break
                    await asyncio.sleep(0.1)
        finally:
            for pub in pubs:
                await pub.close()


async def test_ffmpeg_reading_through_a_third_node_plays_on_across_a_handover(
    node: Node, redis_url: str, db: Database
) -> None:
    a, b, c = [await node(name, redis_url, changes=HLS, handover_s=30.0, **FAST)
               for name in ("node-a", "node-b", "node-c")]  # fmt: skip
    a_url, b_url, c_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b, c))
    stream_id, key = await creator_stream(b, "cooking")
    seen: list[tuple[float, float, bool]] = []
    stop = threading.Event()
    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await playlist_with_segment(http, c_url + PLAYLIST)
            reading = asyncio.create_task(
                asyncio.to_thread(read_video, f"{c_url}/hls/cooking/master.m3u8", seen, stop)
            )
            async with asyncio.timeout(60):
                while not seen:  # FFmpeg plays A's media through C
                    assert not reading.done(), reading
                    await asyncio.sleep(0.1)
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            async with http.delete(a_url + pubs[0].location) as resp:
                assert resp.status == 200
            await pubs[0].close()
            await drained
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await carried_by(db, stream_id, "node-b")
            switched = time.monotonic()
            # FFmpeg, reading through C, goes on with B's media (its timestamps start again:
            # the discontinuity) for two keyframes.
            async with asyncio.timeout(60):
                while keyframes_after_restart(seen) < 2:
                    assert not reading.done(), f"FFmpeg stopped: {seen[-3:]} {reading}"
                    await asyncio.sleep(0.2)
            assert seen[-1][0] > switched
        finally:
            stop.set()
            for pub in pubs:
                await pub.close()
        await reading


def test_the_handover_wait_is_at_least_a_heartbeat() -> None:
    # Shorter, a node whose entries Redis lost (a restart) would have its broadcasts ended
    # before its next heartbeat wrote them again.
    with pytest.raises(ConfigError, match=r"node\.handover_s"):
        NodeConfig(heartbeat_s=2.0, handover_s=1.0)
    with pytest.raises(ConfigError, match=r"node\.public_url"):
        NodeConfig(public_url="media-1.example.com")


async def test_a_killed_nodes_recording_is_finished_from_the_bucket_and_plays_from_a_survivor(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path,
    storage: StorageConfig, bucket: Bucket,
) -> None:  # fmt: skip
    b = await node("node-b", redis_url, changes={**HLS, "storage": storage}, handover_s=0.5,
                   **FAST)  # fmt: skip
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    async with (
        served_node("node-a", tmp_path, services, node=NODE_A, env=bucket_env(storage)) as a,
        aiohttp.ClientSession() as http,
    ):
        pub = await publish(http, f"{a.url}/whip/cooking", key, media.clip())
        try:
            await wait_state(b, "cooking", "live")
            [broadcast] = await broadcasts(db, stream_id)
            path = await db.pool.fetchval(
                "SELECT recording_path FROM broadcasts WHERE id = $1", broadcast["id"]
            )
            # Two segments in the bucket (A uploads each as it completes).
            async with asyncio.timeout(60):
                while True:
                    try:
                        uploaded = (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
                    except FileNotFoundError:
                        uploaded = ""
                    if uploaded.count("#EXTINF") >= 2:
                        break
                    await asyncio.sleep(0.2)
            viewer = await connect(b, "cooking")
            await a.kill_hard()
            await viewer.wait_for(
                lambda e: e["type"] == "stream_state" and e["state"] == "offline", 30
            )
        finally:
            await pub.close()
    # B finished the recording from what reached the bucket: listed, and it plays from B.
    async with asyncio.timeout(30):
        while True:
            listed = await (await b.get("/api/v1/streams/cooking/recordings")).json()
            if [r["id"] for r in listed["recordings"]] == [broadcast["id"]]:
                break
            await asyncio.sleep(0.1)
    vod = f"http://127.0.0.1:{b.server.port}/vod/{broadcast['id']}/vod.m3u8"
    seen = await asyncio.to_thread(hls_video_packets, vod, 1.0)
    assert seen and seen[0][1]
    ended = await db.pool.fetchrow(
        "SELECT recording_ready, recording_bytes FROM broadcasts WHERE id = $1", broadcast["id"]
    )
    assert ended is not None and ended["recording_ready"] and ended["recording_bytes"] > 0


async def told_ended(viewer: Viewer) -> None:
    said = await viewer.wait_for(
        lambda e: e["type"] == "stream_state" and e.get("ended_by") == "owner", 30
    )
    assert said["state"] == "offline"


async def test_an_end_asked_while_a_broadcast_is_between_nodes_ends_it_at_once(
    node: Node, redis_url: str, db: Database
) -> None:
    # A handover wait far longer than the test: only the end can close the broadcast.
    a, b = [await node(name, redis_url, changes=HLS, handover_s=600.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    a_url, b_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b))
    stream_id, key, owner = await owned_stream(b, "cooking")
    viewers: list[Viewer] = []
    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await wait_state(b, "cooking", "live")
            viewers += [await connect(n, "cooking") for n in (a, b)]
            await playlist_with_segment(http, a_url + PLAYLIST)
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            # The publisher leaves draining A to reconnect elsewhere: between nodes now.
            async with http.delete(a_url + pubs[0].location) as resp:
                assert resp.status == 200
            await pubs[0].close()
            await drained
            [first] = await broadcasts(db, stream_id)
            assert first["open"] and first["node_id"] == "node-a"

            resp = await b.post("/api/v1/streams/cooking/end", json={"reason": "bye"},
                                headers=owner)  # fmt: skip
            assert resp.status == 202, await resp.text()
            # Ended when the end is answered, not after the handover wait.
            assert await broadcasts(db, stream_id) == [{**first, "open": False}]
            for viewer in viewers:
                await told_ended(viewer)
            for n in (a, b):
                await wait_state(n, "cooking", "offline")
            recording = await listed_recording(b, "cooking")
            assert recording["id"] == first["id"]
            vod = await (await a.get(recording["url"])).text()
            assert vod.rstrip().endswith("#EXT-X-ENDLIST")

            # The publisher reconnects, to B: a new broadcast, not the ended one continued.
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await carried_by(db, stream_id, "node-b")
            [ended, second] = await broadcasts(db, stream_id)
            assert ended == {**first, "open": False}
            assert second == {"id": second["id"], "node_id": "node-b", "continuations": 0,
                              "open": True}  # fmt: skip
            assert second["id"] != first["id"]
        finally:
            for viewer in viewers:
                await viewer.close()
            for pub in pubs:
                await pub.close()


async def test_an_end_asked_while_the_node_drains_ends_the_broadcast_there(
    node: Node, redis_url: str, db: Database
) -> None:
    a, b = [await node(name, redis_url, changes=HLS, handover_s=600.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    a_url, b_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b))
    stream_id, key, owner = await owned_stream(b, "cooking")
    viewers: list[Viewer] = []
    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await wait_state(b, "cooking", "live")
            viewers += [await connect(n, "cooking") for n in (a, b)]
            await playlist_with_segment(http, a_url + PLAYLIST)
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            # The publisher is still on draining A when its owner ends the broadcast.
            resp = await b.post("/api/v1/streams/cooking/end", json={"reason": "bye"},
                                headers=owner)  # fmt: skip
            assert resp.status == 202, await resp.text()
            await server_closed(pubs[0].pc)
            await drained
            for viewer in viewers:
                await told_ended(viewer)
            # Ended, not handed over: A's playlist ends, as any ended broadcast's does, once
            # packaging has flushed (a handed-over one is left to other nodes: 404 here).
            async with asyncio.timeout(30):
                while True:
                    status, playlist = await get(http, a_url + PLAYLIST)
                    assert status == 200, playlist
                    if playlist.rstrip().endswith("#EXT-X-ENDLIST"):
                        break
                    await asyncio.sleep(0.1)
            [first] = await broadcasts(db, stream_id)
            assert not first["open"]

            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await carried_by(db, stream_id, "node-b")
            [_, second] = await broadcasts(db, stream_id)
            assert second["continuations"] == 0 and second["id"] != first["id"]
        finally:
            for viewer in viewers:
                await viewer.close()
            for pub in pubs:
                await pub.close()


async def heartbeats(
    redis_url: str, node_id: str, count: int, check: Callable[[], Awaitable[None]]
) -> None:
    """Wait (60 s at most) for `count` heartbeats of node `node_id` (its key's TTL renewed),
    awaiting `check()` between reads."""
    redis = aioredis.Redis.from_url(redis_url)
    key = f"{PREFIX}node:{node_id}"
    try:
        async with asyncio.timeout(60):
            last = await redis.pttl(key)
            while count:
                await check()
                ttl = await redis.pttl(key)
                if ttl > last:
                    count -= 1
                last = ttl
                await asyncio.sleep(0.02)
    finally:
        await redis.aclose()


async def test_the_directory_names_the_node_a_publisher_moved_to_while_the_old_session_lasts(
    node: Node, redis_url: str, db: Database
) -> None:
    a, b, c = [await node(name, redis_url, changes=HLS, handover_s=30.0, **FAST)
               for name in ("node-a", "node-b", "node-c")]  # fmt: skip
    a_url, b_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b))
    node_b = NodeInfo("node-b", b_url)
    stream_id, key = await creator_stream(b, "cooking")

    async def owned_by_b() -> None:
        assert await c.app[DIRECTORY].owner("cooking") == node_b

    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await owner_becomes(c, "cooking", NodeInfo("node-a", a_url))
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            # The publisher is on B now, its session on A not gone yet: both hold the stream.
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await carried_by(db, stream_id, "node-b")
            await owner_becomes(c, "cooking", node_b)
            assert a.app[HUBS].by_slug("cooking") is not None
            await heartbeats(redis_url, "node-a", 5, owned_by_b)
            # A's old session ends: B's entry stays.
            async with http.delete(a_url + pubs[0].location) as resp:
                assert resp.status == 200
            await drained
            await heartbeats(redis_url, "node-b", 2, owned_by_b)
        finally:
            for pub in pubs:
                await pub.close()
