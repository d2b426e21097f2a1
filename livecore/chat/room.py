"""Rooms: the viewers of one stream on this node, and the batching that keeps storms cheap.

Events from the bus are collected and, once per tick, joined into ONE frame (a JSON array
of the events' pre-encoded bodies) that every socket of the room receives: a chat storm
costs one write per viewer per tick, not one per message. Each socket has a bounded
outbox; a socket that cannot keep up is closed rather than holding the room back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from livecore.chat.state import RoomState
from livecore.events.bus import EventBus
from livecore.events.types import ESSENTIAL, Event

logger = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RoomTuning:
    tick_s: float = 0.075
    outbox_frames: int = 64  # ~5 s of ticks: a socket further behind is closed
    # Above this many chat lines in one tick the room thins chat to this many per tick;
    # tips, moderation and state events always go through.
    storm_chat_per_tick: int = 40
    # Events waiting for the next tick; beyond this, chat is thinned at once.
    max_pending: int = 5000


class Outbox:
    """One socket's bounded queue of frames and the task that writes them."""

    def __init__(self, send: Send, size: int, user_id: int | None, identity: str = "") -> None:
        self.user_id = user_id
        # Who this viewer is for unique-viewer counts: the user, or the address if anonymous.
        self.identity = identity
        self.slow = False
        self._send = send
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)
        self.closed = asyncio.Event()

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; False (and the socket is to be closed) when the outbox is full."""
        if self.slow:
            return False
        try:
            self._queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            self.slow = True
            self.closed.set()
            return False

    def finish(self) -> None:
        self.closed.set()
        # When the queue is full the writer is stopped through `closed` instead.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def run(self) -> None:
        """Write frames until finished or the socket fails."""
        while (frame := await self._queue.get()) is not None:
            if self.slow:
                return
            await self._send(frame)


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
            self._pending = self._thin(self._pending)
        self._wake.set()

    def send_now(self, body: bytes) -> None:
        """A node-local event (viewer counts) for every socket of the room, next tick."""
        self._pending.append(Event(self.stream_id, 0, "local", body))
        self._wake.set()

    async def run(self) -> None:
        """Flush pending events as one frame per tick, while there is something to send."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.flush()
            await asyncio.sleep(self._tuning.tick_s)

    def flush(self) -> None:
        events, self._pending = self._pending, []
        if not events or not self.outboxes:
            return
        chat = sum(1 for e in events if e.kind == "chat")
        if chat > self._tuning.storm_chat_per_tick:
            events = self._thin(events)
        frame = b"[" + b",".join(e.body for e in events) + b"]"  # encoded once, for everyone
        self._on_frame(len(self.outboxes))
        for outbox in list(self.outboxes):
            if not outbox.offer(frame):
                self.outboxes.discard(outbox)  # its socket is closed by its handler

    def _thin(self, events: list[Event]) -> list[Event]:
        """Storm mode: every essential event, and an even sample of chat."""
        chat = [e for e in events if e.kind == "chat"]
        keep_every = max(1, -(-len(chat) // self._tuning.storm_chat_per_tick))
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
