"""Every event that travels on the bus to viewers' sockets: one frozen dataclass per kind,
the envelope around it, and how both are encoded.

This is the one place that knows an event's JSON. Publishers build the dataclass; the bus
encodes it once (`encode_event`, or `split_event` where Redis splices in the id), and the
bytes go to every socket as they are. Keys keep their order: clients and stored history
read these bodies as written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

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


class RoomEvent(Protocol):
    """What the bus publishes: an event of one kind, and the fields viewers get for it."""

    @property
    def kind(self) -> str: ...

    def payload(self) -> dict[str, Any]:
        """The event's own fields, in the order viewers get them (after the envelope's)."""
        ...


# -- chat -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Speaker:
    """Who said a chat line, as the session (never the client) says."""

    id: int
    name: str
    badges: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChatLine:
    kind: ClassVar[EventKind] = "chat"
    user: Speaker
    text: str

    def payload(self) -> dict[str, Any]:
        user = self.user
        return {"user": {"id": user.id, "name": user.name, "badges": list(user.badges)},
                "text": self.text}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChatDeleted:
    kind: ClassVar[EventKind] = "chat_deleted"
    message_id: int

    def payload(self) -> dict[str, Any]:
        return {"message_id": self.message_id}


# -- moderation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserTimedOut:
    kind: ClassVar[EventKind] = "user_timed_out"
    user_id: int
    until: float  # Unix time
    seconds: int

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "until": self.until, "seconds": self.seconds}


@dataclass(frozen=True, slots=True)
class UserBanned:
    kind: ClassVar[EventKind] = "user_banned"
    user_id: int

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class UserUnbanned:
    kind: ClassVar[EventKind] = "user_unbanned"
    user_id: int

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class RoomMode:
    """The room's rules as viewers see them: how many terms are banned, never the list."""

    kind: ClassVar[EventKind] = "room_mode"
    slow_mode_s: int
    subscribers_only: bool
    links_allowed: bool
    max_length: int
    banned_terms_count: int

    def payload(self) -> dict[str, Any]:
        return {
            "slow_mode_s": self.slow_mode_s,
            "subscribers_only": self.subscribers_only,
            "links_allowed": self.links_allowed,
            "max_length": self.max_length,
            "banned_terms_count": self.banned_terms_count,
        }


# -- the stream and its audience ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewerCount:
    kind: ClassVar[EventKind] = "viewer_count"
    count: int

    def payload(self) -> dict[str, Any]:
        return {"count": self.count}


@dataclass(frozen=True, slots=True)
class StreamMedia:
    """What an ended broadcast was: its video codec and size."""

    video_codec: str
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class StreamState:
    kind: ClassVar[EventKind] = "stream_state"
    state: Literal["live", "offline"]
    media: StreamMedia | None = None
    # Set when someone ended the broadcast on request (livecore.streams.ending): a role,
    # never a person's name, and why.
    ended_by: str | None = None
    reason: str | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state}
        if self.media is not None:
            media = self.media
            body.update(video_codec=media.video_codec, width=media.width, height=media.height)
        if self.ended_by is not None:
            body.update(ended_by=self.ended_by, reason=self.reason)
        return body


# -- accounts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRevoked:
    """Every node drops the account's cached sessions (livecore.auth.suspensions); on
    "suspended" and "deleted" it also closes the account's chat sockets, on "role" nodes read
    the new role."""

    kind: ClassVar[EventKind] = "account_revoked"
    user_id: int
    why: Literal["suspended", "role", "deleted"]

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "why": self.why}


@dataclass(frozen=True, slots=True)
class TipSent:
    """A tip settled: the room hears who gave how much, with their (screened) message."""

    kind: ClassVar[EventKind] = "tip"
    tip_id: int
    amount_minor: int
    currency: str
    message: str
    test_mode: bool
    user_id: int
    user_name: str

    def payload(self) -> dict[str, Any]:
        return {"tip_id": self.tip_id, "amount_minor": self.amount_minor,
                "currency": self.currency, "message": self.message, "test_mode": self.test_mode,
                "user": {"id": self.user_id, "name": self.user_name}}  # fmt: skip


# -- the envelope ---------------------------------------------------------------------------


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


def encode_event(room: int, event_id: int, ts: float, event: RoomEvent) -> bytes:
    """An event's body once its id is known (the in-process bus, presence)."""
    return encode(room, event_id, event.kind, ts, event.payload())


def split_event(room: int, ts: float, event: RoomEvent) -> tuple[str, str]:
    """The event's body cut where the id goes, so Redis can splice in the id it assigns:
    `head + str(id) + tail` is `encode_event`'s body."""
    rest = json.dumps(
        {"room": room, "ts": round(ts, 3), **event.payload()},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    head = json.dumps({"type": event.kind}, separators=(",", ":"))[:-1] + ',"id":'
    return head, "," + rest[1:]
