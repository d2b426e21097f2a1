"""What the chat's request handlers share: the stream a request names (the chat's services
on the app are `appkeys.CHAT`, a `node.Chat`). The socket (`socket_routes.py`) and the
moderation API (`moderation_routes.py`) both read these; neither imports the other.
"""

from __future__ import annotations

from aiohttp import web

from livecore.appkeys import STREAM_RECORDS
from livecore.errors import NotFound
from livecore.store.streams import Stream


async def stream_of(request: web.Request, key: str = "slug") -> Stream:
    """The stream the request's path names; 404 when there is none."""
    stream = await request.app[STREAM_RECORDS].by_slug(request.match_info[key])
    if stream is None:
        raise NotFound("no such stream")
    return stream
