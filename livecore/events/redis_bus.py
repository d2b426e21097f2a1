"""The EventBus over Redis pub/sub, for several nodes.

Each node holds ONE pub/sub connection and subscribes to a room's channel while at least
one local listener is in that room (never one subscription per viewer). Publishing is one
round trip: a Lua script (`redis_scripts.py`) takes the room's next id, splices it into the
body the bus encoded once (`types.split_event`), publishes, and keeps chat history,
atomically, so ids are in delivery order.

Ids come from blocks reserved in PostgreSQL (livecore/events/ids.py): Redis holds the block
in use, and when it is used up or lost (Redis restarted or flushed) the script says so and
the node installs a new block, which is always above every id given before. So an id is
never given twice, and a room's history is taken up again from the stored lines.

A publish returns once this node's own listeners have the event: normally when it comes
back on the pub/sub connection (so events reach them in id order), and if that connection
is not subscribed yet (a reconnect under way), by handing it to them directly. After a
reconnect the node reads back from the room's history what it may have missed.

When Redis is down, events still reach this node's own viewers (ids from the node's own
block) unless the caller asks for every node or nothing (chat lines); the node reconnects
with backoff and resubscribes its rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livecore.events.bus import (
    REMEMBERED,
    BusUnavailable,
    HistorySource,
    Listener,
    Listeners,
    event_id,
    renamed,
)
from livecore.events.ids import IdBlocks, IdSource, MemoryIds
from livecore.events.metrics import BusMetrics
from livecore.events.redis_scripts import (
    INSTALL,
    PREFIX,
    PUBLISH,
    RENAME,
    TAKE_UP,
    channel,
    room_keys,
)
from livecore.events.types import Event, RoomEvent, split_event

logger = logging.getLogger(__name__)

_TIMEOUT_S = 2.0
# How long a publish waits for its own event to come back before handing it to this node's
# listeners directly (the pub/sub connection is being re-established).
_ECHO_S = 1.0
_RECENT = 512  # event ids per room remembered to deliver each event once


class _Delivered:
    """A room's events handed to this node's listeners: each once, and who waits for which."""

    __slots__ = ("heard", "ids", "order", "waiters")

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.order: deque[int] = deque()
        self.heard = 0  # the newest id that came over pub/sub (which brings them in order)
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []

    def first_time(self, event_id: int) -> bool:
        if event_id in self.ids:
            return False
        self.ids.add(event_id)
        self.order.append(event_id)
        if len(self.order) > _RECENT:
            self.ids.discard(self.order.popleft())
        return True

    def release(self, up_to: int) -> None:
        """Events reach this node in id order: an event wakes the publishers of it and of
        every earlier one."""
        waiting = []
        for wanted, future in self.waiters:
            if wanted <= up_to:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((wanted, future))
        self.waiters = waiting


class RedisBus:
    def __init__(
        self,
        url: str,
        *,
        ids: IdSource | None = None,
        history: int = 50,
        stored: HistorySource | None = None,
        metrics: BusMetrics | None = None,
    ) -> None:
        self._client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._publish = self._client.register_script(PUBLISH)
        self._install = self._client.register_script(INSTALL)
        self._take_up = self._client.register_script(TAKE_UP)
        self._rename = self._client.register_script(RENAME)
        self._history = history
        self._stored = stored
        self._metrics = metrics
        self._listeners = Listeners()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = IdBlocks(ids if ids is not None else MemoryIds())
        # Rooms that handed out ids of this node's own block while Redis was out: their next
        # Redis publish installs a new block first, so ids keep rising for their viewers.
        self._rebase: set[int] = set()
        self._delivered: dict[int, _Delivered] = {}
        self._connected = asyncio.Event()
        self._changed: set[int] = set()  # rooms to (un)subscribe, by the reader task
        self._ready: dict[int, asyncio.Event] = {}  # rooms whose SUBSCRIBE is on its way
        self._closing = False

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus")

    async def publish(self, room: int, event: RoomEvent, *, local_fallback: bool = True) -> Event:
        kind = event.kind
        head, tail = split_event(room, time.time(), event)
        keep = str(self._history) if kind in REMEMBERED else "0"
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                new_id = await self._publish_once(room, [kind, head, tail, keep])
        except (RedisError, OSError, TimeoutError) as exc:
            if self._metrics is not None:
                self._metrics.publish_failures.inc()
            if not local_fallback:
                logger.warning("room %d: Redis publish failed (%s); %s refused", room, exc, kind)
                raise BusUnavailable(str(exc)) from exc
            # Redis is out: this node's viewers still get the event; other nodes cannot.
            logger.warning("room %d: Redis publish failed (%s), delivering locally", room, exc)
            new_id = await self._ids.take(room)
            self._rebase.add(room)
            published = Event(room, new_id, kind, f"{head}{new_id}{tail}".encode())
            self._deliver(published)
            return published
        published = Event(room, new_id, kind, f"{head}{new_id}{tail}".encode())
        await self._reach_this_node(published)
        return published

    async def _publish_once(self, room: int, args: list[str]) -> int:
        keys = room_keys(room)
        if room in self._rebase:
            await self._install_block(room, keys)
            self._rebase.discard(room)
        for _ in range(3):
            new_id = int(await self._publish(keys=keys, args=args))
            if new_id:
                return new_id
            await self._install_block(room, keys)
        raise RedisError(f"room {room}: no event id after installing a new block")

    async def _install_block(self, room: int, keys: list[str]) -> None:
        first, last = await self._ids.reserve(room)
        await self._install(keys=keys[:1], args=[first, last])
        logger.info("room %d: event ids %d..%d installed", room, first, last)

    async def _reach_this_node(self, event: Event) -> None:
        """Return once this node's listeners have the event (see the module docstring)."""
        if not self._listeners.has(event.room):
            return
        delivered = self._delivered.setdefault(event.room, _Delivered())
        if event.id in delivered.ids:
            return
        future = asyncio.get_running_loop().create_future()
        delivered.waiters.append((event.id, future))
        try:
            async with asyncio.timeout(_ECHO_S):
                await future
        except TimeoutError:
            logger.info("room %d: event %d handed over directly", event.room, event.id)
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        delivered = self._delivered.setdefault(event.room, _Delivered())
        if delivered.first_time(event.id):
            self._listeners.deliver(event)
        delivered.release(event.id)

    def subscribe(self, room: int, listener: Listener) -> Callable[[], None]:
        if self._listeners.add(room, listener):
            self._changed.add(room)
            self._ready[room] = asyncio.Event()

        def unsubscribe() -> None:
            if self._listeners.remove(room, listener):
                self._changed.add(room)
                self._delivered.pop(room, None)

        return unsubscribe

    async def joined(self, room: int) -> None:
        ready = self._ready.get(room)
        if ready is not None:
            # Bounded: with Redis down the viewer still joins (and hears this node).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TIMEOUT_S):
                    await ready.wait()

    async def history(self, room: int) -> list[bytes]:
        """The room's remembered events (chat, deletions, tips), oldest first; after a Redis
        restart or flush, taken up again from the stored chat lines."""
        if not self._history:
            return []
        keys = [f"{PREFIX}{room}:history", f"{PREFIX}{room}:history-stored"]
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                items = await self._client.lrange(keys[0], 0, -1)
                if self._stored is not None and not await self._client.exists(keys[1]):
                    stored = await self._stored.recent(room, self._history)
                    items = await self._take_up(keys=keys, args=[self._history, *stored])
        except (RedisError, OSError, TimeoutError):
            return []
        return list(reversed(_as_bytes(items)))

    async def rename_in_history(self, room: int, user_id: int, name: str) -> int:
        """Rename in the room's history in Redis, which every node reads."""
        key = f"{PREFIX}{room}:history"
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                pairs = []
                for body in _as_bytes(await self._client.lrange(key, 0, -1)):
                    if (new := renamed(body, user_id, name)) is not None:
                        pairs += [body, new]
                return int(await self._rename(keys=[key], args=pairs)) if pairs else 0
        except (RedisError, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"room {room}: history not reached: {exc!r}") from exc

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
        join = [channel(r) for r in changed if r in rooms]
        leave = [channel(r) for r in changed if r not in rooms]
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
                await self._pubsub.subscribe(*(channel(r) for r in rooms), channel(0))
                self._mark_ready(rooms)
                if backoff > 0.1:
                    logger.info("Redis bus reconnected; %d rooms resubscribed", len(rooms))
                    if self._metrics is not None:
                        self._metrics.reconnects.inc()
                    await self._catch_up(rooms)
                self._connected.set()
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
            kind, number, body = data.split(b" ", 2)
            room = int(channel.removeprefix(PREFIX))
            if self._metrics is not None:
                self._metrics.received.inc()
            event = Event(room, int(number), kind.decode(), body)
            delivered = self._delivered.setdefault(room, _Delivered())
            delivered.heard = max(delivered.heard, event.id)
            self._deliver(event)

    async def _catch_up(self, rooms: list[int]) -> None:
        """After a reconnect, hand this node's listeners the remembered events (chat lines,
        deletions, tips) that were published while it was not subscribed."""
        for room in rooms:
            delivered = self._delivered.get(room)
            if delivered is None or not delivered.heard:
                continue
            remembered = _as_bytes(await self._client.lrange(f"{PREFIX}{room}:history", 0, -1))
            missed = [body for body in remembered if event_id(body) > delivered.heard]
            for body in reversed(missed):  # the list is newest first
                kind = json.loads(body)["type"]
                self._deliver(Event(room, event_id(body), kind, body))
            if missed:
                logger.info("room %d: %d events caught up after a reconnect", room, len(missed))


def _as_bytes(items: list[bytes | str]) -> list[bytes]:
    return [i if isinstance(i, bytes) else i.encode() for i in items]


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
