"""The EventBus over Redis pub/sub, for several nodes.

Each node holds ONE pub/sub connection and subscribes to a room's channel while at least
one local listener is in that room (never one subscription per viewer). Publishing is one
round trip: a Lua script takes the room's next id (INCR), splices it into the pre-encoded
body, publishes, and keeps chat history, atomically, so ids are in delivery order.

When Redis is down, events still reach this node's own viewers (with ids from a local
counter) and the node reconnects with backoff and resubscribes its rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livecore.events.bus import REMEMBERED, Listener, Listeners
from livecore.events.metrics import BusMetrics
from livecore.events.types import Event

logger = logging.getLogger(__name__)

_PREFIX = "livecore:room:"
_PUBLISH = """
local id = redis.call('INCR', KEYS[1])
local body = ARGV[2] .. id .. ARGV[3]
redis.call('PUBLISH', KEYS[2], ARGV[1] .. ' ' .. id .. ' ' .. body)
if ARGV[4] ~= '0' then
  redis.call('LPUSH', KEYS[3], body)
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
  redis.call('EXPIRE', KEYS[3], 86400)
end
return id
"""
_TIMEOUT_S = 2.0


def _channel(room: int) -> str:
    return f"{_PREFIX}{room}"


def split_body(room: int, kind: str, ts: float, payload: dict[str, Any]) -> tuple[str, str]:
    """The viewer JSON cut where the id goes, so Redis can splice in the id it assigns."""
    rest = json.dumps(
        {"room": room, "ts": round(ts, 3), **payload}, separators=(",", ":"), ensure_ascii=False
    )
    head = json.dumps({"type": kind}, separators=(",", ":"))[:-1] + ',"id":'
    return head, "," + rest[1:]


class RedisBus:
    def __init__(self, url: str, *, history: int = 50, metrics: BusMetrics | None = None) -> None:
        self._client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._client.register_script(_PUBLISH)
        self._history = history
        self._metrics = metrics
        self._listeners = Listeners()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._local_id: dict[int, int] = defaultdict(int)
        self._connected = asyncio.Event()
        self._changed: set[int] = set()  # rooms to (un)subscribe, by the reader task
        self._ready: dict[int, asyncio.Event] = {}  # rooms whose SUBSCRIBE is on its way
        self._closing = False

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus")

    async def publish(self, room: int, kind: str, payload: dict[str, Any]) -> Event:
        ts = time.time()
        head, tail = split_body(room, kind, ts, payload)
        keep = str(self._history) if kind in REMEMBERED else "0"
        keys = [f"{_PREFIX}{room}:seq", _channel(room), f"{_PREFIX}{room}:history"]
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                event_id = int(await self._script(keys=keys, args=[kind, head, tail, keep]))
        except (RedisError, OSError, TimeoutError) as exc:
            # Redis is out: this node's viewers still get the event; other nodes cannot.
            if self._metrics is not None:
                self._metrics.publish_failures.inc()
            logger.warning("room %d: Redis publish failed (%s), delivering locally", room, exc)
            self._local_id[room] += 1
            event_id = self._local_id[room]
            event = Event(room, event_id, kind, f"{head}{event_id}{tail}".encode())
            self._listeners.deliver(event)
            return event
        self._local_id[room] = max(self._local_id[room], event_id)
        return Event(room, event_id, kind, f"{head}{event_id}{tail}".encode())

    def subscribe(self, room: int, listener: Listener) -> Callable[[], None]:
        if self._listeners.add(room, listener):
            self._changed.add(room)
            self._ready[room] = asyncio.Event()

        def unsubscribe() -> None:
            if self._listeners.remove(room, listener):
                self._changed.add(room)

        return unsubscribe

    async def joined(self, room: int) -> None:
        ready = self._ready.get(room)
        if ready is not None:
            # Bounded: with Redis down the viewer still joins (and hears this node).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TIMEOUT_S):
                    await ready.wait()

    async def history(self, room: int) -> list[bytes]:
        """The room's remembered events (chat, deletions, tips), oldest first."""
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                items = await self._client.lrange(f"{_PREFIX}{room}:history", 0, -1)
        except (RedisError, OSError, TimeoutError):
            return []
        return [i if isinstance(i, bytes) else i.encode() for i in reversed(items)]

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            await _stop(self._reader)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        await self._client.aclose()

    # -- subscription upkeep -----------------------------------------------------------------

    async def _sync_channels(self, pubsub: Any) -> None:
        """Follow rooms whose first listener arrived or last one left. Only the reader task
        talks to the pub/sub connection: redis-py's PubSub is not safe to share."""
        changed, self._changed = self._changed, set()
        rooms = set(self._listeners.rooms())
        join = [_channel(r) for r in changed if r in rooms]
        leave = [_channel(r) for r in changed if r not in rooms]
        if join:
            await pubsub.subscribe(*join)
        self._mark_ready([r for r in changed if r in rooms])
        if leave:
            await pubsub.unsubscribe(*leave)

    def _mark_ready(self, rooms: list[int]) -> None:
        # Redis handles commands in order: a PUBLISH it takes after this SUBSCRIBE reaches us.
        for room in rooms:
            ready = self._ready.pop(room, None)
            if ready is not None:
                ready.set()

    async def _read_forever(self) -> None:
        backoff = 0.1
        while not self._closing:
            try:
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                # Rooms changing while this SUBSCRIBE is under way are left in _changed.
                self._changed.clear()
                rooms = self._listeners.rooms()
                # Channel 0 is never published to: it keeps the connection in pub/sub mode
                # when this node has no rooms yet.
                await self._pubsub.subscribe(*(_channel(r) for r in rooms), _channel(0))
                self._mark_ready(rooms)
                self._connected.set()
                if backoff > 0.1:
                    logger.info("Redis bus reconnected; %d rooms resubscribed", len(rooms))
                    if self._metrics is not None:
                        self._metrics.reconnects.inc()
                backoff = 0.1
                await self._read(self._pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._connected.clear()
                logger.warning("Redis bus connection lost (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _read(self, pubsub: Any) -> None:
        while not self._closing:
            if self._changed:
                await self._sync_channels(pubsub)
            # A short wait: channel changes are applied between reads (a join is heard
            # within this bound; the joining viewer gets the history anyway).
            message = await pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            channel = message["channel"].decode()
            data: bytes = message["data"]
            kind, event_id, body = data.split(b" ", 2)
            room = int(channel.removeprefix(_PREFIX))
            event = Event(room, int(event_id), kind.decode(), body)
            if self._metrics is not None:
                self._metrics.received.inc()
            self._listeners.deliver(event)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the reader and wait for it to end, cancelling again while it goes on.

    A cancellation that lands as a pub/sub read's own short timeout expires can be taken
    for that timeout and swallowed (seen about once in twenty shutdowns): the reader then
    carries on, and a single cancel would leave close() waiting forever. The reader also
    checks `_closing` between reads.
    """
    for _ in range(50):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if done:
            return
    logger.error("the Redis bus reader did not stop")
