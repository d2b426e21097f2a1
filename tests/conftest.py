"""Shared fixtures: a real PostgreSQL and Redis for the session, a clean database per test,
and an HTTP client for the whole application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import uvloop
from aiohttp.test_utils import TestClient, TestServer
from blockbuster import BlockBuster, blockbuster_ctx
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.config import AuthConfig, Config, SfuConfig
from livecore.deadlines import server_options
from livecore.store import Database, apply_migrations
from tests.support.fakes import CapturingMailSender
from tests.support.services import RedisProcess, postgres, redis_server
from tests.support.stripe_peer import StripePeer

Client = TestClient[Any, Any]
# What the API helpers below take: a test client, or a session whose base URL is a node's
# (one running as its own process).
Api = Client | aiohttp.ClientSession


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on uvloop, the loop livecore serves on (its transports differ from asyncio's)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres(tmp_path_factory.mktemp("pg")) as dsn:
        asyncio.run(apply_migrations(dsn))
        yield dsn


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with redis_server(tmp_path_factory.mktemp("redis")) as proc:
        yield proc


@pytest.fixture
async def redis_url(redis_proc: RedisProcess) -> str:
    """A flushed test Redis database."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_proc.url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return redis_proc.url


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    """A pool on the emptied test database, for tests that read or write it directly."""
    database = await Database.connect(dsn, max_size=4)
    yield database
    await database.close()


@pytest.fixture
async def dsn(postgres_dsn: str) -> str:
    """The test database with every table emptied."""
    conn = await asyncpg.connect(postgres_dsn)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    return postgres_dsn


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # Cheap Argon2 parameters keep the suite fast; production defaults are in configs/.
    return Config(
        data_dir=str(tmp_path / "var"),
        secret_key="test-secret-key-test-secret-key",
        auth=AuthConfig(argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1),
        # No test traffic may reach any address of this machine but loopback.
        sfu=SfuConfig(ice_host_addresses=("127.0.0.1",)),
    )


@pytest.fixture
async def stripe_peer() -> AsyncIterator[StripePeer]:
    """A started Stripe-shaped peer on loopback, closed after the test."""
    # Here, not in tests/support/stripe_peer.py: the tips benchmark uses the peer too, with only
    # livecore's own dependencies installed (no pytest).
    peer = StripePeer()
    await peer.start()
    try:
        yield peer
    finally:
        await peer.close()


@pytest.fixture
def mailer() -> CapturingMailSender:
    return CapturingMailSender()


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_client(
    aiohttp_client: AiohttpClient, config: Config, dsn: str, mailer: CapturingMailSender
) -> MakeClient:
    """Start the whole app on a loopback port; keyword arguments replace config fields."""

    async def make(**changes: Any) -> Client:
        changed = replace(config, **changes)
        app = create_app(changed, database_url=dsn, mailer=mailer)
        # Started here with the server settings `livecore serve` uses (bounds on slow
        # clients): aiohttp_client would start it without them.
        server = TestServer(app)
        await server.start_server(**server_options(changed))
        return await aiohttp_client(server)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test whose code blocks the event loop."""
    with blockbuster_ctx() as bb:
        # Library look-ups made once per new connection, not per query or message: asyncpg
        # looks for ~/.pgpass, redis-py reads its own version from package metadata. aiortc
        # joins a receiver's (already finishing) decoder thread when the track stops.
        allowed = {
            "asyncpg/connect_utils.py": {"_read_password_file"},
            "redis/utils.py": {"get_lib_version"},
            "aiortc/rtcrtpreceiver.py": {"__stop_decoder"},
        }
        for func in bb.functions.values():
            for filename, names in allowed.items():
                func.can_block_in(filename, names)
        yield bb


# -- helpers for API tests ----------------------------------------------------------------

# The password every test account gets unless a test says otherwise.
PASSWORD = "correct horse battery"


async def register(
    client: Api,
    email: str = "ann@example.com",
    *,
    password: str = PASSWORD,
    creator: bool = False,
    display_name: str | None = None,
) -> dict[str, Any]:
    # Display names are unique: by default each account is named after its email
    # ("ann@example.com" is "Ann").
    display_name = display_name or email.split("@", 1)[0].capitalize()
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": display_name,
              "creator": creator},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_stream(client: Client, owner_token: str, slug: str, **fields: Any) -> str:
    """Make the owner a stream through the API (`fields`: title, visibility...); its key."""
    resp = await client.post(
        "/api/v1/streams", json={"slug": slug, **fields}, headers=bearer(owner_token)
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["stream_key"])


async def wait_state(client: Api, slug: str, want: str, timeout_s: float = 20) -> None:
    """Wait until the streams API shows the stream `want` ("live" or "offline")."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = await (await client.get(f"/api/v1/streams/{slug}")).json()
        if body["stream"]["state"] == want:
            return
        assert time.monotonic() < deadline, f"stream stayed {body['stream']['state']}"
        await asyncio.sleep(0.1)
