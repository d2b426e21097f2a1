"""The chat on this node, as its request handlers and admin/ share it (appkeys.CHAT): the
bus, the accounts, the chat service, the rooms and their metrics, who may read a stream's
chat, and the open sockets. Plain values: no aiohttp here, so appkeys can name the type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from livecore.auth.origins import OriginPolicy
from livecore.auth.service import AuthService
from livecore.chat.admission import Admission
from livecore.chat.metrics import ChatMetrics
from livecore.chat.room import Rooms
from livecore.chat.service import ChatService
from livecore.events.bus import EventBus
from livecore.store.streams import Stream
from livecore.store.users import User

# Who may read a stream's chat (subscriber-only streams); made by chat/setup.py.
MayRead = Callable[[User | None, Stream], Awaitable[bool]]
# The stream a socket's path names (None: no such stream), as joins may read it: cached for
# at most a second per stream and node (streams/playback.py), like the HLS origin's check.
FindStream = Callable[[str], Awaitable[Stream | None]]


class ChatSocket(Protocol):
    """An open chat WebSocket, as shutdown closes it (aiohttp's WebSocketResponse)."""

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


@dataclass
class Chat:
    bus: EventBus
    auth: AuthService
    service: ChatService
    rooms: Rooms
    metrics: ChatMetrics
    may_read: MayRead
    per_ip: defaultdict[str, int]
    sockets: set[ChatSocket]
    # Which pages may use the session cookie on a socket (cross-site WebSocket hijacking).
    origins: OriginPolicy
    find_stream: FindStream
    admission: Admission  # the line joins wait in when they outrun the node
