"""The data-rights part of the app: its routes (a data export, deleting one's account) and
their per-node throttles. Only app.py imports this module.
"""

from __future__ import annotations

from aiohttp import web

from livecore.rights import routes


def setup(app: web.Application) -> None:
    routes.setup(app)
