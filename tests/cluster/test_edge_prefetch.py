"""The part a playlist hints at next is asked of the owner by the edge as soon as a playlist
naming it passes through, before any viewer asks: when the owner writes it, it is already on
its way to the edge, and the viewers' requests for it cost the owner nothing more."""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

from aiohttp import web

from livecore.cluster.node import NodeInfo
from livecore.config import HlsConfig
from tests.cluster.conftest import Node, creator_stream, owner_becomes
from tests.support.edge_requests import Handler, body, counting
from tests.support.rtc import publishing


def noticing(
    asked: defaultdict[str, asyncio.Event],
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Sets asked[path] when a request for `path` arrives (before it is answered)."""

    @web.middleware
    async def notice(request: web.Request, handler: Handler) -> web.StreamResponse:
        asked[request.path_qs].set()
        return await handler(request)

    return notice


async def test_the_edge_asks_the_owner_for_the_hinted_part_before_its_viewers(
    node: Node, redis_url: str
) -> None:
    seen: Counter[str] = Counter()
    asked: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
    hls = {"hls": HlsConfig(renditions=("source",))}
    a = await node("node-a", redis_url, middlewares=(counting(seen), noticing(asked)), changes=hls)
    b = await node("node-b", redis_url, changes=hls)
    _, key = await creator_stream(a, "cooking")
    async with publishing(a, "cooking", key):
        await owner_becomes(b, "cooking", NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}"))
        playlist = (await body(b, "/hls/cooking/source/index.m3u8")).decode()
        msn, index = re.findall(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)', playlist)[0]
        part = f"/hls/cooking/source/part-{msn}-{index}.m4s"
        async with asyncio.timeout(30):
            await asked[part].wait()  # no viewer has asked B for it
        got = await asyncio.gather(*(body(b, part) for _ in range(10)))
        assert got == [await body(a, part)] * 10
        assert seen[part] == 2  # B's one request, and the test's own to A just above
