"""The EventBus protocol and its in-process implementation (one node, the default)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Protocol

from livecore.events.ids import IdBlocks, IdSource, MemoryIds
from livecore.events.types import Event, RoomEvent, encode_event

logger = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class BusUnavailable(Exception):
    """The event could not be sent to every node (Redis is out); nothing was delivered."""


class HistorySource(Protocol):
    async def recent(self, room: int, limit: int) -> list[bytes]:
        """The room's last stored events (bodies as viewers got them), oldest first."""
        ...


class EventBus(Protocol):
    async def publish(self, room: int, event: RoomEvent, *, local_fallback: bool = True) -> Event:
        """Give the event the room's next id, encode it (once, for every listener) and
        deliver it to every node's listeners.

        When other nodes cannot be reached, the event goes to this node's listeners alone, or,
        with local_fallback False, raises BusUnavailable and goes nowhere.
        """
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

    async def rename_in_history(self, room: int, user_id: int, name: str) -> int:
        """Show `name` for the user on the room's remembered events (their account was
        deleted); how many changed. Raises BusUnavailable when the history is out of reach."""
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

    def has(self, room: int) -> bool:
        return room in self._by_room

    def deliver(self, event: Event) -> None:
        for listener in self._by_room.get(event.room, ()):
            try:
                listener(event)
            except Exception:
                logger.exception("room %d: listener failed", event.room)


REMEMBERED = frozenset({"chat", "chat_deleted", "tip"})
_ID = re.compile(rb'"id":([0-9]+)')


def event_id(body: bytes) -> int:
    """The id in an event body (the envelope puts it first after the type)."""
    found = _ID.search(body)
    return int(found.group(1)) if found else 0


def renamed(body: bytes, user_id: int, name: str) -> bytes | None:
    """`body` with `name` for `user_id` in its "user" (a chat line, a tip), the envelope's
    key order and spacing kept (event_id reads the id where encode put it); None when the
    event is not that user's or already says so."""
    event = json.loads(body)
    user = event.get("user")
    if not isinstance(user, dict) or user.get("id") != user_id or user.get("name") == name:
        return None
    user["name"] = name
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def merge_history(stored: list[bytes], since: list[bytes], keep: int) -> list[bytes]:
    """The room's history after a restart: stored events and those remembered since, each
    once, in id order, the last `keep` of them (both lists oldest first)."""
    by_id = {event_id(b): b for b in stored}
    by_id.update((event_id(b), b) for b in since)
    merged = [by_id[i] for i in sorted(by_id)]
    return merged[-keep:] if keep else []


class LocalBus:
    """In-process bus: ids from blocks reserved in `ids`, delivery by direct call.

    History is kept in memory and, after a restart, taken up again from `stored`.
    """

    def __init__(
        self,
        ids: IdSource | None = None,
        *,
        history: int = 50,
        stored: HistorySource | None = None,
    ) -> None:
        self._listeners = Listeners()
        self._ids = IdBlocks(ids if ids is not None else MemoryIds())
        self._keep = history
        self._stored = stored
        self._history: dict[int, deque[bytes]] = defaultdict(lambda: deque(maxlen=history))
        self._loaded: set[int] = set()  # rooms whose stored history has been taken up

    async def publish(self, room: int, event: RoomEvent, *, local_fallback: bool = True) -> Event:
        event_id = await self._ids.take(room)
        # No await from here on: events reach listeners in the order of their ids.
        body = encode_event(room, event_id, time.time(), event)
        published = Event(room, event_id, event.kind, body)
        if event.kind in REMEMBERED:
            self._history[room].append(body)
        self._listeners.deliver(published)
        return published

    def subscribe(self, room: int, listener: Listener) -> Callable[[], None]:
        self._listeners.add(room, listener)

        def unsubscribe() -> None:
            self._listeners.remove(room, listener)

        return unsubscribe

    async def history(self, room: int) -> list[bytes]:
        if room not in self._loaded and self._stored is not None:
            stored = await self._stored.recent(room, self._keep)
            if room not in self._loaded:
                merged = merge_history(stored, list(self._history.get(room, ())), self._keep)
                self._history[room] = deque(merged, maxlen=self._keep)
                self._loaded.add(room)
        return list(self._history.get(room, ()))

    async def joined(self, room: int) -> None:
        return None

    async def rename_in_history(self, room: int, user_id: int, name: str) -> int:
        remembered = self._history.get(room)
        if remembered is None:
            return 0
        changed = 0
        for i, body in enumerate(remembered):
            if (new := renamed(body, user_id, name)) is not None:
                remembered[i] = new
                changed += 1
        return changed

    async def close(self) -> None:
        return None
