"""Just enough ISO-BMFF (MP4) parsing to package what the muxer writes.

`BoxSplitter` cuts the muxer's byte stream into the init segment (ftyp+moov) and fragments
(moof+mdat); `parse_init` and `parse_fragment` read the track timescales and each fragment's
timing and sync flags, so part durations and INDEPENDENT=YES come from the bytes we serve
rather than from bookkeeping beside them. Pure functions, no I/O; imports nothing from livecore.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

TrackKind = Literal["video", "audio", "other"]

_NON_SYNC = 0x0001_0000  # sample_is_non_sync_sample in ISO/IEC 14496-12 sample flags


@dataclass(frozen=True, slots=True)
class TrackInfo:
    track_id: int
    kind: TrackKind
    timescale: int
    default_duration: int
    default_flags: int


@dataclass(frozen=True, slots=True)
class TrackRun:
    """One track's samples in one fragment."""

    track_id: int
    kind: TrackKind
    timescale: int
    base_time: int  # tfdt, in timescale ticks
    duration: int  # sum of sample durations, in timescale ticks
    samples: int
    starts_with_sync: bool

    @property
    def start_s(self) -> float:
        return self.base_time / self.timescale

    @property
    def duration_s(self) -> float:
        return self.duration / self.timescale


@dataclass(frozen=True, slots=True)
class FragmentInfo:
    runs: tuple[TrackRun, ...]

    def run(self, kind: TrackKind) -> TrackRun | None:
        return next((r for r in self.runs if r.kind == kind and r.samples), None)

    @property
    def start_s(self) -> float:
        main = self.run("video") or self.run("audio")
        return main.start_s if main is not None else 0.0

    @property
    def duration_s(self) -> float:
        """The video track's duration when there is one: it is what players pace on."""
        main = self.run("video") or self.run("audio")
        return main.duration_s if main is not None else 0.0

    @property
    def independent(self) -> bool:
        """A player can start decoding here: video (if any) begins with a sync sample."""
        video = self.run("video")
        return video.starts_with_sync if video is not None else True


class BoxSplitter:
    """A write-only, non-seekable file object for `av.open(..., "w")`.

    Splits the stream into top-level boxes whatever the muxer's I/O buffering: everything
    before the first moof is the init segment, then each moof+mdat pair is one fragment.
    """

    def __init__(self, on_init: Callable[[bytes], None], on_fragment: Callable[[bytes], None]):
        self._buf = bytearray()
        self._init = bytearray()
        self._init_done = False
        self._moof: bytes | None = None
        self._on_init = on_init
        self._on_fragment = on_fragment

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) >= 8:
            size, kind = struct.unpack_from(">I4s", self._buf)
            if size == 1:
                if len(self._buf) < 16:
                    break
                (size,) = struct.unpack_from(">Q", self._buf, 8)
            if size < 8:
                raise ValueError(f"unsupported MP4 box size {size}")
            if len(self._buf) < size:
                break
            box = bytes(self._buf[:size])
            del self._buf[:size]
            self._box(kind, box)
        return len(data)

    def _box(self, kind: bytes, box: bytes) -> None:
        if not self._init_done:
            if kind not in (b"moof", b"styp", b"sidx", b"prft"):
                self._init += box  # ftyp, moov
                return
            self._init_done = True
            self._on_init(bytes(self._init))
        if kind == b"moof":
            self._moof = box
        elif kind == b"mdat" and self._moof is not None:
            self._on_fragment(self._moof + box)
            self._moof = None
        # Anything else (styp, mfra at close) is not part of a fragment we serve.


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    off = start
    while off + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, off)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, off + 8)
            header = 16
        elif size == 0:
            size = end - off
        if size < header or off + size > end:
            raise ValueError(f"truncated MP4 box {kind!r}")
        yield kind, off + header, off + size
        off += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(data, start, end):
        if k == kind:
            return s, e
    return None


def parse_init(init: bytes) -> dict[int, TrackInfo]:
    """Tracks of an init segment by track id: kind, timescale and trex defaults."""
    moov = _child(init, 0, len(init), b"moov")
    if moov is None:
        raise ValueError("init segment has no moov")
    found: dict[int, tuple[TrackKind, int]] = {}
    defaults: dict[int, tuple[int, int]] = {}
    for kind, s, e in _boxes(init, *moov):
        if kind == b"trak":
            tkhd = _child(init, s, e, b"tkhd")
            mdia = _child(init, s, e, b"mdia")
            if tkhd is None or mdia is None:
                continue
            version = init[tkhd[0]]
            (track_id,) = struct.unpack_from(">I", init, tkhd[0] + (20 if version else 12))
            mdhd = _child(init, *mdia, b"mdhd")
            hdlr = _child(init, *mdia, b"hdlr")
            if mdhd is None or hdlr is None:
                continue
            mv = init[mdhd[0]]
            (timescale,) = struct.unpack_from(">I", init, mdhd[0] + (20 if mv else 12))
            handler = init[hdlr[0] + 8 : hdlr[0] + 12]
            track_kind: TrackKind = (
                "video" if handler == b"vide" else "audio" if handler == b"soun" else "other"
            )
            found[track_id] = (track_kind, timescale)
        elif kind == b"mvex":
            for k2, s2, _ in _boxes(init, s, e):
                if k2 == b"trex":
                    track_id, _desc, duration, _size, flags = struct.unpack_from(
                        ">IIIII", init, s2 + 4
                    )
                    defaults[track_id] = (duration, flags)
    return {
        tid: TrackInfo(tid, k, ts, *defaults.get(tid, (0, 0))) for tid, (k, ts) in found.items()
    }


def parse_fragment(fragment: bytes, tracks: dict[int, TrackInfo]) -> FragmentInfo:
    """Timing and sync flags of each track in one moof+mdat."""
    moof = _child(fragment, 0, len(fragment), b"moof")
    if moof is None:
        raise ValueError("fragment has no moof")
    runs: list[TrackRun] = []
    for kind, s, e in _boxes(fragment, *moof):
        if kind == b"traf":
            runs.append(_parse_traf(fragment, s, e, tracks))
    return FragmentInfo(tuple(runs))


def _parse_traf(data: bytes, start: int, end: int, tracks: dict[int, TrackInfo]) -> TrackRun:
    track: TrackInfo | None = None
    default_duration = default_flags = 0
    base_time = duration = samples = 0
    first_sync: bool | None = None
    for kind, s, _ in _boxes(data, start, end):
        if kind == b"tfhd":
            flags = int.from_bytes(data[s + 1 : s + 4], "big")
            (track_id,) = struct.unpack_from(">I", data, s + 4)
            track = tracks.get(track_id) or TrackInfo(track_id, "other", 1, 0, 0)
            default_duration, default_flags = track.default_duration, track.default_flags
            off = s + 8
            off += 8 if flags & 0x1 else 0  # base-data-offset
            off += 4 if flags & 0x2 else 0  # sample-description-index
            if flags & 0x8:
                (default_duration,) = struct.unpack_from(">I", data, off)
                off += 4
            off += 4 if flags & 0x10 else 0  # default-sample-size
            if flags & 0x20:
                (default_flags,) = struct.unpack_from(">I", data, off)
        elif kind == b"tfdt":
            version = data[s]
            fmt = ">Q" if version else ">I"
            (base_time,) = struct.unpack_from(fmt, data, s + 4)
        elif kind == b"trun":
            flags = int.from_bytes(data[s + 1 : s + 4], "big")
            (count,) = struct.unpack_from(">I", data, s + 4)
            off = s + 8
            off += 4 if flags & 0x1 else 0  # data-offset
            first_flags: int | None = None
            if flags & 0x4:
                (first_flags,) = struct.unpack_from(">I", data, off)
                off += 4
            for i in range(count):
                d = default_duration
                sample_flags = default_flags
                if flags & 0x100:
                    (d,) = struct.unpack_from(">I", data, off)
                    off += 4
                off += 4 if flags & 0x200 else 0  # size
                if flags & 0x400:
                    (sample_flags,) = struct.unpack_from(">I", data, off)
                    off += 4
                off += 4 if flags & 0x800 else 0  # composition time offset
                if i == 0 and first_flags is not None:
                    sample_flags = first_flags
                if first_sync is None:
                    first_sync = not sample_flags & _NON_SYNC
                duration += d
            samples += count
    if track is None:
        raise ValueError("traf without tfhd")
    return TrackRun(
        track.track_id, track.kind, track.timescale, base_time, duration, samples,
        bool(first_sync),
    )  # fmt: skip
