"""The HLS part of the app: its metrics and the /hls/ routes, which find streams in this
node's origin (appkeys.HLS_ORIGIN, made with the live media by wiring/media.py). Only app.py
imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from livecore.appkeys import CONFIG, HLS_METRICS, HLS_ORIGIN, METRICS
from livecore.hls import routes
from livecore.hls.metrics import HlsMetrics
from livecore.hls.thumbnails import Thumbnail
from livecore.hls.views import RenditionView


def setup(app: web.Application, *, gate: routes.Gate) -> None:
    """Add the metrics and the routes; `gate` admits each request (signed playback)."""
    config = app[CONFIG]
    metrics = app[HLS_METRICS] = HlsMetrics(app[METRICS].registry)
    routes.setup(
        app, _OriginOf(app), config.hls, metrics=metrics, cdn_base_url=config.cdn_base_url,
        gate=gate,
    )  # fmt: skip


class _OriginOf:
    """The HLS routes' directory: this app's origin, which exists once the app has started."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def lookup(self, stream: str) -> Mapping[str, RenditionView] | None:
        origin = self._app.get(HLS_ORIGIN)
        return origin.lookup(stream) if origin is not None else None

    def thumbnail(self, stream: str) -> Thumbnail | None:
        origin = self._app.get(HLS_ORIGIN)
        return origin.thumbnail(stream) if origin is not None else None
