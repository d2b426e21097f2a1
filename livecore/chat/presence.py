"""Viewer counts that are right across nodes.

Every few seconds each node writes its own count of each room's viewers into a Redis hash
(field = node, value = count and time), reads the hash back, and sums the counts written
recently: a dead node's viewers drop out once its entry goes stale. Without Redis the count
is this node's. The total goes to the room's local viewers as a `viewer_count` event.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livecore.chat.room import Room, Rooms
from livecore.events.types import ViewerCount, encode_event
from livecore.store.broadcasts import Broadcasts

logger = logging.getLogger(__name__)

_KEY = "livecore:presence:"
_TIMEOUT_S = 2.0


class Presence:
    def __init__(
        self,
        rooms: Rooms,
        broadcasts: Broadcasts,
        redis_url: str = "",
        *,
        interval_s: float = 5.0,
    ) -> None:
        self._rooms = rooms
        self._broadcasts = broadcasts
        self._local_unique: dict[int, set[str]] = {}
        self._interval_s = interval_s
        self.node = secrets.token_hex(6)
        self._redis = (
            aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
            if redis_url
            else None
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.broadcast()

    async def broadcast(self) -> None:
        """Send every room of this node its current total."""
        for room in self._rooms.all():
            total = await self.total(room.stream_id, len(room.outboxes))
            body = encode_event(room.stream_id, 0, time.time(), ViewerCount(total))
            room.send_now(body)
            try:
                await self._record(room, total)
            except Exception:
                logger.exception("stream %d: could not record the audience", room.stream_id)

    async def _record(self, room: Room, total: int) -> None:
        """Raise the live broadcast's peak and unique viewer counts."""
        broadcast_id = await self._broadcasts.open_broadcast(room.stream_id)
        if broadcast_id is None:
            return
        identities, room.joined = room.joined, set()
        if room.audience_of != broadcast_id:
            # A broadcast this node has not counted yet: everyone here counts from now.
            room.audience_of = broadcast_id
            identities |= {o.identity for o in room.outboxes}
        unique = await self._unique(broadcast_id, identities)
        await self._broadcasts.record_audience(broadcast_id, total, unique)

    async def _unique(self, broadcast_id: int, identities: set[str]) -> int:
        if self._redis is not None:
            key = f"livecore:audience:{broadcast_id}"
            try:
                async with asyncio.timeout(_TIMEOUT_S):
                    pipe = self._redis.pipeline(transaction=False)
                    if identities:
                        # HyperLogLog: about 12 KB per broadcast, ~1% error, any audience size.
                        pipe.pfadd(key, *identities)
                    pipe.expire(key, 2 * 24 * 3600)
                    pipe.pfcount(key)
                    return int((await pipe.execute())[-1])
            except (RedisError, OSError, TimeoutError):
                pass  # counted on this node only until Redis is back
        seen = self._local_unique.setdefault(broadcast_id, set())
        if len(seen) < 1_000_000:  # bounded: beyond this the count stops growing
            seen |= identities
        return len(seen)

    async def total(self, stream_id: int, local: int) -> int:
        if self._redis is None:
            return local
        key = f"{_KEY}{stream_id}"
        now = time.time()
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                pipe = self._redis.pipeline(transaction=False)
                pipe.hset(key, self.node, f"{local} {now:.0f}")
                pipe.expire(key, int(self._interval_s * 6))
                pipe.hgetall(key)
                entries = (await pipe.execute())[-1]
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("presence: Redis unavailable (%s); counting this node only", exc)
            return local
        fresh_after = now - 3 * self._interval_s
        total = 0
        for value in entries.values():
            count, written = value.split()
            if float(written) >= fresh_after:
                total += int(count)
        return total

    async def counts(self, stream_ids: Sequence[int]) -> dict[int, int]:
        """Each stream's viewer count now, for listings; writes nothing. This node's rooms as
        they are, the other nodes' as they last wrote them (within three intervals)."""
        local = {}
        for stream_id in stream_ids:
            room = self._rooms.get(stream_id)
            local[stream_id] = len(room.outboxes) if room is not None else 0
        if self._redis is None or not stream_ids:
            return local
        now = time.time()
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                pipe = self._redis.pipeline(transaction=False)
                for stream_id in stream_ids:
                    pipe.hgetall(f"{_KEY}{stream_id}")
                found = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("presence: Redis unavailable (%s); counting this node only", exc)
            return local
        fresh_after = now - 3 * self._interval_s
        totals = {}
        for stream_id, entries in zip(stream_ids, found, strict=True):
            total = local[stream_id]  # this node's own entry may be an interval old
            for node, value in entries.items():
                count, written = value.split()
                if node.decode() != self.node and float(written) >= fresh_after:
                    total += int(count)
            totals[stream_id] = total
        return totals

    async def leave_all(self) -> None:
        """This node is stopping: take its counts out at once."""
        if self._redis is None:
            return
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                for room in self._rooms.all():
                    await self._redis.hdel(f"{_KEY}{room.stream_id}", self.node)
        except (RedisError, OSError, TimeoutError):
            pass

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
