"""The unit of media that flows through a hub: one encoded access unit or audio packet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["video", "audio"]

VIDEO_CLOCK_HZ = 90_000
AUDIO_CLOCK_HZ = 48_000


@dataclass(frozen=True, slots=True)
class MediaUnit:
    """An encoded H.264 access unit (Annex-B) or an Opus packet, never decoded on the way.

    `pts` counts ticks of `clock_hz` on the stream's one timeline, which starts at 0 when the
    broadcast starts and never goes backwards within a track.
    """

    kind: MediaKind
    codec: str  # "h264", "opus", "vp8"
    data: bytes
    pts: int
    clock_hz: int
    keyframe: bool

    @property
    def pts_s(self) -> float:
        return self.pts / self.clock_hz


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types in an Annex-B access unit (start codes of 3 or 4 bytes)."""
    types: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def h264_is_keyframe(data: bytes) -> bool:
    """An IDR slice (type 5) makes the access unit a point where decoding can start."""
    return 5 in h264_nal_types(data)


def vp8_is_keyframe(data: bytes) -> bool:
    """The frame tag's lowest bit is 0 on a VP8 keyframe (RFC 6386 9.1)."""
    return bool(data) and not data[0] & 1
