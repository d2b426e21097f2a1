"""The packager's worker thread: every PyAV call and every file write of one broadcast.

It muxes H.264 access units and Opus packets (`muxing.py`: passed through, and re-encoded to
AAC-LC) into ONE fragmented MP4 stream with both tracks, and hands its output to
`segmenting.py`, which turns each fragment into an LL-HLS part, groups parts into segments
and writes them through recordings.writer. What they produce is reported through `emit`
(which the packager routes to its event loop). Imports only hls/, recordings/, config and
sfu.media.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livecore.config import HlsConfig
from livecore.hls import h264
from livecore.hls.fmp4 import BoxSplitter
from livecore.hls.muxing import AAC_CODEC, Mux, opus_channels
from livecore.hls.segmenting import InitReady as InitReady
from livecore.hls.segmenting import Segmenter
from livecore.hls.segmenting import SegmentUpdate as SegmentUpdate
from livecore.hls.state import InitInfo, Segment
from livecore.recordings.writer import WriteFailed
from livecore.sfu.media import AUDIO_CLOCK_HZ, MediaUnit

logger = logging.getLogger(__name__)

# Before the first fragment we wait this much media (or for both tracks) to learn whether the
# broadcast has video, audio or both: the track set is fixed in the init segment.
_STARTUP_S = 1.0
_STARTUP_MAX_UNITS = 400  # about 5 s of 30 fps video and Opus
# Going on with a broadcast that had video, its keyframe (asked for) may take a while on a
# busy machine: starting without one would make audio-only segments, and another
# discontinuity when it comes. Audio before the keyframe is dropped either way.
_RESUME_STARTUP_S = 4.0
# Audio packets seen without an audio track before we start a new init that has one.
_LATE_AUDIO_PACKETS = 10


@dataclass(frozen=True, slots=True)
class Finished:
    failed: bool
    write_error: bool = False  # failed because a file could not be written
    crashed: bool = False  # failed because its packaging process died (hls.resuming)


@dataclass(frozen=True, slots=True)
class Resumed:
    """The broadcast's packaging process died and another took over (hls.resuming): it
    goes on at the next keyframe. Reported by the link, never by a worker."""

    restarts: int


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a broadcast's packaging goes on in a new worker after its process died."""

    last: Segment | None  # the last segment reported, complete or not
    stored_parts: tuple[tuple[int, int], ...]  # (msn, parts) of recent complete segments
    next_init: int
    wall_base: float | None  # the wall clock of media time 0 (program date-times go on)
    video: bool = True  # the broadcast had video: wait longer for a keyframe to start at


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What one worker packages, and where. Picklable: a packaging process gets it."""

    slug: str
    directory: Path
    config: HlsConfig
    sequence_base: int = 0
    # False when the publisher's offer had no audio: the first segment need not wait
    # _STARTUP_S to find out.
    expect_audio: bool = True
    resume: Resume | None = None  # going on with a broadcast whose process died


# What a worker reports; the segmenter's two events are re-exported from here with it.
WorkerEvent = InitReady | SegmentUpdate | Finished | Resumed
# A queued unit and when it was queued (time.monotonic), for the production-lag metrics.
QueueItem = tuple[MediaUnit, float]


class Worker:
    """Packages one broadcast: `open`, `feed` each unit, `finish`; or `run` all three in a
    thread of its own (tests). Every outcome leaves as an event through `emit`, called from
    the thread that feeds it."""

    def __init__(self, spec: WorkerSpec, emit: Callable[[WorkerEvent], None]) -> None:
        self._slug = spec.slug
        self._expect_audio = spec.expect_audio
        self._config = spec.config
        self._emit = emit
        self.consumed = 0  # units taken from the inbox: the sender's backlog is sent - consumed
        self.refused_units = 0
        self._failed = False
        self._pending: list[MediaUnit] = []
        self._mux: Mux | None = None
        self._splitter_out: list[tuple[bool, bytes]] = []  # (is_init, bytes), in order
        self._next_init = spec.sequence_base
        self._segments = Segmenter(
            spec.directory, spec.config, slug=spec.slug, sequence_base=spec.sequence_base,
            emit=emit,
        )  # fmt: skip
        self._late_audio = 0
        self._stereo = False  # an Opus packet coded in stereo has been seen
        self._unsupported: set[str] = set()
        self._resume = spec.resume
        self._startup_s = _RESUME_STARTUP_S if spec.resume and spec.resume.video else _STARTUP_S
        if spec.resume is not None:
            self._next_init = spec.resume.next_init
            self._segments.wall_base = spec.resume.wall_base

    # -- the thread's loop ------------------------------------------------------------------

    def run(self, inbox: queue.SimpleQueue[QueueItem | None]) -> None:
        """Package what arrives in `inbox` until the end marker (None), then finish."""
        self.open()
        while (item := inbox.get()) is not None:
            self.feed(*item)
        self.finish()

    def open(self) -> None:
        try:
            self._segments.open()
        except OSError as exc:
            self._fail(exc)
            return
        if self._resume is not None:
            self._guarded("resuming the recording", self._resume_recording)

    def feed(self, unit: MediaUnit, queued_at: float) -> None:
        """Package one unit (after a failure: only count it, so the sender's backlog clears)."""
        self.consumed += 1
        if self._failed:
            return
        self._segments.queued_at = queued_at
        self._guarded("packaging", self._push_and_drain, unit)

    def finish(self) -> None:
        """Flush the last fragment, complete the recording and report Finished."""
        if not self._failed:
            self._guarded("finishing the recording", self._finish)
        if not self._failed:
            self._emit(Finished(failed=False))

    def _resume_recording(self) -> None:
        assert self._resume is not None
        self._segments.resume(self._resume.last, self._resume.stored_parts)

    def _push_and_drain(self, unit: MediaUnit) -> None:
        self._push(unit)
        self._drain()

    def _guarded(self, what: str, step: Callable[..., None], *args: MediaUnit) -> None:
        """Run a step; a failed write (or any error) ends the packaging cleanly."""
        try:
            step(*args)
        except (OSError, WriteFailed) as exc:
            self._fail(exc)
        except Exception:
            logger.exception("hls %s: %s failed", self._slug, what)
            self._fail(None)

    def _fail(self, exc: BaseException | None) -> None:
        if self._failed:
            return
        self._failed = True
        if exc is not None:
            logger.error("hls %s: disk write failed, packaging ends: %s", self._slug, exc)
        if self._mux is not None:
            self._mux.abort()
            self._mux = None
        self._emit(Finished(failed=True, write_error=exc is not None))

    # -- units in ---------------------------------------------------------------------------

    def _push(self, unit: MediaUnit) -> None:
        wanted = "h264" if unit.kind == "video" else "opus"
        if unit.codec != wanted:
            if unit.codec not in self._unsupported:
                self._unsupported.add(unit.codec)
                logger.warning("hls %s: %s %s is not packaged", self._slug, unit.kind, unit.codec)
            return
        if self._segments.wall_base is None:
            self._segments.wall_base = time.time() - unit.pts_s
        if unit.kind == "audio" and not self._stereo and opus_channels(unit.data) == 2:
            # Browsers send mono Opus unless asked for stereo: AAC follows the publisher
            # (a mono track costs half as much to encode), and turns stereo when it does.
            self._stereo = True
        mux = self._mux
        if mux is None:
            self._pending.append(unit)
            self._maybe_start(force=False)
            return
        if unit.kind == "video":
            if unit.keyframe:
                sets = h264.parameter_sets(unit.data)
                wants_audio = not mux.has_audio and self._late_audio >= _LATE_AUDIO_PACKETS
                wants_stereo = mux.channels == 1 and self._stereo
                if sets is not None and (sets != mux.parameter_sets or wants_audio or wants_stereo):
                    # New SPS/PPS (resolution or profile change), a late audio track, or
                    # stereo audio after mono: the init segment changes, so a new segment
                    # starts after a discontinuity.
                    audio = mux.has_audio or wants_audio
                    self._restart(unit, sets, channels=self._channels() if audio else 0)
                    return
            if not mux.has_video or not mux.video(unit):
                self.refused_units += 1
        elif mux.has_audio:
            if not mux.audio(unit):
                self.refused_units += 1
        else:
            self._late_audio += 1

    def _maybe_start(self, *, force: bool) -> None:
        pending = self._pending
        usable = (u for u in pending if u.kind == "video" and u.keyframe)
        key = next((u for u in usable if h264.parameter_sets(u.data)), None)
        has_audio = any(u.kind == "audio" for u in pending)
        span = pending[-1].pts_s - pending[0].pts_s if pending else 0.0
        both = key is not None and (has_audio or not self._expect_audio)
        ready = both or span >= self._startup_s
        if not pending or not (ready or force or len(pending) >= _STARTUP_MAX_UNITS):
            return
        self._pending = []
        if key is None and not has_audio:
            return  # only video that never had a usable keyframe: nothing to package
        origin = key if key is not None else next(u for u in pending if u.kind == "audio")
        sets = h264.parameter_sets(key.data) if key is not None else None
        self._open_mux(origin.pts_s, sets, channels=self._channels() if has_audio else 0)
        for unit in pending:
            if unit.kind == "audio" or unit.pts >= origin.pts or key is None:
                self._push(unit)

    def _channels(self) -> int:
        return 2 if self._stereo else 1

    def _restart(self, keyframe: MediaUnit, sets: tuple[bytes, bytes], *, channels: int) -> None:
        self._close_mux()
        self._segments.discontinuity()
        self._open_mux(keyframe.pts_s, sets, channels=channels)
        self._push(keyframe)

    def _open_mux(
        self,
        origin_s: float,
        sets: tuple[bytes, bytes] | None,
        *,
        channels: int,
    ) -> None:
        size = h264.picture_size(sets[0]) if sets is not None else None
        # movenc ends a fragment at the first packet of ANY track at least `fragment_us` after
        # that track's first sample in the fragment. With video, aim 1 ms short of the part
        # target: 15 frames at 30 fps make exactly 0.5 s, and audio (which starts at or after
        # the cut) cannot get there first, since ceil(0.499 s / 21.3 ms) AAC frames > 0.5 s.
        # Audio alone: half an AAC frame short, so parts stay under the target.
        margin_s = 0.001 if sets is not None else 512 / AUDIO_CLOCK_HZ
        fragment_us = max(1000, int((self._config.part_target_s - margin_s) * 1e6))
        self._mux = Mux(
            parameter_sets=sets,
            size=size,
            channels=channels,
            origin_s=origin_s,
            fragment_us=fragment_us,
            audio_bitrate=self._config.audio_bitrate,
            splitter=BoxSplitter(self._on_init, self._on_fragment),
        )
        self._late_audio = 0
        init = InitInfo(
            n=self._next_init,
            video_codec=h264.codec_string(sets[0]) if sets is not None else None,
            audio_codec=AAC_CODEC if channels else None,
            width=size[0] if size else None,
            height=size[1] if size else None,
        )
        self._segments.new_init(init, origin_s)
        self._next_init += 1

    def _close_mux(self) -> None:
        if self._mux is not None:
            mux, self._mux = self._mux, None
            mux.close()
            self._drain()

    def _finish(self) -> None:
        if self._mux is None and self._pending:
            self._maybe_start(force=True)
            self._drain()
        self._close_mux()
        self._segments.finish()

    # -- fragments out ------------------------------------------------------------------------

    # The splitter only collects: files are written after mux() returns, so an OSError never
    # has to cross PyAV's C I/O callback.
    def _on_init(self, data: bytes) -> None:
        self._splitter_out.append((True, data))

    def _on_fragment(self, data: bytes) -> None:
        self._splitter_out.append((False, data))

    def _drain(self) -> None:
        out, self._splitter_out = self._splitter_out, []
        for is_init, data in out:
            if is_init:
                self._segments.write_init(data)
            else:
                self._segments.add_part(data)
