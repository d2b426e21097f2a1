"""What a node knows about one room while it has viewers: its settings and who may not chat.

Loaded from PostgreSQL when the room opens on this node, then kept current by the room's
own events (bans, timeouts, unbans and mode changes arrive on the bus from any node), so a
ban issued on one node is enforced on every node at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from livecore.events.types import Event, RoomMode
from livecore.store.chat import Ban, RoomSettings

_WATCHED = frozenset({"user_banned", "user_timed_out", "user_unbanned", "room_mode"})


@dataclass
class RoomState:
    settings: RoomSettings
    # user id -> unix time the ban ends, or None for a ban without end.
    bans: dict[int, float | None] = field(default_factory=dict)
    last_chat_at: dict[int, float] = field(default_factory=dict)  # for slow mode
    # A room_mode event does not carry the banned terms (viewers must not see them): the
    # settings are read again from the database before the next message is checked.
    stale: bool = False

    @classmethod
    def load(cls, settings: RoomSettings, bans: list[Ban]) -> RoomState:
        return cls(settings, {b.user_id: b.until.timestamp() if b.until else None for b in bans})

    def banned_for_s(self, user_id: int, now: float | None = None) -> float | None:
        """None if the user may chat; otherwise seconds left (inf for a ban)."""
        if user_id not in self.bans:
            return None
        until = self.bans[user_id]
        if until is None:
            return float("inf")
        left = until - (time.time() if now is None else now)
        if left <= 0:
            del self.bans[user_id]
            return None
        return left

    def on_event(self, event: Event) -> None:
        if event.kind not in _WATCHED:
            return
        data = event.data()
        if event.kind == "user_unbanned":
            self.bans.pop(int(data["user_id"]), None)
        elif event.kind == "user_banned":
            self.bans[int(data["user_id"])] = None
        elif event.kind == "user_timed_out":
            self.bans[int(data["user_id"])] = float(data["until"])
        elif event.kind == "room_mode":
            self.stale = True


def room_mode(s: RoomSettings) -> RoomMode:
    """The room's settings as viewers see them: how many terms are banned, never the list."""
    return RoomMode(
        s.slow_mode_s, s.subscribers_only, s.links_allowed, s.max_length, len(s.banned_terms)
    )


def settings_json(s: RoomSettings) -> dict[str, object]:
    """The room mode's fields (the hello frame's `room_mode`, the settings API's base)."""
    return room_mode(s).payload()
