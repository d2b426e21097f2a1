"""Rooms: the viewers of one stream on this node, and the batching that keeps storms cheap.

Events from the bus go into the room's log. A sweep walks the room's sockets in slices and
writes each socket ONE frame (a JSON array of the events' pre-encoded bodies) holding
everything logged since that socket's last frame: a chat storm costs one write per viewer
per sweep, not one per message, and each slice's frame is built once for the sockets that
share a place in the log (nearly all of them). Because a slice takes what has arrived by
the time the sweep reaches it, an event waits at most one sweep for any socket, even when
writing a big room takes longer than a tick. Each socket has a bounded outbox; a socket
that cannot keep up is closed rather than holding the room back.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from livecore.chat.metrics import ChatMetrics
from livecore.chat.state import RoomState
from livecore.events.bus import EventBus
from livecore.events.types import ESSENTIAL, Event

if TYPE_CHECKING:
    from livecore.chat.greeting import Greeter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoomTuning:
    tick_s: float = 0.075  # the shortest time between two sweeps: what coalesces a storm
    outbox_bytes: int = 1 << 20  # unread bytes a socket may have before it is closed
    # Storm mode: chat lines pass at most at this many per tick on average over a second;
    # beyond it lines are dropped for every socket of the node alike. Tips, moderation and
    # state events always go through.
    storm_chat_per_tick: int = 40
    # Events logged and not yet written to every socket; beyond this chat is dropped at once.
    max_pending: int = 5000


# Sockets written between two looks at the event loop during a sweep (~5 ms of writes).
WRITE_SLICE = 500
# Sweeps a socket with unsent data waits for its client before it is written regardless
# (and then closed as slow if it never reads): ~1 s at the default tick.
MAX_DEFERRALS = 12


def text_frame(payload: bytes) -> bytes:
    """A whole WebSocket text frame (RFC 6455 5.2; server frames are not masked). Built once
    per slice and written as is to its sockets."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Transport(Protocol):
    """The part of a socket's transport the outbox uses (asyncio's or uvloop's: uvloop's
    transports implement the interface without subclassing asyncio.Transport)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...

    def abort(self) -> None: ...


class Outbox:
    """One socket's way out: frames written straight into its transport, no task per socket.

    The transport buffers what the client has not read yet; when that passes `limit_bytes`
    the socket is marked slow and its handler closes it (1013), so a slow phone never holds
    the room back nor grows the server's memory past the limit.
    """

    __slots__ = (
        "_limit",
        "_transport",
        "close_reason",
        "closed",
        "cursor",
        "deferred",
        "identity",
        "on_close",
        "pinged_at",
        "silent",
        "slow",
        "unanswered",
        "user_id",
    )

    def __init__(
        self,
        transport: Transport | None,
        limit_bytes: int,
        user_id: int | None,
        identity: str = "",
    ) -> None:
        self.user_id = user_id
        # Who this viewer is for unique-viewer counts: the user, or the address if anonymous.
        self.identity = identity
        self.slow = False
        self.silent = False  # answered no heartbeat: its handler drops the connection
        self.close_reason: bytes | None = None  # shut(): its handler closes with this
        self.closed = asyncio.Event()
        # Called once when the socket must be closed (slow, silent, shut): its handler acts
        # then, so no socket needs a task of its own waiting for that to happen.
        self.on_close: Callable[[], None] | None = None
        # Pinged, and nothing at all has come from the client since (the heartbeat's test).
        self.unanswered = False
        self.pinged_at = 0.0  # when the heartbeat last pinged it
        self.cursor = 0  # the room log's last event this socket was sent (set on joining)
        self.deferred = 0  # sweeps since this socket last had a frame while it had unsent data
        self._transport = transport
        self._limit = limit_bytes

    def unsent(self) -> int:
        """Bytes written that its client has not taken yet."""
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def offer(self, payload: bytes) -> bool:
        """Send one JSON array to this socket alone."""
        return self.write_frame(text_frame(payload))

    def write_frame(self, frame: bytes) -> bool:
        """Write a built frame; False when the socket is gone or too far behind."""
        transport = self._transport
        if self.slow or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self._limit:
            self.slow = True
            self._close()
            return False
        transport.write(frame)
        return True

    def abandon(self) -> None:
        """The client answered no heartbeat: its handler drops the connection."""
        self.silent = True
        self._close()

    def shut(self, reason: bytes) -> None:
        """Its user may no longer chat (suspended): its handler closes the socket."""
        self.close_reason = reason
        self._close()

    def drop(self) -> None:
        """Close the connection without a closing handshake (the peer is not answering)."""
        if self._transport is not None:
            self._transport.abort()

    def finish(self) -> None:
        """Its handler is done with it."""
        self.on_close = None
        self.closed.set()

    def _close(self) -> None:
        self.closed.set()
        told, self.on_close = self.on_close, None
        if told is not None:
            told()


class Room:
    def __init__(self, stream_id: int, tuning: RoomTuning, metrics: ChatMetrics) -> None:
        self.stream_id = stream_id
        self.outboxes: set[Outbox] = set()
        self._tuning = tuning
        self._metrics = metrics
        # The log: events not yet written to every socket, numbered by this node (ids from
        # the bus would not number node-local events such as viewer counts).
        self._seqs: list[int] = []
        self._bodies: list[bytes] = []
        self.head = 0  # the newest event's number
        # When the oldest event not yet taken by a sweep was logged (delivery latency).
        self._waiting_since: float | None = None
        self._wake = asyncio.Event()
        # Storm mode's allowance of chat lines: a token bucket refilled at the storm rate
        # that holds a second of it, so lines that arrive together after the node was busy
        # for a moment (a garbage collection) are not taken for a storm.
        self._chat_rate = tuning.storm_chat_per_tick / tuning.tick_s
        self._chat_burst = max(float(tuning.storm_chat_per_tick), self._chat_rate)
        self._chat_tokens = self._chat_burst
        self._refilled = 0.0
        self.state: RoomState | None = None  # loaded by the chat service when first needed
        self.joined: set[str] = set()  # identities that joined since presence last looked
        self.audience_of: int | None = None  # the broadcast presence last counted for
        # Events heard from the bus: a kept hello is good while this has not moved.
        self.events_seen = 0
        self.greeter: Greeter | None = None  # made by the chat service at the first join

    def add(self, outbox: Outbox) -> None:
        """A socket joins: it is sent what is logged from now on (its history comes with
        the hello)."""
        outbox.cursor = self.head
        self.outboxes.add(outbox)

    def on_event(self, event: Event) -> None:
        """From the bus (never blocks): log the event for the sockets' next frames."""
        self.events_seen += 1
        if self.state is not None:
            self.state.on_event(event)
        if event.kind not in ESSENTIAL and not self._may_log_chat():
            self._metrics.thinned.inc()
            return
        self._log(event.body)

    def send_now(self, body: bytes) -> None:
        """A node-local event (viewer counts) for every socket of the room."""
        self._log(body)

    def _log(self, body: bytes) -> None:
        if not self.outboxes:
            return  # nobody to send it to; a joining socket gets history instead
        self.head += 1
        self._seqs.append(self.head)
        self._bodies.append(body)
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        self._wake.set()

    def pending(self) -> int:
        """Events logged and not yet written to every socket."""
        return len(self._seqs)

    def _may_log_chat(self) -> bool:
        if len(self._seqs) >= self._tuning.max_pending:
            return False
        now = asyncio.get_running_loop().time()
        self._chat_tokens = min(
            self._chat_burst, self._chat_tokens + (now - self._refilled) * self._chat_rate
        )
        self._refilled = now
        if self._chat_tokens < 1.0:
            return False
        self._chat_tokens -= 1.0
        return True

    async def run(self) -> None:
        """Sweep the room's sockets whenever something is logged, at most once per tick."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = loop.time()
            await self.sweep()
            # Time spent writing counts towards the tick: a big room is not slowed further.
            await asyncio.sleep(max(0.0, self._tuning.tick_s - (loop.time() - started)))

    async def sweep(self) -> None:
        """Write every socket what it has not been sent, a slice at a time.

        A big room's writes take a while (10,000 sockets: ~150 ms); the loop reads new
        lines and answers requests between slices, and each slice takes what has been
        logged by then. Each socket still gets whole frames in order: this task alone
        writes the log to sockets.

        A socket whose client has not taken its last frame yet is passed over (for at most
        MAX_DEFERRALS sweeps) and later gets one frame with everything since: a slow reader
        costs one write when it catches up instead of one queued write per sweep.
        """
        floor = self.head  # every socket not deferred has been sent up to here at the end
        # One observation per sweep, of its oldest event: what the slowest line waited,
        # at no per-event cost. Events logged during this sweep count towards the next.
        waiting_since, self._waiting_since = self._waiting_since, None
        targets = list(self.outboxes)
        for i in range(0, len(targets), WRITE_SLICE):
            if i:
                await asyncio.sleep(0)
            floor = min(floor, self._write(targets[i : i + WRITE_SLICE]))
        if waiting_since is not None:
            self._metrics.delivery.observe(time.monotonic() - waiting_since)
        # Every socket of the room (joined since, too) is now past `floor`.
        cut = bisect.bisect_right(self._seqs, floor)
        del self._seqs[:cut], self._bodies[:cut]
        if floor < self.head:
            self._wake.set()  # deferred sockets: look again next tick

    def _write(self, targets: list[Outbox]) -> int:
        """Write a slice; the lowest cursor among the sockets it passed over."""
        head = lowest = self.head
        frames: dict[int, bytes] = {}  # by the cursor it continues from
        written = 0
        for outbox in targets:
            cursor = outbox.cursor
            if cursor >= head:
                continue
            if outbox.deferred < MAX_DEFERRALS and outbox.unsent():
                outbox.deferred += 1
                lowest = min(lowest, cursor)
                continue
            outbox.deferred = 0
            frame = frames.get(cursor)
            if frame is None:
                frame = frames[cursor] = self._frame_after(cursor)
            if outbox.write_frame(frame):
                outbox.cursor = head
                written += 1
            else:
                self.outboxes.discard(outbox)  # its socket is closed by its handler
        if frames:
            self._metrics.batches.inc(len(frames))
            self._metrics.deliveries.inc(written)
        return lowest

    def _frame_after(self, cursor: int) -> bytes:
        """The logged events after `cursor` as one WebSocket frame, encoded once for every
        socket at that place in the log."""
        start = bisect.bisect_right(self._seqs, cursor)
        return text_frame(b"[" + b",".join(self._bodies[start:]) + b"]")


class Rooms:
    """This node's rooms: one bus subscription and one sweeper per room with viewers."""

    def __init__(self, bus: EventBus, tuning: RoomTuning, metrics: ChatMetrics) -> None:
        self._bus = bus
        self._tuning = tuning
        self._metrics = metrics
        self._rooms: dict[int, tuple[Room, Callable[[], None], asyncio.Task[None]]] = {}

    def get(self, stream_id: int) -> Room | None:
        entry = self._rooms.get(stream_id)
        return entry[0] if entry is not None else None

    def open(self, stream_id: int) -> Room:
        entry = self._rooms.get(stream_id)
        if entry is not None:
            return entry[0]
        room = Room(stream_id, self._tuning, self._metrics)
        unsubscribe = self._bus.subscribe(stream_id, room.on_event)
        task = asyncio.create_task(room.run(), name=f"room:{stream_id}")
        self._rooms[stream_id] = (room, unsubscribe, task)
        return room

    def join(self, stream_id: int, outbox: Outbox) -> Room:
        room = self.open(stream_id)
        room.add(outbox)
        room.joined.add(outbox.identity)
        return room

    def leave(self, stream_id: int, outbox: Outbox) -> None:
        entry = self._rooms.get(stream_id)
        if entry is None:
            return
        room, unsubscribe, task = entry
        room.outboxes.discard(outbox)
        if not room.outboxes:
            del self._rooms[stream_id]
            unsubscribe()
            task.cancel()

    def all(self) -> list[Room]:
        return [entry[0] for entry in self._rooms.values()]

    async def close(self) -> None:
        for _, unsubscribe, task in self._rooms.values():
            unsubscribe()
            task.cancel()
        await asyncio.gather(*(t for _, _, t in self._rooms.values()), return_exceptions=True)
        self._rooms.clear()
