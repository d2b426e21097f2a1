"""hls.js in headless Chromium plays a live stream through a node that does not hold it: every
playlist, part and segment it asks node B for is fetched from node A, the stream's owner."""

from __future__ import annotations

import time
from collections import Counter

from blockbuster import BlockBuster

from livecore.cluster.node import NodeInfo
from livecore.config import HlsConfig
from loadtests import hlsjs_player
from tests.cluster.conftest import Node, creator_stream, owner_becomes
from tests.support.edge_requests import counting
from tests.support.rtc import publishing
from tests.web.conftest import PLAYWRIGHT_STARTUP


async def test_hlsjs_plays_a_live_stream_through_another_node(
    node: Node, redis_url: str, blockbuster: BlockBuster
) -> None:
    for func in blockbuster.functions.values():  # Playwright's start-up finds its driver
        for filename, names in PLAYWRIGHT_STARTUP.items():
            func.can_block_in(filename, names)
    seen: Counter[str] = Counter()
    hls = {"hls": HlsConfig(renditions=("source",))}
    a = await node("node-a", redis_url, changes=hls, middlewares=(counting(seen),))
    b = await node("node-b", redis_url, changes=hls)
    _, key = await creator_stream(a, "cooking")
    async with publishing(a, "cooking", key):
        await owner_becomes(b, "cooking", NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}"))
        base = str(b.make_url("")).rstrip("/")
        now = time.time()
        # A few seconds for hls.js to find the live edge, then it must keep playing.
        played = await hlsjs_player.play(base, "cooking", (now + 4, now + 10))
    assert played.error == ""
    assert played.played_s > 2
    # What it played came from A, through B.
    assert any(path.endswith(".m4s") for path in seen)
