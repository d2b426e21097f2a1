"""The stream directory in Redis, shared by every node.

A key per live stream (by id and by slug) names the node holding it, and a key per node lists
its streams. Every key has a TTL that this node's heartbeat renews: when a node dies, its
entries vanish within `ttl_s` without anyone cleaning up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livecore.cluster.directory import DirectoryUnavailable, Holdings
from livecore.cluster.metrics import ClusterMetrics
from livecore.cluster.node import HeldStream, NodeInfo, NodeStreams

logger = logging.getLogger(__name__)

PREFIX = "livecore:directory:"

# Deletes each key only while it still names this node: the stream may have gone live on
# another node since (a publisher that reconnected elsewhere), and that entry is not ours.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""
# Renews each stream entry (KEYS[i], ARGV[i]; ARGV[#KEYS + 1] the TTL in ms) unless it names
# another node: a stream that went live there (its publisher reconnected while this node's
# session ends) stays theirs, and viewers on every node are sent there, not back and forth.
# Read with GETEX (Redis 6.2+), not GET: owner lookups stay the directory's only GETs, which
# INFO commandstats then counts as viewers' directory reads.
_RENEW = """
for i, key in ipairs(KEYS) do
  local now = redis.call('GETEX', key)
  if not now or now == ARGV[i] then redis.call('SET', key, ARGV[i], 'PX', ARGV[#KEYS + 1]) end
end
return 0
"""


class RedisDirectory:
    def __init__(
        self, url: str, node: NodeInfo, *, ttl_s: float, heartbeat_s: float,
        metrics: ClusterMetrics, public_url: str = "",
    ) -> None:  # fmt: skip
        self.node = node
        self._public_url = public_url
        self._draining = False
        self._client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._release = self._client.register_script(_RELEASE)
        self._renew = self._client.register_script(_RENEW)
        self._ttl_ms = int(ttl_s * 1000)
        self._heartbeat_s = heartbeat_s
        self._metrics = metrics
        self._held = Holdings()
        # Writes one at a time: a heartbeat must not put back an entry a release just removed.
        self._writing = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._beat()
        self._heartbeat = asyncio.create_task(self._run(), name=f"node-heartbeat:{self.node.id}")

    async def claim(self, stream_id: int, slug: str) -> None:
        self._held.add(stream_id, slug)
        # When this fails, the next heartbeat writes the entry.
        await self._beat(claimed=stream_id)

    async def release(self, stream_id: int) -> None:
        slug = self._held.remove(stream_id)
        if slug is None:
            return
        async with self._writing:
            try:
                await self._release(
                    keys=[_stream_key(stream_id), _slug_key(slug)],
                    args=[self._entry(HeldStream(stream_id, slug))],
                )
            except RedisError as exc:
                logger.warning("directory: could not remove stream %d (%s)", stream_id, exc)
        await self._beat()  # the node's list of streams

    async def owner(self, stream: int | str) -> NodeInfo | None:
        key = _slug_key(stream) if isinstance(stream, str) else _stream_key(stream)
        return await self._node_at(key)

    async def find_node(self, node_id: str) -> NodeInfo | None:
        return await self._node_at(_node_key(node_id))

    async def _node_at(self, key: str) -> NodeInfo | None:
        """The node an entry names (a stream's, or a node's own), None if it has expired."""
        try:
            raw = await self._client.get(key)
        except RedisError as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        if raw is None:
            return None
        entry = json.loads(raw)
        return NodeInfo(str(entry["node"]), str(entry["url"]))

    async def nodes(self) -> list[NodeStreams]:
        try:
            keys = [k async for k in self._client.scan_iter(match=f"{PREFIX}node:*", count=500)]
            values = await self._client.mget(keys) if keys else []
        except RedisError as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        # None: expired between the scan and the read.
        found = [_node_streams(raw) for raw in values if raw is not None]
        return sorted(found, key=lambda n: n.node.id)

    async def node_status(self, node_id: str) -> NodeStreams | None:
        try:
            raw = await self._client.get(_node_key(node_id))
        except RedisError as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        return _node_streams(raw) if raw is not None else None

    async def alive(self, node_ids: Collection[str]) -> set[str]:
        wanted = sorted(node_ids)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for node_id in wanted:
                    pipe.exists(_node_key(node_id))
                found = await pipe.execute()
        except RedisError as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        return {node_id for node_id, n in zip(wanted, found, strict=True) if n}

    async def set_draining(self) -> None:
        self._draining = True
        await self._beat()

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        for held in self._held.streams():
            await self.release(held.stream_id)
        with contextlib.suppress(RedisError):
            await self._client.delete(_node_key(self.node.id))
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            await self._beat()

    async def _beat(self, claimed: int | None = None) -> None:
        """Write (and so renew) this node's key and the entry of every stream it holds; a
        stream just `claimed` here is taken even from another node (the newest publisher's)."""
        async with self._writing:
            held = self._held.streams()
            node = {"node": self.node.id, "url": self.node.internal_url,
                    "public_url": self._public_url, "draining": self._draining,
                    "streams": [[h.stream_id, h.slug] for h in held]}  # fmt: skip
            keys, entries = [], []
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.set(_node_key(self.node.id), _dumps(node), px=self._ttl_ms)
                    for h in held:
                        entry = self._entry(h)
                        for key in (_stream_key(h.stream_id), _slug_key(h.slug)):
                            if h.stream_id == claimed:
                                pipe.set(key, entry, px=self._ttl_ms)
                            else:
                                keys.append(key)
                                entries.append(entry)
                    if keys:
                        await self._renew(keys=keys, args=[*entries, self._ttl_ms], client=pipe)
                    await pipe.execute()
            except RedisError as exc:
                self._metrics.heartbeat_failures.inc()
                logger.warning("directory heartbeat failed: %s", exc)

    def _entry(self, held: HeldStream) -> str:
        return _dumps({"node": self.node.id, "url": self.node.internal_url,
                       "stream_id": held.stream_id, "slug": held.slug})  # fmt: skip


def _node_streams(raw: bytes | str) -> NodeStreams:
    entry = json.loads(raw)
    streams = tuple(HeldStream(int(i), str(s)) for i, s in entry["streams"])
    node = NodeInfo(str(entry["node"]), str(entry["url"]))
    # Nodes older than the drain write neither field.
    draining, public = bool(entry.get("draining")), str(entry.get("public_url", ""))
    return NodeStreams(node, streams, draining, public)


def _dumps(value: dict[str, Any]) -> str:
    # Always the same text for the same entry: a release compares it before deleting.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _stream_key(stream_id: int) -> str:
    return f"{PREFIX}stream:{stream_id}"


def _slug_key(slug: str) -> str:
    return f"{PREFIX}slug:{slug}"


def _node_key(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"
