"""How long a client may take to send a request: bounds for slow and stalled clients.

Without them a connection that sends half a request line, or half a body, holds its socket
(and a handler) for as long as it likes; a few thousand such cost nothing to open.

- Request line and headers: aiohttp's keep-alive timer, which also runs from the moment a
  connection opens, closes a connection that has not delivered a complete request line and
  headers within `header_timeout_s` of opening or of its previous answer. The same bound is
  therefore how long an idle keep-alive connection stays open.
- Body: `body_deadline` gives a request's body `body_timeout_s` from the end of its headers.
  A body still incomplete then fails its reader: the client gets 408 and the connection is
  closed (the rest of that body is never waited for).
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from aiohttp import StreamReader, web

from livecore.appkeys import CONFIG
from livecore.config import Config
from livecore.errors import Handler, RequestTimeout


class ServerOptions(TypedDict):
    keepalive_timeout: float


def server_options(config: Config) -> ServerOptions:
    """Keyword arguments for aiohttp's AppRunner (and so its request handler)."""
    return {"keepalive_timeout": config.header_timeout_s}


class BodyTimeout(TimeoutError):
    """The request body did not arrive within body_timeout_s.

    A TimeoutError on purpose: when a handler never read the body, aiohttp's own drain of the
    rest after the answer meets it, treats it as a time-out and closes the connection.
    """


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bound the time the request's body may take to arrive (see the module docstring)."""
    payload = request.content
    if not request.body_exists or payload.is_eof():
        return await handler(request)
    timer = asyncio.get_running_loop().call_later(
        request.app[CONFIG].body_timeout_s, _expire, payload
    )
    try:
        return await handler(request)
    except BodyTimeout:
        raise RequestTimeout("the request body did not arrive in time") from None
    finally:
        timer.cancel()


def _expire(payload: StreamReader) -> None:
    if not payload.is_eof():  # all of it arrived: the handler may take its time reading
        payload.set_exception(BodyTimeout())
