"""The `hello` a joining socket is sent, read once for everyone joining a room together.

A hello holds the room's mode and its recent history: with the Redis bus a read of the
history is a round trip or two, and encoding it costs as much again. In a premiere's first
minute thousands of viewers join one room each second; each should not pay for both.

Joins that arrive together share one read, and an anonymous viewer's hello frame is encoded
once per read. A joiner never takes a read that was already under way when it joined: that
read could miss an event logged after it started and before the joiner's socket was added to
the room (the socket gets live events only from its joining on). It waits for the next read
instead, which starts once the one under way is done: at most one read per room is in
flight, and the joiners that arrived meanwhile share the next.

The last read is also kept for joiners that come later, while nothing has happened in the
room since it started (the room counts its events) and for at most `max_age_s`: renaming a
deleted account in the history sends the room no event.

Plain asyncio: no aiohttp and no bus here; `ChatService.greeting` gives each room its greeter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livecore.chat import protocol
from livecore.chat.room import text_frame


@dataclass(frozen=True, slots=True)
class Greeting:
    room_mode: dict[str, object]
    history: list[bytes]  # pre-encoded event bodies, oldest first
    anonymous_frame: bytes  # a whole WebSocket frame: the hello of a viewer not logged in

    def hello(self, user: dict[str, Any] | None) -> bytes:
        """A logged-in viewer's hello (a JSON array; the socket frames it)."""
        return protocol.hello(user, self.room_mode, self.history)


def greeting(room_mode: dict[str, object], history: list[bytes]) -> Greeting:
    return Greeting(room_mode, history, text_frame(protocol.hello(None, room_mode, history)))


class Greeter:
    """One room's hello: `get()` shares reads between joiners as the module says."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Greeting]],
        events_seen: Callable[[], int],
        *,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._events_seen = events_seen
        self._max_age_s = max_age_s
        self._clock = clock
        self._last: Greeting | None = None
        self._last_seen = -1  # the room's event count when the last read started
        self._last_at = 0.0
        self._running: asyncio.Future[Greeting] | None = None  # the read under way
        self._next: asyncio.Future[Greeting] | None = None  # the read joiners wait for
        self.reads = 0

    async def get(self) -> Greeting:
        """The hello for a socket already added to the room."""
        now = self._clock()
        last = self._last
        if (
            last is not None
            and self._last_seen == self._events_seen()
            and now - self._last_at < self._max_age_s
        ):
            return last
        waiting = self._next
        if waiting is not None:
            return await asyncio.shield(waiting)
        # This joiner makes the next read: it starts once the read under way is done, and
        # every joiner arriving until then shares it.
        mine = self._next = asyncio.get_running_loop().create_future()
        try:
            running = self._running
            if running is not None:
                await asyncio.wait([running])
            self._running, self._next = mine, None
            seen, started = self._events_seen(), self._clock()
            self.reads += 1
            result = await self._read()
        except BaseException as exc:
            if self._next is mine:
                self._next = None
            if isinstance(exc, Exception):
                mine.set_exception(exc)
                mine.exception()  # retrieved: its waiters re-raise it themselves
            else:
                mine.cancel()  # shutting down
            raise
        finally:
            if self._running is mine:
                self._running = None
        if seen == self._events_seen():
            self._last, self._last_seen, self._last_at = result, seen, started
        mine.set_result(result)
        return result
