"""Parts and segments of one rendition: the muxer's init segments and fragments in, LL-HLS
parts and segments out, written through recordings.writer and reported as events.

A fragment is a part; parts are grouped into segments cut at keyframes near the segment
target. Runs in the packaging worker's thread or process (blocking writes). Imports only
hls/ and recordings/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from livecore.config import HlsConfig
from livecore.hls.fmp4 import TrackInfo, parse_fragment, parse_init
from livecore.hls.playlist import PART_SEGMENTS_LISTED, segment_cut_s, segment_limit_s
from livecore.hls.state import InitInfo, Part, Segment
from livecore.recordings.sink import DiskSink
from livecore.recordings.writer import RecordingWriter


@dataclass(frozen=True, slots=True)
class InitReady:
    init: InitInfo


@dataclass(frozen=True, slots=True)
class SegmentUpdate:
    """A segment gained a part (complete=False) or is finished (complete=True)."""

    segment: Segment
    # From the newest unit in it being queued to its file being written: production lag.
    lag_s: float = 0.0


class Segmenter:
    """Segments one rendition into `directory`. Each call may write files: an OSError or
    recordings.writer.WriteFailed ends the packaging (the worker's concern)."""

    def __init__(
        self,
        directory: Path,
        config: HlsConfig,
        *,
        slug: str,
        sequence_base: int,
        emit: Callable[[InitReady | SegmentUpdate], None],
    ) -> None:
        self._config = config
        self._emit = emit
        self._recording = RecordingWriter(
            DiskSink(directory), segment_target_s=config.segment_target_s,
            parts_kept=config.live_window_segments, label=slug,
        )  # fmt: skip
        self._tracks: dict[int, TrackInfo] = {}
        self._init: InitInfo | None = None
        self._origin_s = 0.0
        self._next_msn = sequence_base
        self._open: Segment | None = None
        self._open_bytes: list[bytes] = []
        self._discontinuity_pending = False
        self.wall_base: float | None = None  # wall clock (epoch s) of media time 0
        self.queued_at = 0.0  # when the unit being packaged was queued (time.monotonic)

    def open(self) -> None:
        self._recording.open()

    def resume(self, last: Segment | None, stored_parts: tuple[tuple[int, int], ...]) -> None:
        """Go on with a broadcast whose packaging process died after reporting `last`: the
        recording continues, `last` is completed with the parts it had (the live playlist
        listed those), and the next segment follows a discontinuity."""
        self._recording.resume(stored_parts, last if last is not None and last.complete else None)
        if last is not None:
            self._next_msn = last.msn + 1
            if not last.complete:
                self.queued_at = time.monotonic()
                self._open = last
                self._open_bytes = [self._recording.read_part(last.msn, p.index)
                                    for p in last.parts]  # fmt: skip
                self._recording.discard_part(last.msn, len(last.parts))
                self.complete_open()
        self._discontinuity_pending = not self._recording.empty

    def new_init(self, init: InitInfo, origin_s: float) -> None:
        """A new muxer starts: its init segment and fragments come next; media time 0 of its
        fragments is `origin_s` on the publisher's clock."""
        self._init = init
        self._origin_s = origin_s  # kept after close: the last fragments come out then

    def discontinuity(self) -> None:
        """The init segment changes: the open segment ends, and the next one follows a
        discontinuity (unless nothing was recorded before it)."""
        self.complete_open()
        self._discontinuity_pending = not self._recording.empty

    def write_init(self, data: bytes) -> None:
        assert self._init is not None
        self._tracks = parse_init(data)
        self._recording.write_init(self._init.n, data)
        self._emit(InitReady(self._init))

    def add_part(self, data: bytes) -> None:
        """One fragment: a part of the open segment, which it may first complete."""
        info = parse_fragment(data, self._tracks)
        video = info.run("video")
        audio = info.run("audio")
        if video is None and audio is None:
            return
        assert self._init is not None
        has_video = self._init.video_codec is not None
        independent = video.starts_with_sync if video is not None else not has_video
        # Cut at the first independent part once the segment is long enough (audio-only
        # parts of 0.49 s make 1.96 s segments). The packager asks the publisher for a
        # keyframe at that point; a publisher that sends none in time gets its segment cut
        # at a part boundary anyway, so that no segment is longer than the target duration
        # the playlist announces (a player waits that long for the next one). The segment
        # after such a cut starts mid-GOP.
        target = segment_cut_s(self._config.segment_target_s)
        seg = self._open
        too_long = seg is not None and (
            seg.duration_s + info.duration_s >= segment_limit_s(self._config.segment_target_s)
        )
        if seg is not None and ((independent and seg.duration_s >= target) or too_long):
            self.complete_open()
        if self._open is None:
            self._open = Segment(
                msn=self._next_msn,
                init=self._init.n,
                discontinuity=self._discontinuity_pending,
                program_date_time=(self.wall_base or 0.0) + self._origin_s + info.start_s,
                parts=(),
                complete=False,
                start_s=self._origin_s + info.start_s,
            )
            self._next_msn += 1
            self._discontinuity_pending = False
        seg = self._open
        part = Part(seg.msn, len(seg.parts), info.duration_s, independent, len(data))
        self._recording.write_part(part.msn, part.index, data)
        frames = video.samples if video is not None else 0
        self._open = replace(seg, parts=(*seg.parts, part), video_frames=seg.video_frames + frames)
        self._open_bytes.append(data)
        self._emit(SegmentUpdate(self._open, self._lag_s()))

    def complete_open(self) -> None:
        """Finish the open segment: its file, its last update, the recording's playlist."""
        if self._open is None:
            return
        seg = replace(self._open, complete=True)
        self._recording.write_segment(seg, b"".join(self._open_bytes))
        self._open, self._open_bytes = None, []
        self._emit(SegmentUpdate(seg, self._lag_s()))
        self._recording.record(seg, len(seg.parts))

    def finish(self) -> None:
        """The broadcast has ended: complete the open segment and prune parts."""
        self.complete_open()
        # The ended live playlist lists parts of its last few segments only; older ones have
        # been unlisted for a segment or more, and nothing lists them again.
        self._recording.finish(PART_SEGMENTS_LISTED)

    def _lag_s(self) -> float:
        # time.monotonic is the system's monotonic clock: the same in every process.
        return max(0.0, time.monotonic() - self.queued_at)
