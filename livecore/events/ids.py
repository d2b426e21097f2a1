"""Room event ids that are never given twice: handed out from blocks reserved in a durable
source (PostgreSQL, wired by wiring/foundation.py), so losing a counter (a node restart, a
Redis restart or flush) can only skip ids, never repeat them. Chat lines are stored and
moderated by these ids, and clients resume by them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

# Ids reserved at once: one database round trip per this many events of a room, and at most
# this many ids skipped when a counter is lost.
BLOCK = 1000


class IdSource(Protocol):
    async def reserve(self, room: int, count: int) -> int:
        """Reserve the room's next `count` ids for good; return the highest of them."""
        ...


class MemoryIds:
    """Ids for a bus that outlives nothing (tests, tools): a counter per room, in memory."""

    def __init__(self) -> None:
        self._reserved: dict[int, int] = defaultdict(int)

    async def reserve(self, room: int, count: int) -> int:
        self._reserved[room] += count
        return self._reserved[room]


class IdBlocks:
    """This node's own blocks of a room's ids, taken in order, refilled when one runs out."""

    def __init__(self, source: IdSource, block: int = BLOCK) -> None:
        self._source = source
        self._block = block
        self._next: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._reserving: dict[int, asyncio.Future[tuple[int, int]]] = {}

    async def take(self, room: int) -> int:
        """The room's next id from this node's block (reserving a new block if it is used up).

        Ids come out in the order callers asked once they hold one: a caller that must deliver
        in id order delivers without awaiting anything after this returns.
        """
        while True:
            nxt = self._next.get(room)
            if nxt is not None and nxt <= self._last[room]:
                self._next[room] = nxt + 1
                return nxt
            first, last = await self.reserve(room)
            if self._last.get(room, 0) < first:  # another caller may have refilled already
                self._next[room], self._last[room] = first, last

    async def reserve(self, room: int) -> tuple[int, int]:
        """A new block (first, last) of the room's ids; concurrent callers share one."""
        pending = self._reserving.get(room)
        if pending is None:
            pending = asyncio.ensure_future(self._reserve(room))
            self._reserving[room] = pending
            pending.add_done_callback(lambda _: self._reserving.pop(room, None))
        return await asyncio.shield(pending)

    async def _reserve(self, room: int) -> tuple[int, int]:
        last = await self._source.reserve(room, self._block)
        return last - self._block + 1, last
