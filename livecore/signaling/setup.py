"""The WHIP and WHEP part of the app: its routes. The publishers and viewers they use come
with the live media (wiring/media.py); `whep_admit` is the streams' playback rights, and
`serve_elsewhere` the cluster's signaling edge, which signaling/ may not import. Only app.py
imports this module.
"""

from __future__ import annotations

from aiohttp import web

from livecore.signaling import routes


def setup(app: web.Application, *, whep_admit: routes.WhepAdmit) -> None:
    routes.setup(app, whep_admit=whep_admit)


def serve_elsewhere(app: web.Application, elsewhere: routes.Elsewhere) -> None:
    """WHEP offers and session requests for other nodes go to `elsewhere` (several nodes)."""
    routes.serve_elsewhere(app, elsewhere)
