"""The stream directory: the node that ingests a stream is found from every other node while
the broadcast lasts, and not after it ends or after the node stops heartbeating."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from livecore.cluster.metrics import ClusterMetrics
from livecore.cluster.node import NodeInfo, this_node
from livecore.cluster.redis_directory import RedisDirectory
from livecore.cluster.routes import DIRECTORY
from livecore.config import Config, ConfigError, NodeConfig
from tests.cluster.conftest import FAST, Node, creator_stream, owner_becomes
from tests.conftest import Client, bearer, register
from tests.support.rtc import publishing


async def admin_headers(client: Client, dsn: str) -> dict[str, str]:
    body = await register(client, "root@example.com", display_name="root")
    client.session.cookie_jar.clear()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", body["user"]["id"])
    finally:
        await conn.close()
    return bearer(body["token"])


async def test_a_stream_live_on_one_node_is_found_from_another_until_it_ends(
    node: Node, redis_url: str, dsn: str
) -> None:
    a = await node("node-a", redis_url)
    b = await node("node-b", redis_url)
    node_a = NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}")
    stream_id, key = await creator_stream(a, "cooking")
    assert await b.app[DIRECTORY].owner("cooking") is None
    async with publishing(a, "cooking", key):
        await owner_becomes(b, "cooking", node_a)
        assert await b.app[DIRECTORY].owner(stream_id) == node_a
        assert await b.app[DIRECTORY].find_node("node-a") == node_a
        assert await b.app[DIRECTORY].find_node("node-c") is None
        # Operators see every node alive and what each holds, from any node.
        resp = await b.get("/api/v1/admin/nodes", headers=await admin_headers(b, dsn))
        assert resp.status == 200, await resp.text()
        nodes = {n["id"]: n for n in (await resp.json())["nodes"]}
        assert nodes["node-a"]["internal_url"] == node_a.internal_url
        assert nodes["node-a"]["streams"] == [{"stream_id": stream_id, "slug": "cooking"}]
        assert nodes["node-b"]["streams"] == []
        assert nodes["node-b"]["this_node"] and not nodes["node-a"]["this_node"]
    await owner_becomes(b, "cooking", None)
    assert await b.app[DIRECTORY].owner(stream_id) is None


async def test_a_node_that_stops_heartbeating_loses_its_streams_within_the_ttl(
    node: Node, redis_url: str
) -> None:
    a = await node("node-a", redis_url, **FAST)
    b = await node("node-b", redis_url, **FAST)
    node_a = NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}")
    _, key = await creator_stream(a, "cooking")
    async with publishing(a, "cooking", key):
        await owner_becomes(b, "cooking", node_a)
        # Node A freezes as far as the directory can tell: its heartbeat stops, its
        # broadcast goes on (nothing releases the entry).
        (heartbeat,) = [t for t in asyncio.all_tasks() if t.get_name() == "node-heartbeat:node-a"]
        heartbeat.cancel()
        await owner_becomes(b, "cooking", None)
        assert a.app[DIRECTORY].node == node_a and await a.app[DIRECTORY].owner("cooking") is None
        resp = await a.get("/api/v1/streams/cooking")
        assert (await resp.json())["stream"]["state"] == "live"


async def test_without_redis_the_directory_is_this_node(node: Node, dsn: str) -> None:
    client = await node(None)
    here = NodeInfo(f"{socket.gethostname()}:{client.server.port}",
                    f"http://127.0.0.1:{client.server.port}")  # fmt: skip
    assert client.app[DIRECTORY].node == here
    assert await client.app[DIRECTORY].find_node(here.id) == here
    assert await client.app[DIRECTORY].find_node("node-b") is None
    stream_id, key = await creator_stream(client, "cooking")
    async with publishing(client, "cooking", key):
        await owner_becomes(client, "cooking", here)
        assert await client.app[DIRECTORY].owner(stream_id) == here
        resp = await client.get("/api/v1/admin/nodes", headers=await admin_headers(client, dsn))
        assert (await resp.json())["nodes"] == [
            {"id": here.id, "internal_url": here.internal_url, "this_node": True,
             "draining": False, "public_url": here.internal_url,
             "streams": [{"stream_id": stream_id, "slug": "cooking"}], "yielding": []}
        ]  # fmt: skip
    await owner_becomes(client, "cooking", None)


def test_node_identity_defaults_from_host_and_port_and_can_be_set() -> None:
    host = socket.gethostname()
    assert this_node(Config(host="127.0.0.1", port=8081)) == NodeInfo(
        f"{host}:8081", "http://127.0.0.1:8081"
    )
    # Listening on every interface: the other nodes reach it by its host name.
    assert this_node(Config(host="0.0.0.0", port=80)).internal_url == f"http://{host}:80"
    assert this_node(Config(host="::1", port=80)).internal_url == "http://[::1]:80"
    set_ = NodeConfig(id="edge-3", internal_url="http://10.0.0.3:8080/")
    assert this_node(Config(node=set_)) == NodeInfo("edge-3", "http://10.0.0.3:8080")


def test_the_heartbeat_must_be_shorter_than_the_ttl() -> None:
    with pytest.raises(ConfigError, match=r"node\.heartbeat_s"):
        NodeConfig(directory_ttl_s=2.0, heartbeat_s=2.0)
    with pytest.raises(ConfigError, match=r"node\.internal_url"):
        NodeConfig(internal_url="10.0.0.3:8080")


async def test_a_stream_live_on_two_nodes_is_owned_by_the_newer_claim_across_heartbeats(
    redis_url: str,
) -> None:
    """A publisher that reconnected to node B while its old session on node A is not yet gone
    (or a second publisher): B owns the stream whatever order the two nodes' heartbeats come
    in, A's old session ending leaves B's entry alone, and A owns it again only if B's ends
    while A still holds it."""
    metrics = ClusterMetrics(CollectorRegistry())
    node_a, node_b = NodeInfo("node-a", "http://a:1"), NodeInfo("node-b", "http://b:1")
    a, b, edge = (
        RedisDirectory(redis_url, n, ttl_s=60.0, heartbeat_s=30.0, metrics=metrics)
        for n in (node_a, node_b, NodeInfo("node-c", "http://c:1"))
    )

    async def owner_is(want: NodeInfo | None) -> None:
        assert (await edge.owner("cooking"), await edge.owner(7)) == (want, want)

    try:
        for directory in (a, b, edge):
            await directory.start()
        await a.claim(7, "cooking")
        await owner_is(node_a)
        await b.claim(7, "cooking")
        await owner_is(node_b)
        for first, second in ((a, b), (b, a), (a, a), (b, b), (a, b)):
            await first.beat()
            await second.beat()
            await owner_is(node_b)
        # Redis lost its data (a restart): the heartbeats write the same owner again.
        redis = aioredis.Redis.from_url(redis_url)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()
        await a.beat()
        await b.beat()
        await a.beat()
        await owner_is(node_b)
        # A's old session ends: B's entry stays.
        await a.release(7)
        await owner_is(node_b)

        # Two sessions again, A's the newer: A owns it; when A's ends, B (still live) does.
        await a.claim(7, "cooking")
        await b.beat()
        await owner_is(node_a)
        await a.release(7)
        await b.beat()
        await owner_is(node_b)
        await b.release(7)
        await owner_is(None)
    finally:
        for directory in (a, b, edge):
            await directory.close()


async def test_the_admin_view_names_a_streams_owner_and_marks_the_older_node_yielding(
    node: Node, redis_url: str, dsn: str
) -> None:
    """A stream live on two nodes (a publisher that reconnected elsewhere before its old
    session went): operators see it held by the newer claim's node, and the older node as
    yielding it, not two nodes holding it."""
    b = await node("node-b", redis_url)
    metrics = ClusterMetrics(CollectorRegistry())
    older, newer = (
        RedisDirectory(redis_url, NodeInfo(n, f"http://{n}:1"), ttl_s=60.0, heartbeat_s=30.0,
                       metrics=metrics)
        for n in ("node-x", "node-y")
    )  # fmt: skip
    headers = await admin_headers(b, dsn)
    try:
        for directory in (older, newer):
            await directory.start()
        await older.claim(7, "cooking")
        await newer.claim(7, "cooking")
        await older.beat()  # the older node still lists it in its own entry
        resp = await b.get("/api/v1/admin/nodes", headers=headers)
        assert resp.status == 200, await resp.text()
        nodes = {n["id"]: n for n in (await resp.json())["nodes"]}
        cooking = [{"stream_id": 7, "slug": "cooking"}]
        assert (nodes["node-y"]["streams"], nodes["node-y"]["yielding"]) == (cooking, [])
        assert (nodes["node-x"]["streams"], nodes["node-x"]["yielding"]) == ([], cooking)
        assert (nodes["node-b"]["streams"], nodes["node-b"]["yielding"]) == ([], [])

        await newer.release(7)  # the newer session ends: the older node owns it again
        await older.beat()
        resp = await b.get("/api/v1/admin/nodes", headers=headers)
        nodes = {n["id"]: n for n in (await resp.json())["nodes"]}
        assert (nodes["node-x"]["streams"], nodes["node-x"]["yielding"]) == (cooking, [])
        assert (nodes["node-y"]["streams"], nodes["node-y"]["yielding"]) == ([], [])
    finally:
        for directory in (older, newer):
            await directory.close()
