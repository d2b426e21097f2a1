"""Heartbeats for every chat socket of the node, from one task.

Every `interval_s` the node writes a WebSocket ping to each socket and drops the sockets
that sent nothing at all (no pong, no line) in the round since their last ping: a phone
that left without closing is let go within about two rounds. A round goes a slice of
sockets at a time, spread over half the interval, so neither the pings nor the pongs they
bring back arrive as one burst that delays the rooms' frames. One task and one pre-built
frame for the node: per-socket ping timers would put tens of thousands of timer objects on
the loop and, living for a whole interval, into the garbage collector's oldest
generation, whose full collections then hold the loop for most of a second at 10,000
viewers.
"""

from __future__ import annotations

import asyncio

from livecore.chat.metrics import ChatMetrics
from livecore.chat.room import WRITE_SLICE, Outbox, Rooms

PING_FRAME = b"\x89\x00"  # an empty ping (RFC 6455 5.5.2): the client answers with a pong
MAX_PAUSE_S = 1.0  # between two slices of a round


class Heartbeat:
    def __init__(self, rooms: Rooms, interval_s: float, metrics: ChatMetrics) -> None:
        self._rooms = rooms
        self._interval = interval_s
        self._metrics = metrics

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.round()
            await asyncio.sleep(max(0.0, self._interval - (loop.time() - started)))

    async def round(self) -> None:
        """Ping every socket of the node, or drop it if it left the last ping unanswered."""
        loop = asyncio.get_running_loop()
        outboxes = [outbox for room in self._rooms.all() for outbox in room.outboxes]
        starts = range(0, len(outboxes), WRITE_SLICE)
        pause = min(MAX_PAUSE_S, self._interval / 2 / max(1, len(starts)))
        for n, i in enumerate(starts):
            if n:
                await asyncio.sleep(pause)
            now = loop.time()
            for outbox in outboxes[i : i + WRITE_SLICE]:
                self._check(outbox, now)

    def _check(self, outbox: Outbox, now: float) -> None:
        if outbox.closed.is_set():
            return  # already on its way out
        if outbox.unanswered:
            # Unanswered. Judged once it has had half an interval to answer (a socket's
            # place in a round can move when others join or leave).
            if now - outbox.pinged_at >= self._interval / 2:
                self._metrics.unresponsive.inc()
                outbox.abandon()
            return
        if outbox.write_frame(PING_FRAME):
            outbox.unanswered, outbox.pinged_at = True, now
