"""Packager: one broadcast of one stream, from a hub Subscription to LL-HLS files on disk.

The event loop only moves MediaUnits from the subscription into a bounded hand-off to ONE
worker (`worker.py`, in a packaging process or a thread: `packaging.py`) that does every PyAV
call and every file write. The worker reports what it wrote as events applied on the loop, so
the state the HTTP handlers read is only ever touched on the loop, and a file is listed only
once it is completely on disk.

May import: config, hls/, sfu (the Subscription reader API and MediaUnit only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from livecore.config import HlsConfig
from livecore.hls.keyframes import KeyframeWatch
from livecore.hls.metrics import HlsMetrics
from livecore.hls.packaging import ThreadLink, WorkerLink
from livecore.hls.playlist import segment_cut_s, segment_limit_s, target_duration
from livecore.hls.state import InitInfo, MediaState, Part, Segment, VariantInfo
from livecore.hls.worker import Finished, InitReady, Resumed, SegmentUpdate, WorkerEvent, WorkerSpec
from livecore.sfu.hub import Subscription
from livecore.sfu.media import MediaUnit

logger = logging.getLogger(__name__)

# About 4 s of 30 fps video with 50 Opus packets/s: a worker this far behind real time has
# stalled (disk, CPU), and queuing more only adds latency and memory.
DEFAULT_QUEUE_UNITS = 320


class Packager:
    """Packages one broadcast into `directory` as the "source" rendition.

    Start it with `start()` (or await `run()` in a task you own). It ends by itself when the
    subscription ends (the broadcast is over) or a disk write fails; `aclose()` ends it early.
    Either way the last fragment is flushed and the playlist gets EXT-X-ENDLIST. The caller
    owns the subscription (unsubscribe from the hub after `wait_closed()`).
    """

    def __init__(
        self,
        sub: Subscription,
        directory: Path,
        config: HlsConfig,
        *,
        slug: str = "",
        metrics: HlsMetrics | None = None,
        sequence_base: int = 0,
        queue_units: int = DEFAULT_QUEUE_UNITS,
        expect_audio: bool = True,
        link: WorkerLink | None = None,
    ) -> None:
        self.slug = slug
        self.directory = directory
        self.config = config
        self.dropped_units = 0
        self._sub = sub
        self._metrics = metrics
        self._queue_units = queue_units  # the link is unbounded: _offer() bounds it
        self._link = link if link is not None else ThreadLink()
        self._spec = WorkerSpec(slug, directory, config, sequence_base, expect_audio)
        self._write_errors = 0
        self._drop_video_until_keyframe = False
        self._task: asyncio.Task[None] | None = None
        # State mirrored from the worker; only touched on the loop. Only the recent segments
        # are kept (see _forget_old_segments): a broadcast of hours has thousands.
        self._segments: list[Segment] = []
        self.bytes_written = 0  # media bytes of every part so far: the recording's size
        self._discontinuities_before: list[int] = []  # per segment, for DISCONTINUITY-SEQUENCE
        # A broadcast continued from another node starts one past that node's playlist; one
        # handed over to another node never shows ENDLIST: its viewers go on over there.
        self.discontinuity_base = 0
        self.handed_over = False
        self._inits: dict[int, InitInfo] = {}
        self._longest_s = 0.0
        self._gop_s = 0.0  # media time between the last two keyframe-led parts
        self._since_keyframe_s = 0.0
        self._keyframes = KeyframeWatch(config.segment_target_s)
        self._all_independent = True  # every complete segment so far starts with a keyframe
        self._ended = False
        self._failed = False
        self.version = 0  # counts changes to what the playlists show
        self._finished: asyncio.Future[None] | None = None
        # One Event per packager, replaced after every set(): waiters hold the one that was
        # current when they looked, so a single set() wakes exactly the waiters of that update.
        self._changed = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a task owned by this packager (see `aclose`)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"hls-packager-{self.slug}")

    async def run(self) -> None:
        """Package until the broadcast ends; returns once the recording is finished on disk."""
        self._finished = asyncio.get_running_loop().create_future()
        self._link.start(self._spec, self._apply)
        try:
            while not self._failed:
                unit = await self._sub.get()
                if unit is None:
                    break
                self._offer(unit)
        finally:
            self._link.end()  # the end marker always gets in: it is not bounded
            # Shielded: a second cancellation must not leave the worker's last writes unseen.
            await asyncio.shield(self._finished)

    async def aclose(self) -> None:
        """End packaging now (flushes and writes ENDLIST) and wait for the worker."""
        task = self._task
        if task is not None:
            task.cancel()
            # wait() does not raise the task's CancelledError, yet lets our own cancel through.
            await asyncio.wait([task])

    async def wait_closed(self) -> None:
        """Wait until the packaging has ended and every file is written."""
        if self._task is not None:
            await asyncio.shield(self._task)
        elif self._finished is not None:
            await asyncio.shield(self._finished)

    # -- the loop's side of the hand-off ------------------------------------------------------

    def _offer(self, unit: MediaUnit) -> None:
        if unit.kind == "video":
            self._watch_keyframes(unit)
        if unit.kind == "video" and self._drop_video_until_keyframe:
            if not unit.keyframe:
                self._count_drop()
                return
            self._drop_video_until_keyframe = False
        if self._link.backlog >= self._queue_units:
            # The worker is behind real time. Drop rather than grow memory or stall the loop;
            # a dropped access unit breaks decoding until the next keyframe, so video then
            # waits for one (and the hub asks the publisher for it).
            self._count_drop()
            if unit.kind == "video":
                self._drop_video_until_keyframe = True
                if self._sub.on_keyframe_needed is not None:
                    self._sub.on_keyframe_needed()
            return
        self._link.send(unit, time.monotonic())

    def _watch_keyframes(self, unit: MediaUnit) -> None:
        """Ask the publisher for a keyframe when one is due (`keyframes.py`)."""
        if self._keyframes.due(unit) and self._sub.on_keyframe_needed is not None:
            self._keyframes.asked()
            self._sub.on_keyframe_needed()

    def _count_drop(self) -> None:
        self.dropped_units += 1
        if self._metrics is not None:
            self._metrics.dropped_units.inc()
        if self.dropped_units == 1 or self.dropped_units % 100 == 0:
            logger.warning(
                "hls %s: packager behind real time, %d units dropped", self.slug, self.dropped_units
            )

    # -- the worker's reports, applied on the loop --------------------------------------------

    def _apply(self, event: WorkerEvent) -> None:
        if isinstance(event, InitReady):
            self._inits[event.init.n] = event.init
        elif isinstance(event, SegmentUpdate):
            seg = event.segment
            if self._metrics is not None:
                lag = self._metrics.segment_lag if seg.complete else self._metrics.part_lag
                lag.observe(event.lag_s)
            known = self._segments[-1] if self._segments else None
            new_parts = (
                seg.parts[len(known.parts) :] if known and known.msn == seg.msn else seg.parts
            )
            self._track_gop(new_parts)
            self._keyframes.segment_started(seg.msn, seg.start_s)
            self.bytes_written += sum(part.size for part in new_parts)
            if known is not None and known.msn == seg.msn:
                self._segments[-1] = seg
            else:
                before = self._discontinuities_before[-1] if known is not None else 0
                if known is not None and known.discontinuity:
                    before += 1
                self._segments.append(seg)
                self._discontinuities_before.append(before)
                self._forget_old_segments()
            if seg.complete:
                self._longest_s = max(self._longest_s, seg.duration_s)
                self._all_independent = self._all_independent and seg.independent
        elif isinstance(event, Resumed):
            # Its process died; a new worker starts at a keyframe: ask for one now.
            if self._sub.on_keyframe_needed is not None:
                self._sub.on_keyframe_needed()
        elif isinstance(event, Finished):
            self._ended = True
            if event.write_error:
                self._write_errors += 1
                if self._metrics is not None:
                    self._metrics.write_errors.inc()
            if event.failed:
                self._failed = True
                self._sub.end()  # wakes run() if it waits for media: nothing more is packaged
                # A segment cut short by the failure has no segment file: never list it.
                if self._segments and not self._segments[-1].complete:
                    cut_short = self._segments.pop()
                    self._discontinuities_before.pop()
                    self.bytes_written -= sum(part.size for part in cut_short.parts)
            if self._finished is not None and not self._finished.done():
                self._finished.set_result(None)
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _forget_old_segments(self) -> None:
        """Keep twice the live window: a segment stays served for as long as a playlist that
        listed it can be in use (RFC 8216 6.2.2), and the recording on disk has them all."""
        keep = 2 * self.config.live_window_segments + 1
        if len(self._segments) > 2 * keep:  # trimmed in batches: amortised O(1) per segment
            del self._segments[:-keep]
            del self._discontinuities_before[:-keep]

    def _track_gop(self, new_parts: tuple[Part, ...]) -> None:
        for part in new_parts:
            if part.independent:
                if self._since_keyframe_s > 0:
                    self._gop_s = self._since_keyframe_s
                self._since_keyframe_s = 0.0
            self._since_keyframe_s += part.duration_s

    # -- what the HTTP layer reads --------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended and not self.handed_over

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def write_errors(self) -> int:
        return self._write_errors

    @property
    def init(self) -> InitInfo | None:
        """The current init segment (codecs, resolution), None before the first one."""
        return self._inits[max(self._inits)] if self._inits else None

    def has_init(self, n: int) -> bool:
        return n in self._inits

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The broadcast's recent segments (all of a short one: at least twice the live
        window); the last one may still be open."""
        return tuple(self._segments)

    @property
    def media_sequence(self) -> int:
        return self.media_state().media_sequence

    def media_state(self) -> MediaState:
        """The live media playlist: the last `live_window_segments` complete segments and the
        open one."""
        window = self.config.live_window_segments
        complete = len(self._segments)
        if self._segments and not self._segments[-1].complete:
            complete -= 1
        first = max(0, complete - window)
        return MediaState(
            segments=tuple(self._segments[first:]),
            target_duration_s=target_duration(self._longest_s, self.config.segment_target_s),
            part_target_s=self.config.part_target_s,
            discontinuity_sequence=self.discontinuity_base
            + (self._discontinuities_before[first] if self._segments else 0),
            ended=self.ended,
            preload_hint=None if self._ended else self.preload_hint,
            independent_segments=self._all_independent,
            part_hold_back_parts=self.config.part_hold_back_parts,
        )

    @property
    def preload_hint(self) -> tuple[int, int] | None:
        """(msn, part index) of the next part, or None before the first part and once ended."""
        if self._ended or not self._segments:
            return None
        last = self._segments[-1]
        if last.complete or self._next_part_starts_segment(last):
            return last.msn + 1, 0
        return last.msn, len(last.parts)

    def _next_part_starts_segment(self, seg: Segment) -> bool:
        """Guess whether the worker will cut before the next part, so the preload hint names
        the part that will exist: the segment is long enough (the worker's rule) and a
        keyframe has come or is due."""
        cfg = self.config
        if seg.duration_s + cfg.part_target_s >= segment_limit_s(cfg.segment_target_s):
            return True  # cut at the next part even without a keyframe
        if seg.duration_s < segment_cut_s(cfg.segment_target_s):
            return False
        if seg.parts[-1].duration_s < 0.9 * cfg.part_target_s:
            # A part ends early only where a keyframe starts the next one: the keyframe the
            # packager asked for has arrived.
            return True
        if self._gop_s <= 0:
            return False
        # Keyframes the publisher sends by itself: due going by the last GOP's length.
        since_keyframe = 0.0
        for part in reversed(seg.parts):
            since_keyframe += part.duration_s
            if part.independent:
                break
        return since_keyframe >= self._gop_s - cfg.part_target_s / 2

    @property
    def last_part(self) -> tuple[int, int] | None:
        if not self._segments:
            return None
        last = self._segments[-1]
        return last.msn, len(last.parts) - 1

    def has(self, msn: int, part: int | None = None) -> bool:
        """Whether the playlist already has segment `msn` complete (part None), or part
        (`msn`, `part`) or a later one."""
        if not self._segments:
            return False
        last = self._segments[-1]
        if part is None:
            return msn < last.msn or (msn == last.msn and last.complete)
        return (msn, part) <= (last.msn, len(last.parts) - 1)

    def has_part(self, msn: int, index: int) -> bool:
        seg = self._segment(msn)
        return seg is not None and index < len(seg.parts)

    def has_segment(self, msn: int) -> bool:
        seg = self._segment(msn)
        return seg is not None and seg.complete

    def _segment(self, msn: int) -> Segment | None:
        if not self._segments:
            return None
        i = msn - self._segments[0].msn
        return self._segments[i] if 0 <= i < len(self._segments) else None

    async def wait_for(self, msn: int, part: int | None = None) -> None:
        """Return once `has(msn, part)` or the broadcast has ended. No deadline: callers wrap
        it in `asyncio.timeout`."""
        while not self.ended and not self.has(msn, part):
            await self._changed.wait()

    @property
    def ready(self) -> bool:
        """Whether a player can start on the playlist: it lists a complete segment. Parts
        alone are not enough: FFmpeg reads no segment, hls.js gives up (levelEmptyError)."""
        return bool(self._segments) and self._segments[0].complete

    async def wait_ready(self) -> None:
        """Return once `ready` or the broadcast has ended (it may have ended without any
        segment). No deadline: callers wrap it in `asyncio.timeout`."""
        while not self._ended and not self.ready:
            await self._changed.wait()

    async def wait_started(self) -> None:
        """Return once the first part exists (or the broadcast has ended without one)."""
        while not self._ended and not self._segments:
            await self._changed.wait()

    def variant(self, uri: str) -> VariantInfo | None:
        """This rendition's EXT-X-STREAM-INF facts, None before the first part."""
        init = self.init
        if init is None or not self._segments:
            return None
        recent = [s for s in self._segments[-self.config.live_window_segments - 1 :] if s.parts]
        complete = [s for s in recent if s.complete] or recent
        duration = sum(s.duration_s for s in complete)
        size = sum(s.size for s in complete)
        peak = max((s.size * 8 / s.duration_s for s in complete if s.duration_s > 0), default=0)
        average = int(size * 8 / duration) if duration > 0 else None
        frames = sum(s.video_frames for s in complete)
        frame_rate = round(frames / duration, 3) if init.video_codec and duration > 0 else None
        return VariantInfo(
            uri=uri,
            bandwidth=max(1, int(peak)),
            average_bandwidth=average,
            codecs=init.codecs,
            width=init.width,
            height=init.height,
            frame_rate=frame_rate,
        )
