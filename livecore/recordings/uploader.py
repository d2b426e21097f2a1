"""Copying recordings into the bucket as their broadcasts go on.

The packaging worker writes each rendition of a recording to this node's disk (the LL-HLS
origin serves the live edge from there); the main process is told of each init segment and
each complete segment as the worker reports it (wired in wiring/media.py), and this uploader
copies them into the bucket from the event loop with the async client: file reads in a
thread, nothing blocking on the loop, and nothing the live path ever waits for.

Per rendition, objects go up in order: an init segment before the segments that use it, a
segment before the playlist that lists it. The rendition's `vod.m3u8` in the bucket is
rendered here from the segments uploaded so far (not copied from disk), so it only ever
lists objects that are in the bucket, and it ends with EXT-X-ENDLIST: a node that dies
leaves a playable, finished recording up to its last uploaded segment.

A failed upload is retried until it succeeds, after a random delay of up to
`retry_base_s * 2^attempt` capped at `retry_max_s` (exponential backoff, full jitter), each
failure counted. Segments waiting are bounded (`upload_queue_segments`, all broadcasts of
the node together): when the queue is full, a new segment is not queued; it stays on local
disk only, is counted in livecore_recordings_upload_dropped_total, and the next segment
uploaded follows an EXT-X-DISCONTINUITY in the bucket's playlist. Init segments and
playlists always queue (a few per broadcast).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from livecore.config import StorageConfig
from livecore.recordings.bucket import Bucket
from livecore.recordings.layout import VOD_PLAYLIST, init_name
from livecore.recordings.metrics import UploadMetrics
from livecore.recordings.playlist import RecordedSegment, RecordingPlaylist

logger = logging.getLogger(__name__)

Kind = Literal["init", "segment", "playlist"]
CONTENT_TYPES: dict[Kind, str] = {
    "init": "video/mp4",
    "segment": "video/iso.segment",
    "playlist": "application/vnd.apple.mpegurl",
}
_MAX_EXPONENT = 30  # 2^30 times retry_base_s is past any retry_max_s


@dataclass(frozen=True, slots=True)
class _Segment:
    """A segment as the bucket's playlist lists it (`RecordedSegment`)."""

    msn: int
    init: int
    discontinuity: bool
    program_date_time: float
    complete: bool
    uri: str
    independent: bool
    duration_s: float


@dataclass(frozen=True, slots=True)
class _Job:
    name: str
    kind: Kind
    segment: _Segment | None
    queued_at: float  # time.monotonic()


class _Rendition:
    """One rendition of a recording being uploaded: its queue, in order, and its playlist."""

    def __init__(self, path: str, directory: Path, segment_target_s: float) -> None:
        self.path = path  # relative to the data directory, "/"-separated: its keys' prefix
        self.directory = directory
        self.jobs: deque[_Job] = deque()
        self.playlist = RecordingPlaylist(segment_target_s)
        self.gap = False  # a segment was dropped (queue full) since the last one queued
        self.skipped = False  # a queued segment's file was gone since the last one uploaded
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        self.uploaded: deque[str] = deque()  # segment files kept locally, oldest first


class BucketUploader:
    """Copies the recordings this node writes into `bucket`. Its calls never wait: each
    queues work for the rendition's upload task. `close` stops it (what is left stays on
    local disk)."""

    def __init__(
        self,
        bucket: Bucket,
        data_path: Path,
        settings: StorageConfig,
        *,
        segment_target_s: float,
        live_segments_kept: int,
        metrics: UploadMetrics,
    ) -> None:
        self._bucket = bucket
        self._data_path = data_path
        self._settings = settings
        self._segment_target_s = segment_target_s
        # Segments the live origin may still serve from disk (hls.packager keeps twice the
        # live window listed): never pruned locally.
        self._live_segments_kept = live_segments_kept
        self._metrics = metrics
        self._renditions: dict[Path, _Rendition] = {}
        self._queued_segments = 0
        self._slots = asyncio.Semaphore(settings.upload_concurrency)
        self._failures_logged = 0
        self._closed = False

    # -- what the packaging reports (on the loop; never waits) -------------------------------

    def init_written(self, directory: Path, n: int) -> None:
        self._queue(directory, _Job(init_name(n), "init", None, time.monotonic()))

    def segment_written(self, directory: Path, seg: RecordedSegment) -> None:
        """A complete segment's file is on disk."""
        if self._closed:
            return
        rendition = self._rendition(directory)
        if self._queued_segments >= self._settings.upload_queue_segments:
            rendition.gap = True
            self._metrics.dropped.inc()
            logger.warning(
                "recording %s: upload queue full, %s stays on local disk only",
                rendition.path, seg.uri,
            )  # fmt: skip
            return
        # The first segment queued after a dropped one follows a discontinuity.
        copy = _Segment(
            seg.msn, seg.init, seg.discontinuity or rendition.gap, seg.program_date_time,
            seg.complete, seg.uri, seg.independent, seg.duration_s,
        )  # fmt: skip
        rendition.gap = False
        self._queued_segments += 1
        self._metrics.queued.set(self._queued_segments)
        self._queue(directory, _Job(seg.uri, "segment", copy, time.monotonic()))

    def finished(self, directory: Path) -> None:
        """The rendition's packaging has ended: nothing more will be queued for it."""
        rendition = self._renditions.get(directory)
        if rendition is not None:
            rendition.finished = True
            if rendition.task is None:
                del self._renditions[directory]

    async def flushed(self, directory: Path) -> None:
        """Wait until every rendition of the recording in `directory` has uploaded what was
        queued (no deadline: callers bound it)."""
        for rendition in list(self._renditions.values()):
            if rendition.directory == directory or rendition.directory.is_relative_to(directory):
                await rendition.idle.wait()

    @property
    def queued_segments(self) -> int:
        return self._queued_segments

    async def close(self) -> None:
        self._closed = True
        tasks = [r.task for r in self._renditions.values() if r.task is not None]
        left = sum(len(r.jobs) for r in self._renditions.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if left:
            logger.warning("%d recording objects not uploaded at shutdown (kept on disk)", left)

    # -- the upload tasks --------------------------------------------------------------------

    def _rendition(self, directory: Path) -> _Rendition:
        rendition = self._renditions.get(directory)
        if rendition is None:
            path = directory.relative_to(self._data_path).as_posix()
            rendition = _Rendition(path, directory, self._segment_target_s)
            self._renditions[directory] = rendition
        return rendition

    def _queue(self, directory: Path, job: _Job) -> None:
        if self._closed:
            return
        rendition = self._rendition(directory)
        rendition.jobs.append(job)
        if rendition.task is None:
            rendition.idle.clear()
            rendition.task = asyncio.create_task(
                self._drain(rendition), name=f"upload:{rendition.path}"
            )

    async def _drain(self, rendition: _Rendition) -> None:
        try:
            while rendition.jobs:
                job = rendition.jobs[0]
                try:
                    await self._upload(rendition, job)
                except Exception:  # a file that cannot be read: skip it, keep the order
                    logger.exception("recording %s: %s not uploaded", rendition.path, job.name)
                    rendition.skipped = rendition.skipped or job.kind == "segment"
                finally:
                    rendition.jobs.popleft()
                    if job.kind == "segment":
                        self._queued_segments -= 1
                        self._metrics.queued.set(self._queued_segments)
        finally:
            rendition.task = None
            rendition.idle.set()
            if rendition.finished and self._renditions.get(rendition.directory) is rendition:
                del self._renditions[rendition.directory]

    async def _upload(self, rendition: _Rendition, job: _Job) -> None:
        try:
            data = await asyncio.to_thread((rendition.directory / job.name).read_bytes)
        except FileNotFoundError:
            # Deleted meanwhile (the recording was taken down): nothing to upload.
            logger.info("recording %s: %s is gone, not uploaded", rendition.path, job.name)
            rendition.skipped = rendition.skipped or job.kind == "segment"
            return
        await self._put(self._bucket.key(rendition.path, job.name), data, job.kind)
        seg = job.segment
        if seg is None:
            return
        self._metrics.delay.observe(time.monotonic() - job.queued_at)
        if rendition.skipped and not seg.discontinuity:
            seg = _Segment(
                seg.msn, seg.init, True, seg.program_date_time, seg.complete, seg.uri,
                seg.independent, seg.duration_s,
            )  # fmt: skip
        rendition.skipped = False
        rendition.playlist.add(seg)
        playlist = rendition.playlist.render().encode()
        await self._put(self._bucket.key(rendition.path, VOD_PLAYLIST), playlist, "playlist")
        if self._settings.prune_local:
            await self._prune(rendition, seg.uri)

    async def _put(self, key: str, data: bytes, kind: Kind) -> None:
        """Store one object, retrying with backoff until the bucket takes it."""
        attempt = 0
        while True:
            async with self._slots:
                started = time.monotonic()
                try:
                    async with asyncio.timeout(self._settings.request_timeout_s):
                        await self._bucket.put(key, data, CONTENT_TYPES[kind])
                except Exception as exc:  # any failure of the bucket: counted and retried
                    error: Exception = exc
                else:
                    self._metrics.latency.observe(time.monotonic() - started)
                    self._metrics.uploaded.labels(kind).inc()
                    self._metrics.bytes.inc(len(data))
                    return
            self._metrics.failures.inc()
            if attempt % 20 == 0:  # the first failure, then one line in 20
                logger.warning("upload of %s failed (attempt %d): %r", key, attempt + 1, error)
            exponent = min(attempt, _MAX_EXPONENT)
            ceiling = min(self._settings.retry_max_s, self._settings.retry_base_s * 2**exponent)
            attempt += 1
            # Full jitter: nodes that lost the bucket together do not retry together.
            await asyncio.sleep(random.uniform(0, ceiling))

    async def _prune(self, rendition: _Rendition, uploaded: str) -> None:
        """Delete local copies of uploaded segments the live origin no longer serves."""
        rendition.uploaded.append(uploaded)
        while len(rendition.uploaded) > self._live_segments_kept:
            name = rendition.uploaded.popleft()
            path = rendition.directory / name
            await asyncio.to_thread(path.unlink, missing_ok=True)
