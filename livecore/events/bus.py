"""The EventBus protocol and its in-process implementation (one node, the default)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any, Protocol

from livecore.events.types import Event, encode

logger = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class EventBus(Protocol):
    async def publish(self, room: int, kind: str, payload: dict[str, Any]) -> Event:
        """Give the event the room's next id and deliver it to every node's listeners."""
        ...

    def subscribe(self, room: int, listener: Listener) -> Callable[[], None]:
        """Listen to a room (synchronously called; must not block); returns unsubscribe."""
        ...

    async def history(self, room: int) -> list[bytes]:
        """The room's remembered events (chat, deletions, tips), oldest first."""
        ...

    async def joined(self, room: int) -> None:
        """Wait (briefly) until events of a newly subscribed room reach this node."""
        ...

    async def close(self) -> None: ...


class Listeners:
    """Listeners by room, shared by both buses: one list per room, not per socket."""

    def __init__(self) -> None:
        self._by_room: dict[int, list[Listener]] = defaultdict(list)

    def add(self, room: int, listener: Listener) -> bool:
        """Add; True when this is the room's first listener on this node."""
        first = room not in self._by_room
        self._by_room[room].append(listener)
        return first

    def remove(self, room: int, listener: Listener) -> bool:
        """Remove; True when the room has no listener left on this node."""
        listeners = self._by_room.get(room)
        if listeners is None:
            return False
        if listener in listeners:
            listeners.remove(listener)
        if listeners:
            return False
        del self._by_room[room]
        return True

    def rooms(self) -> list[int]:
        return list(self._by_room)

    def deliver(self, event: Event) -> None:
        for listener in self._by_room.get(event.room, ()):
            try:
                listener(event)
            except Exception:
                logger.exception("room %d: listener failed", event.room)


REMEMBERED = frozenset({"chat", "chat_deleted", "tip"})


class LocalBus:
    """In-process bus: ids from a per-room counter, delivery by direct call."""

    def __init__(self, *, history: int = 50) -> None:
        self._listeners = Listeners()
        self._next_id: dict[int, int] = defaultdict(int)
        self._history: dict[int, deque[bytes]] = defaultdict(lambda: deque(maxlen=history))

    async def publish(self, room: int, kind: str, payload: dict[str, Any]) -> Event:
        self._next_id[room] += 1
        event_id = self._next_id[room]
        event = Event(room, event_id, kind, encode(room, event_id, kind, time.time(), payload))
        if kind in REMEMBERED:
            self._history[room].append(event.body)
        self._listeners.deliver(event)
        return event

    def subscribe(self, room: int, listener: Listener) -> Callable[[], None]:
        self._listeners.add(room, listener)

        def unsubscribe() -> None:
            self._listeners.remove(room, listener)

        return unsubscribe

    async def history(self, room: int) -> list[bytes]:
        return list(self._history.get(room, ()))

    async def joined(self, room: int) -> None:
        return None

    async def close(self) -> None:
        return None
