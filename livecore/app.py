"""The aiohttp application factory: wires every package and owns their lifecycles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any

from aiohttp import web

from livecore.admin import routes as admin_routes
from livecore.appkeys import (
    BUS,
    CONFIG,
    DB,
    HUBS,
    INGEST,
    LISTINGS,
    METRICS,
    PUBLISHERS,
    RECORDINGS,
    TRUSTED_PROXIES,
    VIEWERS,
)
from livecore.auth import setup as auth_setup
from livecore.auth.mail import MailSender
from livecore.chat import setup as chat_setup
from livecore.clientip import parse_networks
from livecore.config import Config
from livecore.deadlines import body_deadline
from livecore.errors import json_errors
from livecore.events.types import Event, StreamMedia, StreamState
from livecore.hls import routes as hls_routes
from livecore.hls.metrics import HlsMetrics
from livecore.hls.origin import FinishedRecording, HlsOrigin
from livecore.hls.packaging import PackagingProcesses
from livecore.hls.thumbnails import Thumbnail
from livecore.hls.views import RenditionView
from livecore.ops import setup as ops_setup
from livecore.recordings import routes as recording_routes
from livecore.recordings.layout import ROOT as RECORDINGS_ROOT
from livecore.recordings.recovery import finish_interrupted
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk
from livecore.sfu.hub import HubRegistry, StreamHub
from livecore.sfu.metrics import SfuMetrics
from livecore.sfu.passthrough import (
    enlarge_receive_buffers,
    install_passthrough,
    restrict_host_addresses,
)
from livecore.sfu.publisher import Publishers
from livecore.sfu.viewers import Viewers
from livecore.sfu.vp8 import source_transcoders
from livecore.signaling import routes as signaling_routes
from livecore.store.broadcasts import MediaInfo
from livecore.streams import setup as streams_setup
from livecore.streams.ending import LiveEnder
from livecore.streams.health import IngestReport
from livecore.streams.live import BroadcastLog, RecordingDone, StateChange
from livecore.tips import setup as tips_setup
from livecore.transcode.workers import WorkerPool
from livecore.web import routes as web_routes
from livecore.wiring import foundation

logger = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]
HLS_ORIGIN = web.AppKey("hls_origin", HlsOrigin)
HLS_METRICS = web.AppKey("hls_metrics", HlsMetrics)


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


def create_app(
    config: Config,
    *,
    database_url: str | None = None,
    mailer: MailSender | None = None,
) -> web.Application:
    """Build the application. `database_url` overrides the config (the embedded database)."""
    app = web.Application(
        middlewares=[ops_setup.observe, json_errors, body_deadline],
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = config
    app[TRUSTED_PROXIES] = parse_networks(config.trusted_proxies)
    dsn = database_url or config.database_url
    if not dsn:
        raise ValueError("no database: set database_url or start the embedded database")
    # Order matters: each context may use the ones above it; exit runs in reverse.
    ops_setup.setup(app)
    foundation.setup(app, dsn)
    auth_setup.setup(app, mailer)
    tips_setup.setup_access(app)  # playback and chat are built with the subscriber check
    streams_setup.setup(app)  # its context (the listing cache) runs before _live_media
    app.cleanup_ctx.append(_live_media)
    # Broadcasts end before the chat's sockets close and aiohttp cancels handlers.
    app.on_shutdown.append(_end_broadcasts)
    chat_setup.setup(app)
    tips_setup.setup(app)  # after the chat: a tip's message passes the chat's rules
    signaling_routes.setup(app, whep_admit=streams_setup.whep_admit(app))
    app[HLS_METRICS] = HlsMetrics(app[METRICS].registry)
    hls_routes.setup(
        app, _OriginOf(app), config.hls, metrics=app[HLS_METRICS],
        cdn_base_url=config.cdn_base_url, gate=streams_setup.hls_gate,
    )  # fmt: skip
    app[RECORDINGS] = LocalDisk(config.data_path)
    recording_routes.setup(app, gate=streams_setup.hls_gate)
    web_routes.setup(app, stripe_js=bool(config.stripe.secret_key))
    admin_routes.setup(app)  # its context listens after the chat's
    return app


async def _live_media(app: web.Application) -> AsyncIterator[None]:
    """Hubs, publishers, and the log of broadcasts they start and end."""
    config = app[CONFIG]
    bus = app[BUS]
    background: set[asyncio.Task[Event]] = set()

    def spawn(coro: Coroutine[Any, Any, Event]) -> None:
        task = asyncio.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    install_passthrough()
    restrict_host_addresses(config.sfu.ice_host_addresses)
    enlarge_receive_buffers(config.sfu.udp_receive_buffer_bytes)
    # Before this node takes publishers: recordings it was writing when it last stopped.
    await finish_interrupted(app[DB], app[RECORDINGS])
    broadcasts = BroadcastLog(app[DB], on_change=app[LISTINGS].invalidate)
    writer = asyncio.create_task(broadcasts.run(), name="broadcast-log")
    hubs = app[HUBS] = HubRegistry(queue_size=config.sfu.reader_queue_units)
    # Decoding (thumbnails) runs in worker processes, never on the loop.
    workers = WorkerPool(config.hls.media_workers)
    recordings = config.data_path / RECORDINGS_ROOT
    # Packaging (Opus to AAC, muxing, files) runs in processes, never on the loop's core.
    packaging = PackagingProcesses(config.hls.packaging_processes, app[HLS_METRICS])
    origin = app[HLS_ORIGIN] = HlsOrigin(
        recordings, config.hls, workers=workers.get, metrics=app[HLS_METRICS],
        packaging=packaging,
    )  # fmt: skip
    hubs.on_open(origin.attach)

    recording_reports: set[asyncio.Task[None]] = set()

    async def report_recording(serial: int, finished: Awaitable[FinishedRecording]) -> None:
        recording = await finished  # size 0 (ended before its first segment): never listed
        broadcasts.report(RecordingDone(serial, recording.size_bytes))

    def on_state(hub: StreamHub, live: bool) -> None:
        (ender.watch if live else ender.unwatch)(hub.stream_id)
        media, recording, path = None, None, ""
        if live and (directory := origin.directory_of(hub)) is not None:
            path = str(directory.relative_to(config.data_path))
        if not live:
            rendition = (origin.lookup(hub.slug) or {}).get("source")
            video = rendition.variant("") if rendition is not None else None
            media = MediaInfo(
                video_codec=hub.video_codec or "", audio_codec=hub.audio_codec or "",
                width=video.width if video else None, height=video.height if video else None,
                bitrate_bps=hub.stats.average_bitrate_bps(),
            )  # fmt: skip
            recording = origin.recording_of(hub)
        follows = recording is not None
        broadcasts.report(StateChange(hub.stream_id, live, hub.serial, path, media, follows))
        if recording is not None:
            task = asyncio.create_task(report_recording(hub.serial, recording))
            recording_reports.add(task)
            task.add_done_callback(recording_reports.discard)
        shown = None if media is None else StreamMedia(media.video_codec, media.width, media.height)
        spawn(bus.publish(hub.stream_id, StreamState("live" if live else "offline", shown)))

    app[VIEWERS] = Viewers(config.sfu)
    app[PUBLISHERS] = Publishers(
        hubs, config.sfu, on_state=on_state, metrics=SfuMetrics(app[METRICS].registry),
        transcoders=source_transcoders(app[HLS_METRICS].transcoding),
    )  # fmt: skip
    # Ends asked for on any node reach the publisher's node: it listens while live.
    ender = LiveEnder(bus, app[PUBLISHERS])
    app[INGEST] = _IngestProbe(app[PUBLISHERS], origin)
    retention = asyncio.create_task(
        Retention(app[DB], app[RECORDINGS], config.recordings).run(), name="retention"
    )
    yield
    retention.cancel()
    await asyncio.gather(retention, *background, return_exceptions=True)
    await ender.close()
    await app[PUBLISHERS].close()
    await app[VIEWERS].close()
    await origin.close()
    # Packaging has finished: the last recordings are complete and reported.
    await asyncio.gather(*recording_reports, return_exceptions=True)
    await packaging.close()
    await workers.close()
    try:
        await broadcasts.drain()
    except TimeoutError:
        logger.error("broadcast states not all recorded at shutdown")
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


class _IngestProbe:
    """A stream's ingest health for the streams API: its publisher's figures (sfu/) and the
    picture size of its HLS source rendition (read from the stream's SPS by the packager)."""

    def __init__(self, publishers: Publishers, origin: HlsOrigin) -> None:
        self._publishers = publishers
        self._origin = origin

    async def report(self, stream_id: int) -> IngestReport | None:
        publisher = self._publishers.for_stream(stream_id)
        if publisher is None:
            return None
        health = await publisher.health()
        source = (self._origin.lookup(publisher.hub.slug) or {}).get("source")
        video = source.variant("") if source is not None else None
        return IngestReport(
            video_codec=health.video_codec, audio_codec=health.audio_codec,
            width=video.width if video else None, height=video.height if video else None,
            bitrate_bps=health.bitrate_bps, video_bitrate_bps=health.video_bitrate_bps,
            audio_bitrate_bps=health.audio_bitrate_bps, fps=health.fps,
            keyframe_interval_s=health.keyframe_interval_s,
            packets_received=health.packets_received, packets_lost=health.packets_lost,
            packet_loss=health.loss_fraction, last_media_s=health.last_media_s,
        )  # fmt: skip


async def _end_broadcasts(app: web.Application) -> None:
    await app[PUBLISHERS].close()
    await app[VIEWERS].close()
