"""The HLS origin of this node: a packager, a thumbnailer and the renditions ladder for
every live hub.

Each broadcast is packaged into its own recording (recordings.layout: a directory under
`recordings/<stream id>/`, which stays on disk; lower renditions go into subdirectories
named after them, "360p/"); one continued from another node, into the next leg of its
recording ("leg-1/" under it). A stream's last broadcast stays reachable at its live URLs (with
EXT-X-ENDLIST) until the stream goes live again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from livecore.config import HlsConfig
from livecore.hls.metrics import HlsMetrics
from livecore.hls.packager import Packager
from livecore.hls.packaging import EventHandler, PackagingProcesses, ThreadLink, WorkerLink
from livecore.hls.renditions import Rendition
from livecore.hls.thumbnails import Thumbnail, Thumbnailer
from livecore.hls.views import RenditionView
from livecore.hls.worker import WorkerEvent, WorkerSpec
from livecore.recordings.layout import broadcast_dir, rendition_dir
from livecore.sfu.hub import StreamHub
from livecore.sfu.media import MediaUnit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FinishedRecording:
    directory: Path
    size_bytes: int  # media bytes of every rendition (each segment once)


@dataclass
class _Broadcast:
    hub: StreamHub
    packager: Packager
    thumbnailer: Thumbnailer
    task: asyncio.Task[None]
    renditions: dict[str, Rendition]
    handed_over: bool = False  # it goes on on another node: served from there


class HlsOrigin:
    """Implements hls.views.HlsDirectory for the broadcasts of this process."""

    def __init__(
        self,
        root: Path,
        config: HlsConfig,
        *,
        workers: Callable[[], Awaitable[Executor]],
        metrics: HlsMetrics | None = None,
        packaging: PackagingProcesses | None = None,
        on_thumbnail: Callable[[int, bytes], None] | None = None,
        discontinuity_of: Callable[[int], int] | None = None,
        leg_of: Callable[[int], Path | None] | None = None,
        observe: Callable[[Path, WorkerEvent], None] | None = None,
    ) -> None:
        self._root = root
        # Told of what each rendition's worker reports (its directory, the event), after its
        # packager: the recordings' uploader (wiring/media.py). Called on the loop.
        self._observe = observe
        self._packaging = packaging
        self._config = config
        self._workers = workers
        self._metrics = metrics
        self._by_slug: dict[str, _Broadcast] = {}
        # Told of each new thumbnail (stream id, JPEG): screening (wiring/media.py).
        self._on_thumbnail = on_thumbnail
        # (stream id): where a new broadcast's discontinuity sequence starts (not 0: it
        # continues one begun on another node, livecore.nodestate).
        self._discontinuity_of = discontinuity_of or (lambda stream_id: 0)
        # (stream id): where such a broadcast records, the next leg of its recording (None:
        # a recording of its own, under `root`).
        self._leg_of = leg_of or (lambda stream_id: None)
        # Tasks of replaced broadcasts, still stopping their workers: awaited by close().
        self._retiring: set[asyncio.Task[None]] = set()

    def attach(self, hub: StreamHub) -> Path:
        """Start packaging a hub that just opened; returns its recording directory."""
        directory = self._leg_of(hub.stream_id) or broadcast_dir(
            self._root, hub.stream_id, datetime.now(UTC)
        )
        sub = hub.subscribe("hls")
        # Media sequence numbers unique per broadcast: segment URLs are cached as immutable,
        # and the next broadcast of the same stream must not reuse one.
        sequence_base = int(time.time())
        packager = Packager(
            sub, directory, self._config, slug=hub.slug, metrics=self._metrics,
            sequence_base=sequence_base, expect_audio="audio" in hub.kinds, link=self._link(),
        )  # fmt: skip
        # Subscribed right after the source's packager, with no await between: every rung
        # starts at the same keyframe, so segments line up across the ladder.
        renditions: dict[str, Rendition] = {}
        for name in self._config.renditions:
            if name != "source":
                renditions[name] = Rendition(
                    hub, name, rendition_dir(directory, name), self._config, metrics=self._metrics,
                    sequence_base=sequence_base, link=self._link(),
                )  # fmt: skip
        discontinuity = self._discontinuity_of(hub.stream_id)
        for p in (packager, *(r.packager for r in renditions.values())):
            p.discontinuity_base = discontinuity
        thumbnailer = Thumbnailer(
            hub, self._workers, interval_s=self._config.thumbnail_interval_s,
            on_new=self._on_thumbnail,
        )  # fmt: skip

        async def run() -> None:
            thumbs = asyncio.create_task(thumbnailer.run(), name=f"thumbs:{hub.slug}")
            ladder = [
                asyncio.create_task(r.run(), name=f"rendition:{hub.slug}:{r.name}")
                for r in renditions.values()
            ]
            try:
                await packager.run()
            except asyncio.CancelledError:
                for task in ladder:
                    task.cancel()  # each stops its worker process on the way out
                raise
            finally:
                hub.unsubscribe(sub)
                thumbs.cancel()
                # Renditions end with the hub, a moment after the source (their workers flush).
                results = await asyncio.gather(thumbs, *ladder, return_exceptions=True)
                for name, result in zip(renditions, results[1:], strict=True):
                    if isinstance(result, Exception):
                        logger.error("stream %s: rendition %s failed: %r", hub.slug, name, result)

        previous = self._by_slug.get(hub.slug)
        if previous is not None and not previous.task.done():
            previous.task.cancel()
            self._retiring.add(previous.task)
            previous.task.add_done_callback(self._retiring.discard)
        task = asyncio.create_task(run(), name=f"hls:{hub.slug}")
        self._by_slug[hub.slug] = _Broadcast(hub, packager, thumbnailer, task, renditions)
        logger.info("stream %s: packaging into %s", hub.slug, directory)
        return directory

    def _link(self) -> WorkerLink | None:
        """Where the next packager's worker runs: a packaging process (None: a thread)."""
        link = self._packaging.link() if self._packaging is not None else None
        if self._observe is None:
            return link
        return _ObservedLink(link if link is not None else ThreadLink(), self._observe)

    def lookup(self, stream: str) -> Mapping[str, RenditionView] | None:
        """The stream's renditions in ladder order: the source, and each rung that has a
        complete segment and was neither skipped nor dropped (a rung still starting is not
        listed yet, so the master playlist never waits on a worker)."""
        broadcast = self._by_slug.get(stream)
        if broadcast is None or (broadcast.handed_over and broadcast.hub.ended):
            return None  # another node may hold it now (the cluster's edge asks)
        views: dict[str, RenditionView] = {}
        for name in self._config.renditions:
            if name == "source":
                views[name] = broadcast.packager
            elif (rendition := broadcast.renditions.get(name)) is not None and rendition.listed:
                views[name] = rendition.packager
        return views

    def renditions(self, stream: str) -> Mapping[str, Rendition]:
        """The stream's ladder rungs, listed or not (for tests and diagnostics)."""
        broadcast = self._by_slug.get(stream)
        return dict(broadcast.renditions) if broadcast is not None else {}

    def picture(self, stream: str) -> tuple[int | None, int | None]:
        """The source rendition's width and height, read from the stream's SPS by the
        packager (None until then, or when the stream is not packaged here)."""
        source = (self.lookup(stream) or {}).get("source")
        video = source.variant("") if source is not None else None
        return (video.width, video.height) if video is not None else (None, None)

    def thumbnail(self, stream: str) -> Thumbnail | None:
        """The live broadcast's latest picture. None once it has ended: an ended broadcast's
        playlists stay (they end with ENDLIST) but its picture goes, so a stream that was
        taken down, or ended for any reason, shows nothing of itself any more."""
        broadcast = self._by_slug.get(stream)
        if broadcast is None or broadcast.hub.ended:
            return None
        return broadcast.thumbnailer.latest

    def directory_of(self, hub: StreamHub) -> Path | None:
        """Where `hub`'s broadcast is recorded (None: it is not packaged here)."""
        broadcast = self._broadcast_of(hub)
        return broadcast.packager.directory if broadcast is not None else None

    def hand_over(self, hub: StreamHub) -> None:
        """`hub`'s broadcast goes on on another node: its playlists get no ENDLIST (requests
        in flight are answered as a timeout), and new requests are left to that node."""
        broadcast = self._broadcast_of(hub)
        if broadcast is not None:
            broadcast.handed_over = True
            broadcast.packager.handed_over = True
            for rendition in broadcast.renditions.values():
                rendition.packager.handed_over = True

    def recording_of(self, hub: StreamHub) -> Awaitable[FinishedRecording] | None:
        """The recording of `hub`'s broadcast, once its packaging has finished (None: it
        was never packaged here)."""
        broadcast = self._broadcast_of(hub)
        return self._finished(broadcast) if broadcast is not None else None

    def _broadcast_of(self, hub: StreamHub) -> _Broadcast | None:
        broadcast = self._by_slug.get(hub.slug)
        return broadcast if broadcast is not None and broadcast.hub is hub else None

    @staticmethod
    async def _finished(broadcast: _Broadcast) -> FinishedRecording:
        await asyncio.wait([broadcast.task])  # a failed packager still leaves its recording
        packagers = [broadcast.packager, *(r.packager for r in broadcast.renditions.values())]
        size = sum(p.bytes_written for p in packagers)
        return FinishedRecording(broadcast.packager.directory, size)

    async def wait_finished(self, stream: str) -> None:
        broadcast = self._by_slug.get(stream)
        if broadcast is not None:
            await asyncio.shield(broadcast.task)

    async def close(self) -> None:
        """Finish every packager (flush, ENDLIST), stop every transcoder process and wait
        for their tasks."""
        for broadcast in list(self._by_slug.values()):
            if not broadcast.task.done():
                for rendition in broadcast.renditions.values():
                    rendition.stop()
                await broadcast.packager.aclose()
        tasks = [b.task for b in self._by_slug.values()]
        await asyncio.gather(*tasks, *self._retiring, return_exceptions=True)


class _ObservedLink:
    """A worker link whose events also reach an observer, after the packager's handler."""

    def __init__(self, inner: WorkerLink, observe: Callable[[Path, WorkerEvent], None]) -> None:
        self._inner = inner
        self._observe = observe

    def start(self, spec: WorkerSpec, on_event: EventHandler) -> None:
        def both(event: WorkerEvent) -> None:
            on_event(event)
            try:
                self._observe(spec.directory, event)
            except Exception:  # an observer's bug must not end the packaging
                logger.exception("hls %s: observer failed", spec.slug)

        self._inner.start(spec, both)

    def send(self, unit: MediaUnit, queued_at: float) -> None:
        self._inner.send(unit, queued_at)

    @property
    def backlog(self) -> int:
        return self._inner.backlog

    def end(self) -> None:
        self._inner.end()
