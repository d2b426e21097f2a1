"""Any node serves any live HLS stream: node B answers for a stream published on node A with
A's bytes, asking A once per URL however many viewers ask B at the same time."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from prometheus_client import CollectorRegistry

from livecore.cluster.metrics import ClusterMetrics
from livecore.cluster.node import NodeInfo
from livecore.cluster.redis_directory import RedisDirectory
from livecore.config import HlsConfig
from tests.cluster.conftest import Node, creator_stream, owner_becomes
from tests.conftest import Client
from tests.support.edge_requests import body, counting
from tests.support.rtc import publishing
from tests.support.services import free_port


async def same_answer(a: Client, b: Client, path: str) -> bytes:
    """B's answer, once it was read between two identical readings on A (a live playlist
    changes with every part, a thumbnail every interval): then it must be those bytes."""
    async with asyncio.timeout(30):
        while True:
            before, through_b, after = [await body(c, path) for c in (a, b, a)]
            if before == after:
                assert through_b == before
                return through_b


async def test_a_node_serves_hls_of_a_stream_live_on_another(node: Node, redis_url: str) -> None:
    seen: Counter[str] = Counter()
    hls = {"hls": HlsConfig(renditions=("source",), thumbnail_interval_s=1.0)}
    a = await node("node-a", redis_url, middlewares=(counting(seen),), changes=hls)
    b = await node("node-b", redis_url, changes=hls)
    _, key = await creator_stream(a, "cooking")
    async with publishing(a, "cooking", key):
        node_a = NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}")
        await owner_becomes(b, "cooking", node_a)
        master = "/hls/cooking/master.m3u8"
        assert await body(b, master) == await body(a, master)
        playlist = (await same_answer(a, b, "/hls/cooking/source/index.m3u8")).decode()

        # A blocking reload through B waits, on A, for the part the playlist hints at next.
        hint = re.findall(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)', playlist)[0]
        msn, index = map(int, hint)
        reload = f"/hls/cooking/source/index.m3u8?_HLS_msn={msn}&_HLS_part={index}"
        reloaded = (await body(b, reload)).decode()
        part = f"part-{msn}-{index}.m4s"
        assert f'URI="{part}"' in reloaded
        assert f'PRELOAD-HINT:TYPE=PART,URI="{part}"' not in reloaded
        assert seen[reload] == 1

        # Twenty viewers ask B for the same part at once: B asks A once.
        path = f"/hls/cooking/source/{part}"
        answers = await asyncio.gather(*(body(b, path) for _ in range(20)))
        assert seen[path] == 1
        assert answers == [await body(a, path)] * 20
        assert await body(b, path) == answers[0]  # from B's cache
        assert seen[path] == 2  # only the test's own request to A

        init = re.findall(r'EXT-X-MAP:URI="(init-\d+\.mp4)"', playlist)[0]
        segment = re.findall(r"^(seg-\d+\.m4s)$", playlist, re.M)[0]
        for name in (init, segment):
            got = await body(b, f"/hls/cooking/source/{name}")
            assert got == await body(a, f"/hls/cooking/source/{name}")

        async with asyncio.timeout(60):
            while True:  # the first thumbnail is being made on A
                if (await a.get("/hls/cooking/thumb.jpg")).status == 200:
                    break
                await asyncio.sleep(0.1)
        assert (await same_answer(a, b, "/hls/cooking/thumb.jpg")).startswith(b"\xff\xd8")

        for missing in ("/hls/nosuch/master.m3u8", "/hls/nosuch/source/index.m3u8",
                        "/hls/cooking/source/seg-1.m4s"):  # fmt: skip
            assert (await b.get(missing)).status == 404
    # Ended: no node holds it any more.
    await owner_becomes(b, "cooking", None)
    assert (await b.get("/hls/cooking/master.m3u8")).status == 404


async def test_an_owner_that_does_not_answer_is_a_502_until_its_entries_expire(
    node: Node, redis_url: str
) -> None:
    b = await node("node-b", redis_url)
    stream_id, _ = await creator_stream(b, "cooking")
    # A node that died a moment ago: its entry is still in the directory, nothing listens.
    ghost = NodeInfo("node-gone", f"http://127.0.0.1:{free_port()}")
    gone = RedisDirectory(
        redis_url, ghost, ttl_s=60.0, heartbeat_s=30.0, metrics=ClusterMetrics(CollectorRegistry())
    )
    await gone.claim(stream_id, "cooking")
    try:
        await owner_becomes(b, "cooking", ghost)
        resp = await b.get("/hls/cooking/source/index.m3u8")
        assert resp.status == 502
        assert (await resp.json())["error"]["code"] == "bad_gateway"
    finally:
        await gone.close()
    await owner_becomes(b, "cooking", None)
    assert (await b.get("/hls/cooking/source/index.m3u8")).status == 404
