"""An edge's crowd costs the owner and the directory one request each: many viewers asking
node B at once for a stream held by node A make B ask A once per URL and read the stream
directory (Redis) once, not once per viewer; B reads it again once A answers 404."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import aiohttp

from livecore.cluster.node import NodeInfo
from livecore.config import HlsConfig
from tests.cluster.conftest import Node, creator_stream, owner_becomes
from tests.support.edge_requests import body, counting, directory_reads
from tests.support.rtc import publishing

# More than the 100 connections of a Redis client's pool: one directory read per viewer
# request, all at once, ran out of them (503s, and the node's own heartbeat failed).
VIEWERS = 150


async def crowd(url: str) -> list[tuple[int, bytes]]:
    """VIEWERS requests for `url` at once, each on its own connection."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> tuple[int, bytes]:
            async with http.get(url) as resp:
                return resp.status, await resp.read()

        return await asyncio.gather(*(one() for _ in range(VIEWERS)))


async def test_a_crowd_on_one_node_asks_the_owner_and_the_directory_once(
    node: Node, redis_url: str
) -> None:
    seen: Counter[str] = Counter()
    hls = {"hls": HlsConfig(renditions=("source",))}
    a = await node("node-a", redis_url, middlewares=(counting(seen),), changes=hls)
    # The owner is kept far longer than the test lasts: every read counted is one the crowd
    # made, none is a refresh.
    b = await node("node-b", redis_url, changes=hls, edge_owner_cache_s=60.0)
    _, key = await creator_stream(a, "cooking")
    async with publishing(a, "cooking", key):
        node_a = NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}")
        await owner_becomes(b, "cooking", node_a)
        playlist = (await body(a, "/hls/cooking/source/index.m3u8")).decode()
        hint = re.findall(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)', playlist)[0]
        msn, index = map(int, hint)
        reload = f"/hls/cooking/source/index.m3u8?_HLS_msn={msn}&_HLS_part={index}"
        part = f"/hls/cooking/source/part-{msn}-{index}.m4s"
        reads_before = await directory_reads(redis_url)

        # The crowd waits on B for the next part, then asks B for that part. (How many
        # reloads reach A depends on when the crowd's connections land: a reload answered
        # is kept for the playlist's max-age, and one arriving later asks A again.)
        reloaded = await crowd(str(b.make_url(reload)))
        assert {status for status, _ in reloaded} == {200}
        assert all(f'URI="part-{msn}-{index}.m4s"'.encode() in text for _, text in reloaded)
        parts = await crowd(str(b.make_url(part)))
        assert {status for status, _ in parts} == {200}
        assert {data for _, data in parts} == {await body(a, part)}

        assert seen[part] == 2  # B's one request, and the test's own to A just above
        assert await directory_reads(redis_url) - reads_before == 1

        # A 404 from A (the stream may have ended there and gone live on another node) makes
        # B forget the owner it kept: its next request reads the directory again.
        assert (await b.get("/hls/cooking/source/seg-1.m4s")).status == 404
        assert await directory_reads(redis_url) - reads_before == 1
        assert (await b.get(part)).status == 200
        assert await directory_reads(redis_url) - reads_before == 2
