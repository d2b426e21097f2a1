"""The stream directory in Redis, shared by every node.

A key per live stream (by id and by slug) names the node holding it, and a key per node lists
its streams. Every key has a TTL that this node's heartbeat renews: when a node dies, its
entries vanish within `ttl_s` without anyone cleaning up after it.

A stream may be live on two nodes for a while (a publisher that reconnected elsewhere before
its old session timed out, or a second publisher): the newer claim owns it. Each entry carries
when its node claimed the stream (Redis' clock), and every write, a claim's or a heartbeat's,
is conditional on no newer claim of another node being there, so the older node stops
renewing the entry while the newer one holds it and edges do not alternate between the two.
When the newer one ends, the older (if it still holds the stream) owns it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
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
# One heartbeat. KEYS: this node's key, then each held stream's key and slug key in pairs;
# ARGV: ttl (ms), this node's id, its entry, then each pair's entry and claim time (ms). Writes
# the node's entry, and each pair unless another node's newer claim is in either key (a tie
# goes to the greater node id); returns the pairs (from 1) not written.
_WRITE = """
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[1])
local yielded = {}
for i = 1, (#KEYS - 1) / 2 do
  local key, slug = KEYS[2 * i], KEYS[2 * i + 1]
  local entry, since = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  local newer = false
  for _, held in ipairs(redis.call('MGET', key, slug)) do
    if held and held ~= entry then
      local ok, other = pcall(cjson.decode, held)
      if ok and type(other) == 'table' and other.node ~= ARGV[2] then
        local their = tonumber(other.since) or 0
        if their > since or (their == since and tostring(other.node) > ARGV[2]) then
          newer = true
        end
      end
    end
  end
  if newer then
    yielded[#yielded + 1] = i
  else
    redis.call('SET', key, entry, 'PX', ARGV[1])
    redis.call('SET', slug, entry, 'PX', ARGV[1])
  end
end
return yielded
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
        self._write = self._client.register_script(_WRITE)
        self._ttl_ms = int(ttl_s * 1000)
        self._heartbeat_s = heartbeat_s
        self._metrics = metrics
        self._held = Holdings()
        # stream id -> when this node claimed it (ms, Redis' clock): the newer claim owns it.
        self._since: dict[int, int] = {}
        self._yielded: set[int] = set()  # held here, owned by a newer claim elsewhere
        # Writes one at a time: a heartbeat must not put back an entry a release just removed.
        self._writing = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        self._heartbeat = asyncio.create_task(self._run(), name=f"node-heartbeat:{self.node.id}")

    async def claim(self, stream_id: int, slug: str) -> None:
        since = await self._now_ms()
        self._held.add(stream_id, slug)
        self._since[stream_id] = since
        self._yielded.discard(stream_id)
        # When this fails, the next heartbeat writes the entry.
        await self.beat()

    async def release(self, stream_id: int) -> None:
        slug = self._held.remove(stream_id)
        if slug is None:
            return
        entry = self._entry(HeldStream(stream_id, slug))
        self._since.pop(stream_id, None)
        self._yielded.discard(stream_id)
        async with self._writing:
            try:
                await self._release(keys=[_stream_key(stream_id), _slug_key(slug)], args=[entry])
            except RedisError as exc:
                logger.warning("directory: could not remove stream %d (%s)", stream_id, exc)
        await self.beat()  # the node's list of streams

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
        await self.beat()

    async def leave_for_handover(self, broadcast_ids: Collection[int], for_s: float) -> None:
        if not broadcast_ids:
            return
        try:
            await self._client.set(
                _handover_key(self.node.id), json.dumps(sorted(broadcast_ids)),
                px=max(1, int(for_s * 1000)),
            )  # fmt: skip
        except RedisError as exc:
            # Started again within the wait, this node ends them at once (as after a crash).
            logger.warning("directory: broadcasts left for handover not noted (%s)", exc)

    async def left_for_handover(self, node_id: str) -> tuple[frozenset[int], float]:
        key = _handover_key(node_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                raw, left_ms = await pipe.execute()
        except RedisError as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        if raw is None or left_ms <= 0:
            return frozenset(), 0.0
        return frozenset(int(i) for i in json.loads(raw)), left_ms / 1000

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
            await self.beat()

    async def beat(self) -> None:
        """Write (and so renew) this node's key and the entry of every stream it holds, unless
        another node claimed that stream since (what the heartbeat does)."""
        async with self._writing:
            held = self._held.streams()
            node = {"node": self.node.id, "url": self.node.internal_url,
                    "public_url": self._public_url, "draining": self._draining,
                    "streams": [[h.stream_id, h.slug] for h in held]}  # fmt: skip
            keys = [_node_key(self.node.id)]
            args: list[str | int] = [self._ttl_ms, self.node.id, _dumps(node)]
            for h in held:
                keys += [_stream_key(h.stream_id), _slug_key(h.slug)]
                args += [self._entry(h), self._since.get(h.stream_id, 0)]
            try:
                yielded: list[int] = await self._write(keys=keys, args=args)
            except RedisError as exc:
                self._metrics.heartbeat_failures.inc()
                logger.warning("directory heartbeat failed: %s", exc)
                return
            self._note_yielded({held[int(i) - 1].stream_id for i in yielded})

    def _note_yielded(self, yielded: set[int]) -> None:
        for stream_id in yielded - self._yielded:
            logger.info("directory: stream %d is live on another node too, claimed there"
                        " later: that node owns it", stream_id)  # fmt: skip
        self._yielded = yielded

    async def _now_ms(self) -> int:
        """Now on Redis' clock (one clock for every node), or this node's when it is down."""
        try:
            seconds, micros = await self._client.time()
        except RedisError:
            return time.time_ns() // 1_000_000
        return int(seconds) * 1000 + int(micros) // 1000

    def _entry(self, held: HeldStream) -> str:
        return _dumps({"node": self.node.id, "url": self.node.internal_url,
                       "stream_id": held.stream_id, "slug": held.slug,
                       "since": self._since.get(held.stream_id, 0)})  # fmt: skip


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


def _handover_key(node_id: str) -> str:
    return f"{PREFIX}handover:{node_id}"


def _node_key(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"
