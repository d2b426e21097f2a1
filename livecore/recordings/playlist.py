"""A recording's VOD playlist (RFC 8216): every complete segment, EXT-X-ENDLIST.

Imports nothing from livecore outside recordings/; segments come in as whatever has the
`RecordedSegment` fields (hls.state.Segment does).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Protocol

from livecore.recordings.layout import LIVE_FILE, init_name

# What `render` writes before the segments and after them (resumed: read back).
_HEADER = ("#EXTM3U", "#EXT-X-VERSION:", "#EXT-X-TARGETDURATION:", "#EXT-X-PLAYLIST-TYPE:",
           "#EXT-X-ENDLIST")  # fmt: skip
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')


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
        self._last: int | None = None  # msn of the last segment
        self._last_init: int | None = None  # the init segment (EXT-X-MAP) of the last one
        self._longest_s = 0.0
        self._independent = True

    @classmethod
    def resumed(cls, text: str, segment_target_s: float) -> RecordingPlaylist:
        """The playlist `render` wrote, to `add` more segments to: a recording whose writer's
        process died goes on in another process (hls.resuming)."""
        playlist = cls(segment_target_s)
        playlist._independent = False  # unless the text says so
        first = 0
        for line in text.splitlines():
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                first = int(line.partition(":")[2])
            elif line == "#EXT-X-INDEPENDENT-SEGMENTS":
                playlist._independent = True
            elif line.startswith(_HEADER) or not line:
                continue
            else:
                playlist._body.append(line)
                if line.startswith("#EXTINF:"):
                    duration_s = float(line.partition(":")[2].rstrip(","))
                    playlist._longest_s = max(playlist._longest_s, duration_s)
                elif (init := _MAP.fullmatch(line)) is not None:
                    playlist._last_init = int(_file(init.group(1), 1))
                elif not line.startswith("#"):
                    playlist._last = int(_file(line, 2))
        if playlist._last is None:
            return cls(segment_target_s)  # no segment: nothing to go on from
        playlist._first = first
        return playlist

    def add(self, seg: RecordedSegment) -> None:
        if not seg.complete:
            raise ValueError("only complete segments go into a recording")
        started = self._last is not None
        if started and seg.discontinuity:
            self._body.append("#EXT-X-DISCONTINUITY")
        if not started or seg.init != self._last_init:
            self._body.append(f'#EXT-X-MAP:URI="{init_name(seg.init)}"')
        if not started or seg.discontinuity:
            pdt = datetime.fromtimestamp(seg.program_date_time, UTC)
            self._body.append(f"#EXT-X-PROGRAM-DATE-TIME:{pdt.isoformat(timespec='milliseconds')}")
        self._body.append(f"#EXTINF:{seg.duration_s:.5f},")
        self._body.append(seg.uri)
        self._first = seg.msn if self._first is None else self._first
        self._last, self._last_init = seg.msn, seg.init
        self._longest_s = max(self._longest_s, seg.duration_s)
        self._independent = self._independent and seg.independent

    @property
    def empty(self) -> bool:
        return self._first is None

    def has(self, msn: int) -> bool:
        """Whether segment `msn` (or a later one) is listed."""
        return self._last is not None and msn <= self._last

    def render(self) -> str:
        td = target_duration(self._longest_s, self._segment_target_s)
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{td}"]
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{self._first or 0}")
        if self._independent:
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        return "\n".join([*lines, *self._body, "#EXT-X-ENDLIST"]) + "\n"


def _file(name: str, group: int) -> str:
    """The number in an init segment's (group 1) or a segment's (group 2) file name."""
    match = LIVE_FILE.fullmatch(name)
    if match is None or match.group(group) is None:
        raise ValueError(f"{name!r} is not a file a recording lists")
    return match.group(group)


def target_duration(longest_segment_s: float, segment_target_s: float) -> int:
    """EXT-X-TARGETDURATION: every EXTINF, rounded to the nearest integer, must fit under it.

    Segments are kept under hls.playlist's `segment_limit_s`, so this is the configured
    target rounded up; only a single part longer than that (a publisher pausing its video
    for seconds) can make it more."""
    return max(1, math.ceil(segment_target_s), round(longest_segment_s))
