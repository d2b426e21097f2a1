"""Three nodes, each a real `livecore serve` process, as one deployment: one PostgreSQL, one
redis-server, one S3-compatible bucket (moto in server mode), everything on 127.0.0.1.

One run goes through every phase in turn:
1. an aiortc publisher publishes over WHIP to node A;
2. FFmpeg reads the live HLS through node B and through node C and gets the same packets,
   and every part and segment is the same bytes through A, B and C;
3. hls.js in headless Chromium plays it through B (at the same time as 2);
4. A drained (SIGTERM): the publisher's next POST to A is sent on to B (307) and the broadcast
   goes on there, the same one (one row), while FFmpeg reading through C plays on; A exits and
   starts again (a rolling restart); the broadcast ends on B and its one recording plays
   from C end to end, A's media then B's;
5. a second stream on B, and B killed (kill -9): the stream goes offline on A and C, and its
   recording, finished from the bucket, plays from C up to the last segment B uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from blockbuster import BlockBuster

from livecore.config import Config, StorageConfig
from livecore.recordings.bucket import Bucket
from livecore.store import Database
from loadtests import hlsjs_player
from tests.cluster.conftest import creator_stream
from tests.cluster.serve import ServedNode, Services, bucket_env, served_node, served_nodes
from tests.cluster.test_drain import (
    PLAYLIST,
    broadcasts,
    carried_by,
    get,
    keyframes_after_restart,
    not_ready,
    playlist_with_segment,
    read_video,
)
from tests.cluster.test_recording_legs import (
    in_bucket,
    plays_both_legs,
    recording_path,
    segments_stored,
)
from tests.conftest import wait_state
from tests.recordings.test_bucket_live import (
    _assert_finished_vod,
    _bucket_playlist,
    _recordings,
    _stored,
    _uris,
    _vod_duration_s,
)
from tests.support import media
from tests.support.rtc import Publication, publish
from tests.web.conftest import PLAYWRIGHT_STARTUP

# A dead node's directory entries go within about a second; a broadcast whose node is gone
# waits 5 s for its publisher on another node (the drain phase reconnects well within it).
NODE = {"directory_ttl_s": "1.0", "heartbeat_s": "0.2", "handover_s": "5", "drain_grace_s": "60"}
# One-second segments (the test clip has a keyframe each second): segments complete, reach
# the bucket and fill playlists sooner.
HLS = {"LIVECORE_HLS__SEGMENT_TARGET_S": "1.0"}
MASTER = "/hls/cooking/master.m3u8"


@dataclass
class Reader:
    """FFmpeg reading live HLS in a thread: each video packet's (arrival, pts, keyframe) and
    its bytes by pts."""

    url: str
    seen: list[tuple[float, float, bool]] = field(default_factory=list)
    data: dict[float, bytes] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(
            asyncio.to_thread(read_video, self.url, self.seen, self.stop, self.data)
        )

    def check(self) -> None:
        assert self.task is not None and not self.task.done(), f"FFmpeg stopped: {self.task}"

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task


@contextlib.asynccontextmanager
async def reading(*urls: str) -> AsyncIterator[list[Reader]]:
    readers = [Reader(url) for url in urls]
    for reader in readers:
        reader.start()
    try:
        yield readers
    finally:
        for reader in readers:
            reader.stop.set()
        await asyncio.gather(*(r.task for r in readers if r.task), return_exceptions=True)


def media_names(playlist: str) -> list[str]:
    """The init segment, segments and parts a live media playlist lists."""
    return re.findall(r'(?:URI="|^)((?:init-\d+\.mp4|seg-\d+\.m4s|part-\d+-\d+\.m4s))', playlist,
                      re.M)  # fmt: skip


async def same_bytes_everywhere(http: aiohttp.ClientSession, nodes: list[ServedNode]) -> int:
    """Every init segment, segment and part the live playlist (through the second node) lists
    is the same bytes through each node; returns how many were compared."""
    playlist = await playlist_with_segment(http, nodes[1].url + PLAYLIST)
    names = media_names(playlist)
    assert any(n.startswith("seg-") for n in names) and any(n.startswith("part-") for n in names)
    base = PLAYLIST.rsplit("/", 1)[0]
    for name in names:
        answers = []
        for n in nodes:
            async with http.get(f"{n.url}{base}/{name}") as resp:
                assert resp.status == 200, (n.name, name, resp.status)
                answers.append(await resp.read())
        assert answers[0] and answers.count(answers[0]) == len(nodes), name
    return len(names)


async def playlist_continued(http: aiohttp.ClientSession, url: str) -> None:
    """Wait (30 s at most) until the live playlist at `url` is the one of the node that
    continued the broadcast (one discontinuity on)."""
    async with asyncio.timeout(30):
        while True:
            if "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in (await get(http, url))[1]:
                return
            await asyncio.sleep(0.1)


async def common_packets(b: Reader, c: Reader, at_least: int) -> dict[float, tuple[bytes, bytes]]:
    """Once both readers have read `at_least` of the same packets (by pts): those packets, as
    each read them."""
    async with asyncio.timeout(60):
        while True:
            b.check()
            c.check()
            got_b, got_c = dict(b.data), dict(c.data)
            common = {pts: (got_b[pts], got_c[pts]) for pts in got_b.keys() & got_c.keys()}
            if len(common) >= at_least:
                return common
            await asyncio.sleep(0.2)


async def plays_what_reached_the_bucket(
    node: ServedNode, broadcast_id: int, bucket: Bucket, path: str, uploaded: list[str]
) -> None:
    """Recording `path` plays from `node` as the bucket has it: every segment of `uploaded`
    (the bucket's playlist read earlier) and any after, FFmpeg reading into the last one."""
    vod = f"{node.url}/vod/{broadcast_id}/vod.m3u8"
    async with aiohttp.ClientSession() as http, http.get(vod) as resp:
        assert resp.status == 200
        served = await resp.text()
    assert served == (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
    _assert_finished_vod(served, await _stored(bucket, path))
    assert set(uploaded) <= set(_uris(served))
    durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", served)]
    assert await asyncio.to_thread(_vod_duration_s, vod) >= sum(durations[:-1])


async def test_three_node_processes_serve_hand_over_and_survive_a_kill(
    redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path,
    storage: StorageConfig, bucket: Bucket, blockbuster: BlockBuster,
) -> None:  # fmt: skip
    for func in blockbuster.functions.values():  # Playwright's start-up finds its driver
        for filename, names in PLAYWRIGHT_STARTUP.items():
            func.can_block_in(filename, names)
    services = Services(dsn, redis_url, config.secret_key)
    env = {**HLS, **bucket_env(storage)}
    pubs: list[Publication] = []
    restarted: asyncio.Task[ServedNode] | None = None
    async with (
        served_nodes(("node-a", "node-b", "node-c"), tmp_path, services, node=NODE,
                     env=env) as (a, b, c),
        contextlib.AsyncExitStack() as later,
        aiohttp.ClientSession() as http,
    ):  # fmt: skip
        try:
            # 1. The publisher on A.
            stream_id, key = await creator_stream(b.api, "cooking")
            pubs.append(await publish(http, f"{a.url}/whip/cooking", key, media.clip()))
            await wait_state(c.api, "cooking", "live")
            [first] = await broadcasts(db, stream_id)
            await playlist_with_segment(http, c.url + PLAYLIST)

            async with reading(b.url + MASTER, c.url + MASTER) as (through_b, through_c):
                # 3. hls.js plays through B while FFmpeg reads through B and C.
                now = time.time()
                playing = asyncio.create_task(hlsjs_player.play(b.url, "cooking",
                                                                (now + 4, now + 10)))  # fmt: skip
                # 2. The same bytes through every node, and the same packets for FFmpeg.
                assert await same_bytes_everywhere(http, [a, b, c]) > 0
                common = await common_packets(through_b, through_c, at_least=60)
                assert all(by_b == by_c for by_b, by_c in common.values())
                await through_b.close()
                played = await playing
                assert played.error == ""
                assert played.played_s > 2

                # 4. A drains; the publisher's next POST to A is sent on to B (307).
                a.terminate()
                assert (await not_ready(http, a))["checks"]["node"] == "draining"
                pubs.append(await publish(http, f"{a.url}/whip/cooking", key, media.clip()))
                assert pubs[1].endpoint == f"{b.url}/whip/cooking"
                # The old connection drops once C sends its viewers to B: until its owner
                # cache (node.edge_owner_cache_s) is read again, C would ask A, and answer
                # 502 once A has gone, which ends FFmpeg's reading (a failed reload).
                await playlist_continued(http, c.url + PLAYLIST)
                await pubs[0].close()
                # Its publisher gone, A has nothing left to serve: it exits by itself.
                assert await a.exited() == 0, a.log()
                restarted = asyncio.create_task(later.enter_async_context(
                    served_node("node-a", tmp_path, services, node=NODE, env=env)))  # fmt: skip
                # One broadcast, the same, carried by B now.
                await carried_by(db, stream_id, "node-b")
                assert await broadcasts(db, stream_id) == [
                    {"id": first["id"], "node_id": "node-b", "continuations": 1, "open": True}
                ]
                # FFmpeg reading through C goes on with B's media (its timestamps start
                # again after the discontinuity) for two keyframes, and reads on.
                switched = time.monotonic()
                async with asyncio.timeout(60):
                    while (keyframes_after_restart(through_c.seen) < 2
                           or through_c.seen[-1][0] <= switched):  # fmt: skip
                        through_c.check()
                        await asyncio.sleep(0.2)
            # The publisher ends the broadcast on B, once B's part of the recording (its
            # second leg) has two segments in the bucket.
            path = await recording_path(db, first["id"])
            await segments_stored(in_bucket(bucket), f"{path}/leg-1", 2)
            async with http.delete(b.url + pubs[1].location) as resp:
                assert resp.status == 200
            await pubs[1].close()
            await wait_state(c.api, "cooking", "offline")
            [ended] = await broadcasts(db, stream_id)
            assert ended["id"] == first["id"] and not ended["open"]
            # One recording: A's media then B's, end to end, from C.
            assert [r["id"] for r in await _recordings(c.api, "cooking")] == [first["id"]]
            await plays_both_legs(http, f"{c.url}/vod/{first['id']}/vod.m3u8", tmp_path)

            # 5. A second stream on B; B is killed once two segments are in the bucket.
            a = await restarted
            garden_id, garden_key = await creator_stream(c.api, "garden")
            pubs.append(await publish(http, f"{b.url}/whip/garden", garden_key, media.clip()))
            await wait_state(a.api, "garden", "live")
            [garden] = await broadcasts(db, garden_id)
            path = await recording_path(db, garden["id"])
            before = _uris(await _bucket_playlist(bucket, path, segments=2))
            await b.kill_hard()
        finally:
            for pub in pubs:
                await pub.close()
            if restarted is not None and not restarted.done():  # a failure before it was used
                restarted.cancel()
                await asyncio.gather(restarted, return_exceptions=True)
        # Offline on every node left, and no longer served live by any.
        for survivor in (a, c):
            await wait_state(survivor.api, "garden", "offline", timeout_s=30)
            async with http.get(survivor.url + "/hls/garden/master.m3u8") as resp:
                assert resp.status == 404
        [lost] = await broadcasts(db, garden_id)
        assert lost["node_id"] == "node-b" and not lost["open"]
        # The recording, finished from the bucket, plays from C up to B's last upload.
        listed = await _recordings(c.api, "garden")
        assert [r["id"] for r in listed] == [garden["id"]]
        await plays_what_reached_the_bucket(c, garden["id"], bucket, path, before)
