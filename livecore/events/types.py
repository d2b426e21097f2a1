"""The event envelope that travels on the bus and to viewers' sockets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

EventKind = Literal[
    "chat",
    "chat_deleted",
    "user_timed_out",
    "user_banned",
    "user_unbanned",
    "room_mode",
    "viewer_count",
    "tip",
    "stream_state",
    "account_revoked",  # on livecore.auth.suspensions.ACCOUNTS_ROOM, never a stream's room
]
KINDS: frozenset[str] = frozenset(EventKind.__args__)  # type: ignore[attr-defined]
# Kinds a chat storm never thins out: money and moderation always reach everyone.
ESSENTIAL: frozenset[str] = KINDS - {"chat"}


@dataclass(frozen=True, slots=True)
class Event:
    """One event in a room. `id` is monotonic per room across nodes (assigned by the bus);
    `body` is the event as viewers receive it, JSON-encoded once."""

    room: int
    id: int
    kind: str
    body: bytes

    def data(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


def encode(room: int, event_id: int, kind: str, ts: float, payload: dict[str, Any]) -> bytes:
    """The viewer-facing JSON of an event: encoded once, sent to every socket as is."""
    return json.dumps(
        {"type": kind, "id": event_id, "room": room, "ts": round(ts, 3), **payload},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
