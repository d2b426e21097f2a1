"""What the chat's request handlers share: the chat's services on the app, and the stream a
request names. The socket (`socket_routes.py`) and the moderation API (`moderation_routes.py`)
both read these; neither imports the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from livecore.appkeys import STREAM_RECORDS
from livecore.auth.origins import OriginPolicy
from livecore.auth.service import AuthService
from livecore.chat.metrics import ChatMetrics
from livecore.chat.room import Rooms
from livecore.chat.service import ChatService
from livecore.errors import NotFound
from livecore.events.bus import EventBus
from livecore.store.streams import Stream
from livecore.store.users import User

# Who may read a stream's chat (subscriber-only streams); wired by app.py.
MayRead = Callable[[User | None, Stream], Awaitable[bool]]


@dataclass
class Chat:
    bus: EventBus
    auth: AuthService
    service: ChatService
    rooms: Rooms
    metrics: ChatMetrics
    may_read: MayRead
    per_ip: defaultdict[str, int]
    sockets: set[web.WebSocketResponse]
    # Which pages may use the session cookie on a socket (cross-site WebSocket hijacking).
    origins: OriginPolicy


CHAT: Final = web.AppKey("chat", Chat)


async def stream_of(request: web.Request, key: str = "slug") -> Stream:
    """The stream the request's path names; 404 when there is none."""
    stream = await request.app[STREAM_RECORDS].by_slug(request.match_info[key])
    if stream is None:
        raise NotFound("no such stream")
    return stream
