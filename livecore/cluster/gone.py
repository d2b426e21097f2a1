"""Whether a failed request to another node says that node is not there any more.

Shared by the HLS and the signaling edge: such a failure (not a timeout: a busy node) is
worth one more directory read, since the stream may already be live on another node."""

from __future__ import annotations

import errno

import aiohttp

_GONE_ERRNOS = (errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE)


def node_gone(exc: BaseException) -> bool:
    """Refused, reset, or a kept-alive connection the node closed as it exited."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno in _GONE_ERRNOS
