"""A recording's VOD playlist (RFC 8216): every complete segment, EXT-X-ENDLIST.

Imports nothing from livecore outside recordings/; segments come in as whatever has the
`RecordedSegment` fields (hls.state.Segment does).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Protocol

from livecore.recordings.layout import init_name


class RecordedSegment(Protocol):
    """What the VOD playlist needs of a complete segment."""

    @property
    def msn(self) -> int: ...

    @property
    def init(self) -> int: ...

    @property
    def discontinuity(self) -> bool: ...

    @property
    def program_date_time(self) -> float: ...

    @property
    def complete(self) -> bool: ...

    @property
    def uri(self) -> str: ...

    @property
    def independent(self) -> bool: ...

    @property
    def duration_s(self) -> float: ...


class RecordingPlaylist:
    """A recording's VOD playlist as its broadcast goes on: `add` each complete segment,
    `render` the whole. Each segment is rendered once, so rewriting the playlist after every
    segment stays cheap in a broadcast of many hours (thousands of segments); the text is
    what hls.playlist's `render_media(..., low_latency=False)` of an ended state gives."""

    def __init__(self, segment_target_s: float) -> None:
        self._segment_target_s = segment_target_s
        self._body: list[str] = []
        self._first: int | None = None  # msn of the first segment
        self._previous: RecordedSegment | None = None
        self._longest_s = 0.0
        self._independent = True

    def add(self, seg: RecordedSegment) -> None:
        if not seg.complete:
            raise ValueError("only complete segments go into a recording")
        previous = self._previous
        if previous is not None and seg.discontinuity:
            self._body.append("#EXT-X-DISCONTINUITY")
        if previous is None or seg.init != previous.init:
            self._body.append(f'#EXT-X-MAP:URI="{init_name(seg.init)}"')
        if previous is None or seg.discontinuity:
            pdt = datetime.fromtimestamp(seg.program_date_time, UTC)
            self._body.append(f"#EXT-X-PROGRAM-DATE-TIME:{pdt.isoformat(timespec='milliseconds')}")
        self._body.append(f"#EXTINF:{seg.duration_s:.5f},")
        self._body.append(seg.uri)
        self._first = seg.msn if self._first is None else self._first
        self._previous = seg
        self._longest_s = max(self._longest_s, seg.duration_s)
        self._independent = self._independent and seg.independent

    @property
    def empty(self) -> bool:
        return self._first is None

    def render(self) -> str:
        td = target_duration(self._longest_s, self._segment_target_s)
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{td}"]
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{self._first or 0}")
        if self._independent:
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        return "\n".join([*lines, *self._body, "#EXT-X-ENDLIST"]) + "\n"


def target_duration(longest_segment_s: float, segment_target_s: float) -> int:
    """EXT-X-TARGETDURATION: every EXTINF, rounded to the nearest integer, must fit under it.

    Segments are kept under hls.playlist's `segment_limit_s`, so this is the configured
    target rounded up; only a single part longer than that (a publisher pausing its video
    for seconds) can make it more."""
    return max(1, math.ceil(segment_target_s), round(longest_segment_s))
