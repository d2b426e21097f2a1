"""The admin part of the app: its routes (accounts, roles, creator requests), the admin
console's (live streams, one account, the audit log), and one context in which every node
listens for revoked accounts (after the chat's: a suspension closes chat sockets). Only
app.py imports this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from livecore.admin import console_routes, routes
from livecore.admin.accounts import RevocationListener
from livecore.appkeys import AUTH, BUS, CHAT

# Private: only this module sets and reads it.
_LISTENER: Final = web.AppKey("account_revocations", RevocationListener)


def setup(app: web.Application) -> None:
    routes.setup(app)
    console_routes.setup(app)
    app.cleanup_ctx.append(_revocations)


async def _revocations(app: web.Application) -> AsyncIterator[None]:
    """Every node listens for revoked accounts (after the chat context: it closes sockets)."""
    listener = app[_LISTENER] = RevocationListener(app[BUS], app[AUTH], app[CHAT].rooms)
    await listener.start()
    yield
    listener.close()
