"""What a packager has produced, as immutable values the playlists and handlers read.

Imports only the file names of recordings.layout; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from livecore.recordings.layout import init_name, part_name, segment_name


@dataclass(frozen=True, slots=True)
class Part:
    """One LL-HLS partial segment: one fMP4 fragment (moof+mdat) on disk."""

    msn: int
    index: int
    duration_s: float
    independent: bool  # starts with a video keyframe (always true for audio-only)
    size: int

    @property
    def uri(self) -> str:
        return part_name(self.msn, self.index)


@dataclass(frozen=True, slots=True)
class Segment:
    """A media segment: the concatenation of its parts. `complete` is false while it grows."""

    msn: int
    init: int  # the init segment (EXT-X-MAP) its fragments need
    discontinuity: bool  # first segment after a new init (codec parameters changed)
    program_date_time: float  # wall clock (epoch seconds) of its first sample
    parts: tuple[Part, ...]
    complete: bool
    video_frames: int = 0
    # Media time of its first sample on the publisher's clock (MediaUnit.pts_s): the
    # packager asks for the next keyframe as a segment nears its target from here.
    start_s: float = 0.0

    @property
    def uri(self) -> str:
        return segment_name(self.msn)

    @property
    def independent(self) -> bool:
        """Whether it starts with a keyframe (a player can start decoding here)."""
        return bool(self.parts) and self.parts[0].independent

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.parts)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


@dataclass(frozen=True, slots=True)
class InitInfo:
    """One init segment (ftyp+moov) and what the multivariant playlist says about it."""

    n: int
    video_codec: str | None  # RFC 6381, "avc1.42c01e"
    audio_codec: str | None  # "mp4a.40.2"
    width: int | None
    height: int | None

    @property
    def uri(self) -> str:
        return init_name(self.n)

    @property
    def codecs(self) -> str:
        return ",".join(c for c in (self.video_codec, self.audio_codec) if c)


@dataclass(frozen=True, slots=True)
class MediaState:
    """A media playlist's content: the segments to list, oldest first, the last maybe open."""

    segments: tuple[Segment, ...]
    target_duration_s: int
    part_target_s: float
    discontinuity_sequence: int  # discontinuities before the first listed segment
    ended: bool
    preload_hint: tuple[int, int] | None  # (msn, part index) of the next part, while live
    # Every segment so far starts with a keyframe (EXT-X-INDEPENDENT-SEGMENTS holds).
    independent_segments: bool = True
    part_hold_back_parts: float = 3.0  # PART-HOLD-BACK, in part targets

    @property
    def media_sequence(self) -> int:
        return self.segments[0].msn if self.segments else 0


@dataclass(frozen=True, slots=True)
class VariantInfo:
    """One rendition as the multivariant playlist lists it."""

    uri: str
    bandwidth: int  # peak segment bit rate, bits/s
    average_bandwidth: int | None
    codecs: str
    width: int | None
    height: int | None
    frame_rate: float | None
