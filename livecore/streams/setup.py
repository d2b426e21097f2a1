"""The streams part of the app: the stream service, the public listings and searches, who
may watch (built with the subscriber check, appkeys.SUBSCRIBER_ACCESS), and the streams and
end-now routes. Also the gates the media routes ask before serving a stream (`hls_gate` for
HLS and VOD, `whep_admit` for WHEP): streams/ owns playback rights, and hls/, recordings/
and signaling/ may not import it. Only app.py imports this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecore.appkeys import (
    AUDIT,
    CONFIG,
    LISTINGS,
    PLAYBACK,
    SEARCHES,
    SECRET_KEY,
    STREAM_RECORDS,
    STREAMS,
    SUBSCRIBER_ACCESS,
)
from livecore.cache import TtlCache
from livecore.streams import end_routes, routes
from livecore.streams.playback import PlaybackPolicy
from livecore.streams.routes import LISTING_TTL_S, hls_gate, whep_admit
from livecore.streams.service import StreamService

__all__ = ["hls_gate", "setup", "whep_admit"]


def setup(app: web.Application) -> None:
    """Add the context (after the accounts' and the subscriber check's) and the routes."""
    app.cleanup_ctx.append(_context)
    routes.setup(app)
    end_routes.setup(app)


async def _context(app: web.Application) -> AsyncIterator[None]:
    listings = app[LISTINGS] = TtlCache(LISTING_TTL_S)
    searches = app[SEARCHES] = TtlCache(LISTING_TTL_S, max_keys=256)
    playback = app[PLAYBACK] = PlaybackPolicy(
        app[STREAM_RECORDS], app[SECRET_KEY], token_ttl_s=app[CONFIG].hls.playback_token_ttl_s,
        extra_check=app[SUBSCRIBER_ACCESS].admits,
    )  # fmt: skip

    def changed() -> None:
        listings.invalidate()
        searches.invalidate()
        playback.forget()

    app[STREAMS] = StreamService(app[STREAM_RECORDS], app[AUDIT], on_change=changed)
    yield
