"""The chat part of the app: rooms, their rules and the message store writer, presence
(which answers the streams' viewer counts), the heartbeat, the socket and moderation routes,
and closing every socket at shutdown. Built with the subscriber check
(appkeys.SUBSCRIBER_ACCESS) and the playback rights (appkeys.PLAYBACK); it hands the money
package its rules for a tip's message (appkeys.CHAT_SCREEN). Only app.py imports this module.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from livecore.appkeys import (
    AUDIT,
    AUTH,
    BUS,
    CHAT,
    CHAT_SCREEN,
    CONFIG,
    DB,
    METRICS,
    PLAYBACK,
    STREAM_RECORDS,
    SUBSCRIBER_ACCESS,
    VIEWER_COUNTS,
)
from livecore.auth.origins import OriginPolicy
from livecore.chat import routes
from livecore.chat.admission import Admission
from livecore.chat.heartbeat import Heartbeat
from livecore.chat.limits import chat_limits
from livecore.chat.metrics import ChatMetrics
from livecore.chat.node import Chat
from livecore.chat.presence import Presence
from livecore.chat.room import Rooms, RoomTuning
from livecore.chat.service import ChatService
from livecore.store.broadcasts import Broadcasts
from livecore.store.chat import ChatStore
from livecore.store.streams import Stream
from livecore.store.users import User

LineHook = Callable[[int, int, int, str], None]


def setup(app: web.Application, *, on_line: LineHook | None = None) -> None:
    """Add the context (after the live media's), the routes and the sockets' closing.
    `on_line` is told of each stored line (stream id, line id, user id, text) and must
    return at once: screening (wiring/moderation.py)."""
    app.cleanup_ctx.append(functools.partial(_context, on_line=on_line))
    routes.setup_routes(app)
    app.on_shutdown.append(_close_sockets)


async def _context(app: web.Application, *, on_line: LineHook | None) -> AsyncIterator[None]:
    """Chat rooms, their rules, presence and the message store writer."""
    config = app[CONFIG]
    settings = config.chat
    bus = app[BUS]
    metrics = ChatMetrics(app[METRICS].registry)

    tuning = RoomTuning(
        tick_s=settings.tick_ms / 1000, outbox_bytes=settings.outbox_bytes,
        storm_chat_per_tick=settings.storm_chat_per_tick,
    )  # fmt: skip
    rooms = Rooms(bus, tuning, metrics)
    limits = chat_limits(config)
    service = ChatService(
        bus, ChatStore(app[DB]), app[STREAM_RECORDS], app[AUDIT], rate_limiter=limits.rate,
        fallback_limiter=limits.local_rate, duplicates=limits.duplicates,
        may_chat_extra=app[SUBSCRIBER_ACCESS].admits, on_line=on_line,
    )  # fmt: skip
    playback = app[PLAYBACK]

    async def may_read(user: User | None, stream: Stream) -> bool:
        if stream.visibility == "public":
            return True
        return user is not None and await playback.may_watch(user, stream)

    origins = OriginPolicy(config.public_url, config.trusted_origins)
    app[CHAT] = Chat(
        bus, app[AUTH], service, rooms, metrics, may_read, defaultdict(int), set(), origins,
        playback.stream,
        Admission(
            settings.admit_per_s, settings.admit_burst, settings.admit_max_wait_s,
            app[METRICS].registry,
        ),
    )  # fmt: skip
    app[CHAT_SCREEN] = service.screen
    presence = Presence(
        rooms, Broadcasts(app[DB]), config.redis_url, interval_s=settings.presence_interval_s
    )
    app[VIEWER_COUNTS] = presence.counts
    tasks = [
        asyncio.create_task(service.run_persister(), name="chat-persister"),
        asyncio.create_task(presence.run(), name="presence"),
        asyncio.create_task(
            Heartbeat(rooms, settings.heartbeat_s, metrics).run(), name="chat-heartbeat"
        ),
    ]
    yield
    await service.drain()
    await presence.leave_all()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await rooms.close()
    await presence.close()
    await limits.close()


async def _close_sockets(app: web.Application) -> None:
    """Tell every chat client the node is going away (1001) before handlers are cancelled."""
    chat = app.get(CHAT)
    if chat is None:
        return
    await asyncio.gather(
        *(ws.close(code=1001, message=b"server shutting down") for ws in list(chat.sockets)),
        return_exceptions=True,
    )
