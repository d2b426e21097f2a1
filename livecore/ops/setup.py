"""The operations part of the app: the metrics registry every package reports into, the
runtime probe (event-loop lag, garbage-collection pauses) and /metrics, /healthz, /readyz.

Only app.py imports this module; `observe` is the first middleware it installs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecore.appkeys import METRICS
from livecore.ops import routes
from livecore.ops.metrics import Metrics
from livecore.ops.routes import observe
from livecore.ops.runtime import RuntimeProbe

__all__ = ["observe", "setup"]


def setup(app: web.Application) -> None:
    """Make the metrics registry (the other packages' setups read it) and add the routes."""
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_runtime)
    routes.setup(app)


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    """Event-loop lag and garbage-collection pauses, as metrics."""
    async with RuntimeProbe(app[METRICS].registry).running():
        yield
