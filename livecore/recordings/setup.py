"""The recordings part of the app: this node's storage (the local disk), the /vod/ routes,
and one context that finishes the recordings a stopped node left open (before this node
takes publishers) and runs the retention policy. Only app.py imports this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from livecore.appkeys import CONFIG, DB, NODE_STATE, RECORDINGS
from livecore.recordings import routes
from livecore.recordings.recovery import finish_interrupted
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk


def setup(app: web.Application, *, gate: routes.Gate) -> None:
    """Add the storage, the context (before the live media's) and the routes; `gate`
    admits each VOD request (subscriber-only recordings)."""
    app[RECORDINGS] = LocalDisk(app[CONFIG].data_path)
    app.cleanup_ctx.append(_context)
    routes.setup(app, gate=gate)


async def _context(app: web.Application) -> AsyncIterator[None]:
    # Before this node takes publishers: recordings it was writing when it last stopped.
    node = app.get(NODE_STATE)  # broadcasts another node continued are left to it
    await finish_interrupted(app[DB], app[RECORDINGS], node.node_id if node else None)
    retention = asyncio.create_task(
        Retention(app[DB], app[RECORDINGS], app[CONFIG].recordings).run(), name="retention"
    )
    yield
    retention.cancel()
    await asyncio.gather(retention, return_exceptions=True)
