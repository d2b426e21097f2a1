"""Rooms: the viewers of one stream on this node, and the batching that keeps storms cheap.

Events from the bus are collected and, once per tick, joined into ONE frame (a JSON array
of the events' pre-encoded bodies) that every socket of the room receives: a chat storm
costs one write per viewer per tick, not one per message. Each socket has a bounded
outbox; a socket that cannot keep up is closed rather than holding the room back.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from livecore.chat.state import RoomState
from livecore.events.bus import EventBus
from livecore.events.types import ESSENTIAL, Event

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoomTuning:
    tick_s: float = 0.075
    outbox_bytes: int = 1 << 20  # unread bytes a socket may have before it is closed
    # Above this many chat lines in one tick the room thins chat to this many per tick;
    # tips, moderation and state events always go through.
    storm_chat_per_tick: int = 40
    # Events waiting for the next tick; beyond this, chat is thinned at once.
    max_pending: int = 5000


# Sockets written between two looks at the event loop during a tick (~5 ms of writes).
WRITE_SLICE = 500


def text_frame(payload: bytes) -> bytes:
    """A whole WebSocket text frame (RFC 6455 5.2; server frames are not masked). Built once
    per tick and written as is to every socket of the room."""
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


class Outbox:
    """One socket's way out: frames written straight into its transport, no task per socket.

    The transport buffers what the client has not read yet; when that passes `limit_bytes`
    the socket is marked slow and its handler closes it (1013), so a slow phone never holds
    the room back nor grows the server's memory past the limit.
    """

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
        self.closed = asyncio.Event()
        self._transport = transport
        self._limit = limit_bytes

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
            self.closed.set()
            return False
        transport.write(frame)
        return True

    def finish(self) -> None:
        self.closed.set()


class Room:
    def __init__(self, stream_id: int, tuning: RoomTuning, on_frame: Callable[[int], None]) -> None:
        self.stream_id = stream_id
        self.outboxes: set[Outbox] = set()
        self._tuning = tuning
        self._on_frame = on_frame
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self.state: RoomState | None = None  # loaded by the chat service when first needed
        self.joined: set[str] = set()  # identities that joined since presence last looked
        self.audience_of: int | None = None  # the broadcast presence last counted for

    def on_event(self, event: Event) -> None:
        """From the bus (never blocks): keep the event for the next tick."""
        if self.state is not None:
            self.state.on_event(event)
        self._pending.append(event)
        if len(self._pending) > self._tuning.max_pending:
            self._pending = self._thin(self._pending, self._tuning.storm_chat_per_tick)
        self._wake.set()

    def send_now(self, body: bytes) -> None:
        """A node-local event (viewer counts) for every socket of the room, next tick."""
        self._pending.append(Event(self.stream_id, 0, "local", body))
        self._wake.set()

    async def run(self) -> None:
        """Flush pending events as one frame per tick, while there is something to send."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = loop.time()
            # A tick that ran long (a huge room) carries more lines before chat is thinned:
            # the storm threshold is a rate, not a count per tick.
            frame = self.take_frame(max(1.0, (started - last) / self._tuning.tick_s))
            last = started
            if frame is not None:
                # A big room's writes take a while (10,000 sockets: ~100 ms); the loop reads
                # new lines and answers requests between slices, so those make the next tick
                # instead of waiting for this one to end. Each socket still gets whole frames
                # in order: this task alone writes them.
                targets = list(self.outboxes)
                for i in range(0, len(targets), WRITE_SLICE):
                    if i:
                        await asyncio.sleep(0)
                    self._write(targets[i : i + WRITE_SLICE], frame)
            # Time spent writing counts towards the tick: a big room is not slowed further.
            await asyncio.sleep(max(0.0, self._tuning.tick_s - (loop.time() - started)))

    def flush(self, ticks: float = 1.0) -> None:
        """Send what is pending to every socket now, in one go."""
        frame = self.take_frame(ticks)
        if frame is not None:
            self._write(list(self.outboxes), frame)

    def take_frame(self, ticks: float = 1.0) -> bytes | None:
        """The pending events as one WebSocket frame (None: nothing to send), thinned when a
        storm brings more chat than `ticks` ticks may carry."""
        events, self._pending = self._pending, []
        if not events or not self.outboxes:
            return None
        allowed = int(self._tuning.storm_chat_per_tick * ticks)
        if sum(1 for e in events if e.kind == "chat") > allowed:
            events = self._thin(events, allowed)
        self._on_frame(len(self.outboxes))
        # Encoded and framed once, for everyone: each socket costs one transport write.
        return text_frame(b"[" + b",".join(e.body for e in events) + b"]")

    def _write(self, targets: list[Outbox], frame: bytes) -> None:
        for outbox in targets:
            if not outbox.write_frame(frame):
                self.outboxes.discard(outbox)  # its socket is closed by its handler

    def _thin(self, events: list[Event], allowed: int) -> list[Event]:
        """Storm mode: every essential event, and an even sample of chat."""
        chat = [e for e in events if e.kind == "chat"]
        keep_every = max(1, -(-len(chat) // max(1, allowed)))
        kept = {id(e) for e in chat[::keep_every]}
        return [e for e in events if e.kind in ESSENTIAL or e.kind == "local" or id(e) in kept]


class Rooms:
    """This node's rooms: one bus subscription and one ticker per room with viewers."""

    def __init__(self, bus: EventBus, tuning: RoomTuning, on_frame: Callable[[int], None]) -> None:
        self._bus = bus
        self._tuning = tuning
        self._on_frame = on_frame
        self._rooms: dict[int, tuple[Room, Callable[[], None], asyncio.Task[None]]] = {}

    def get(self, stream_id: int) -> Room | None:
        entry = self._rooms.get(stream_id)
        return entry[0] if entry is not None else None

    def open(self, stream_id: int) -> Room:
        entry = self._rooms.get(stream_id)
        if entry is not None:
            return entry[0]
        room = Room(stream_id, self._tuning, self._on_frame)
        unsubscribe = self._bus.subscribe(stream_id, room.on_event)
        task = asyncio.create_task(room.run(), name=f"room:{stream_id}")
        self._rooms[stream_id] = (room, unsubscribe, task)
        return room

    def join(self, stream_id: int, outbox: Outbox) -> Room:
        room = self.open(stream_id)
        room.outboxes.add(outbox)
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
