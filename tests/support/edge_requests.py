"""What a node was asked, and what it asked the stream directory: the HLS edge's requests
counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web

from tests.conftest import Client

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def counting(seen: Counter[str]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A middleware counting in `seen` the requests a node gets, by path and query."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen[request.path_qs] += 1
        return await handler(request)

    return count


async def body(client: Client, path: str) -> bytes:
    """The body of a 200 answer to GET `path`."""
    resp = await client.get(path)
    assert resp.status == 200, (path, resp.status, await resp.text())
    return await resp.read()


async def directory_reads(redis_url: str) -> int:
    """GET commands the test Redis has run (only the directory's owner lookups use GET)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_get", {}).get("calls", 0))
