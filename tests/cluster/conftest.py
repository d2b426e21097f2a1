"""Nodes for the cluster tests: whole apps on their own loopback ports, sharing the test
PostgreSQL (and Redis when given)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.cluster.node import NodeInfo
from livecore.cluster.routes import DIRECTORY
from livecore.config import Config, NodeConfig
from livecore.deadlines import server_options
from tests.conftest import Api, Client, bearer, register
from tests.recordings.conftest import bucket, s3_server, storage  # noqa: F401  (fixtures)
from tests.support.fakes import CapturingMailSender
from tests.support.services import free_port

Node = Callable[..., Awaitable[Client]]
# Short enough that a dead node's entries go in about a second.
FAST = {"directory_ttl_s": 1.0, "heartbeat_s": 0.2}


@pytest.fixture
def node(
    aiohttp_client: AiohttpClient, config: Config, dsn: str, mailer: CapturingMailSender
) -> Node:
    """A whole app on its own loopback port, named `name`, its internal URL that port."""

    async def make(
        name: str | None, redis_url: str = "", *, middlewares: tuple[Any, ...] = (),
        changes: dict[str, Any] | None = None, **node: Any,
    ) -> Client:  # fmt: skip
        port = free_port()
        settings = NodeConfig(
            id=name or "", internal_url=f"http://127.0.0.1:{port}" if name else "", **node
        )
        changed = replace(config, port=port, redis_url=redis_url, node=settings, **(changes or {}))
        app = create_app(changed, database_url=dsn, mailer=mailer)
        app.middlewares.extend(middlewares)
        server = TestServer(app, port=port)
        await server.start_server(**server_options(changed))
        return await aiohttp_client(server)

    return make


async def creator_stream(client: Api, slug: str) -> tuple[int, str]:
    body = await register(client, f"{slug}@example.com", creator=True, display_name=slug)
    (client if isinstance(client, aiohttp.ClientSession) else client.session).cookie_jar.clear()
    resp = await client.post("/api/v1/streams", json={"slug": slug},
                             headers=bearer(body["token"]))  # fmt: skip
    assert resp.status == 201, await resp.text()
    stream = await resp.json()
    return int(stream["stream"]["id"]), str(stream["stream_key"])


async def owner_becomes(client: Client, stream: int | str, want: NodeInfo | None) -> None:
    """Wait (30 s at most) until `client`'s node sees `want` as the stream's owner."""
    directory = client.app[DIRECTORY]
    async with asyncio.timeout(30):
        # Redis tells nothing when a key expires: the directory is read again and again.
        while True:
            if await directory.owner(stream) == want:
                return
            await asyncio.sleep(0.05)
