"""This node's live media, where packages that may not import each other meet: sfu/ (hubs,
publishers, viewers), hls/ (the origin, its packaging processes and the decoding pool) and
streams/ (the broadcasts' state, `streams.states`; ends asked on any node, `LiveEnder`; the
studio's ingest figures). A stream going live and the origin's new thumbnails are offered to
the safety package's screening queue once its context has made it. One cleanup context,
because their shutdown is one sequence: publishers end, packaging finishes, the recordings
are reported, then the broadcast log drains.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from livecore.appkeys import (
    BUS,
    CONFIG,
    DB,
    HLS_METRICS,
    HLS_ORIGIN,
    HUBS,
    INGEST,
    LISTINGS,
    METRICS,
    NODE_STATE,
    PUBLISHERS,
    RECORDING_UPLOADS,
    SCREENING,
    VIEWERS,
)
from livecore.hls.origin import FinishedRecording, HlsOrigin
from livecore.hls.packaging import PackagingProcesses
from livecore.hls.worker import Finished, InitReady, SegmentUpdate, WorkerEvent
from livecore.nodestate import NodeState
from livecore.recordings.layout import ROOT as RECORDINGS_ROOT
from livecore.recordings.layout import leg_path
from livecore.recordings.uploader import BucketUploader
from livecore.safety.screening import Subject
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
from livecore.streams.ending import LiveEnder
from livecore.streams.health import IngestReport
from livecore.streams.live import BroadcastLog
from livecore.streams.states import StreamStates
from livecore.transcode.workers import WorkerPool

logger = logging.getLogger(__name__)


def setup(app: web.Application) -> None:
    """Add the context (after the recordings' and the streams') and end every broadcast at
    shutdown, before the chat's sockets close and aiohttp cancels handlers."""
    app.cleanup_ctx.append(_context)
    app.on_shutdown.append(_end_broadcasts)


async def _context(app: web.Application) -> AsyncIterator[None]:
    """Hubs, publishers, and the log of broadcasts they start and end."""
    config = app[CONFIG]
    bus = app[BUS]
    install_passthrough()
    restrict_host_addresses(config.sfu.ice_host_addresses)
    enlarge_receive_buffers(config.sfu.udp_receive_buffer_bytes)
    node = app[NODE_STATE]
    # The states and the log report to each other: the callback finds the states when called.
    states: StreamStates[StreamHub]
    broadcasts = BroadcastLog(
        app[DB], on_change=app[LISTINGS].invalidate, node_id=node.node_id,
        on_ended=lambda stream_id: states.handed_over_ended(stream_id),
    )  # fmt: skip
    writer = asyncio.create_task(broadcasts.run(), name="broadcast-log")
    hubs = app[HUBS] = HubRegistry(queue_size=config.sfu.reader_queue_units)
    # Decoding (thumbnails) runs in worker processes, never on the loop.
    workers = WorkerPool(config.hls.media_workers)
    # Packaging (Opus to AAC, muxing, files) runs in processes, never on the loop's core.
    # With a bucket, what it writes is uploaded as it completes (recordings.uploader).
    uploader = app.get(RECORDING_UPLOADS)
    packaging = PackagingProcesses(
        config.hls.packaging_processes, app[HLS_METRICS], restarts=config.hls.packaging_restarts,
        restart_window_s=config.hls.packaging_restart_window_s,
    )  # fmt: skip
    origin = app[HLS_ORIGIN] = HlsOrigin(
        config.data_path / RECORDINGS_ROOT, config.hls, workers=workers.get,
        metrics=app[HLS_METRICS], packaging=packaging,
        on_thumbnail=lambda stream_id, jpeg: _screen_thumbnail(app, stream_id, jpeg),
        discontinuity_of=lambda stream_id: _discontinuity(node, stream_id),
        leg_of=lambda stream_id: _leg(node, config.data_path, stream_id),
        observe=_uploading(uploader) if uploader is not None else None,
    )  # fmt: skip
    hubs.on_open(origin.attach)
    app[VIEWERS] = Viewers(config.sfu)
    # The publishers report to the states, which end broadcasts through the publishers (an
    # end asked on another node): the callback finds the states when first called.
    publishers = app[PUBLISHERS] = Publishers(
        hubs, config.sfu, on_state=lambda hub, live: states.changed(hub, live),
        metrics=SfuMetrics(app[METRICS].registry),
        transcoders=source_transcoders(app[HLS_METRICS].transcoding),
    )  # fmt: skip
    # Ends asked for on any node reach the publisher's node: it listens while live.
    ender = LiveEnder(bus, publishers)
    recorded = (
        origin
        if uploader is None
        else _Uploaded(origin, uploader, config.storage.request_timeout_s)
    )
    states = StreamStates(
        bus, broadcasts, recorded, ender, config.data_path,
        on_live=lambda stream_id: _screen(app, stream_id),
        node=node, handover_s=config.node.handover_s,
    )  # fmt: skip
    app[INGEST] = _IngestProbe(publishers, origin)
    yield
    await states.events_sent()
    await ender.close()
    await app[PUBLISHERS].close()
    await app[VIEWERS].close()
    await origin.close()
    # Packaging has finished: the last recordings are complete and reported.
    await states.recordings_reported()
    await packaging.close()
    await workers.close()
    try:
        await broadcasts.drain()
    except TimeoutError:
        logger.error("broadcast states not all recorded at shutdown")
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


class _IngestProbe:
    """A stream's ingest health for the streams API (streams.health.IngestProbe): its
    publisher's figures (sfu/) and the picture size of its HLS source rendition."""

    def __init__(self, publishers: Publishers, origin: HlsOrigin) -> None:
        self._publishers = publishers
        self._origin = origin

    async def report(self, stream_id: int) -> IngestReport | None:
        publisher = self._publishers.for_stream(stream_id)
        if publisher is None:
            return None
        health = await publisher.health()
        width, height = self._origin.picture(publisher.hub.slug)
        return IngestReport(
            video_codec=health.video_codec, audio_codec=health.audio_codec,
            width=width, height=height,
            bitrate_bps=health.bitrate_bps, video_bitrate_bps=health.video_bitrate_bps,
            audio_bitrate_bps=health.audio_bitrate_bps, fps=health.fps,
            keyframe_interval_s=health.keyframe_interval_s,
            packets_received=health.packets_received, packets_lost=health.packets_lost,
            packet_loss=health.loss_fraction, last_media_s=health.last_media_s,
        )  # fmt: skip


def _discontinuity(node: NodeState, stream_id: int) -> int:
    continued = node.continuing.get(stream_id)
    return continued.discontinuity if continued is not None else 0


def _leg(node: NodeState, data_path: Path, stream_id: int) -> Path | None:
    """Where a broadcast continued here records: the next leg of its recording, in the same
    storage (the bucket's prefix, or the data directory the processes of a box share)."""
    continued = node.continuing.get(stream_id)
    if continued is None or not continued.recording_path:
        return None
    return data_path / leg_path(continued.recording_path, continued.discontinuity)


def _uploading(uploader: BucketUploader) -> Callable[[Path, WorkerEvent], None]:
    """The packaging's reports, as the recordings' uploader takes them (recordings/ may not
    import hls/): init segments and complete segments written, renditions finished."""

    def observe(directory: Path, event: WorkerEvent) -> None:
        if isinstance(event, InitReady):
            uploader.init_written(directory, event.init.n)
        elif isinstance(event, SegmentUpdate) and event.segment.complete:
            uploader.segment_written(directory, event.segment)
        elif isinstance(event, Finished):
            uploader.finished(directory)

    return observe


class _Uploaded:
    """The origin as the broadcast states see it (streams.states.Packaging), a recording
    being reported done only once what was queued of it is in the bucket, or after
    `wait_s` at most (a bucket that is down: it is listed with what the bucket has so far,
    and the rest follows as the uploads succeed)."""

    def __init__(self, origin: HlsOrigin, uploader: BucketUploader, wait_s: float) -> None:
        self._origin = origin
        self._uploader = uploader
        self._wait_s = wait_s

    def directory_of(self, hub: StreamHub) -> Path | None:
        return self._origin.directory_of(hub)

    def picture(self, stream: str) -> tuple[int | None, int | None]:
        return self._origin.picture(stream)

    def hand_over(self, hub: StreamHub) -> None:
        self._origin.hand_over(hub)

    def recording_of(self, hub: StreamHub) -> Awaitable[FinishedRecording] | None:
        finished = self._origin.recording_of(hub)
        return None if finished is None else self._after_upload(finished)

    async def _after_upload(self, finished: Awaitable[FinishedRecording]) -> FinishedRecording:
        recording = await finished
        try:
            async with asyncio.timeout(self._wait_s):
                await self._uploader.flushed(recording.directory)
        except TimeoutError:
            logger.warning("recording %s: not all in the bucket yet", recording.directory)
        return recording


def _screen_thumbnail(app: web.Application, stream_id: int, jpeg: bytes) -> None:
    """A live stream's new thumbnail is screened (never waits)."""
    if (screening := app.get(SCREENING)) is not None:
        screening.offer(Subject("thumbnail", stream_id, jpeg=jpeg))


def _screen(app: web.Application, stream_id: int) -> None:
    """A stream went live: its title and its owner's name are screened (never waits)."""
    if (screening := app.get(SCREENING)) is not None:
        screening.offer_stream(stream_id)


async def _end_broadcasts(app: web.Application) -> None:
    await app[PUBLISHERS].close()
    await app[VIEWERS].close()
