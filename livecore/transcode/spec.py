"""What a transcoder makes and what comes out: the spec of one worker (input codec, output
height and bit rate), the encoded frames, and the video units that go in.

Imports nothing from livecore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

InputCodec = Literal["h264", "vp8"]

# pts in and out count ticks of 90 kHz, the video clock of RTP and of the hubs
# (sfu.media.VIDEO_CLOCK_HZ).
CLOCK_HZ = 90_000

# Bit rates of the usual rungs; other heights scale by (height / 720) ** 1.5.
_BITRATES = {
    144: 200_000,
    240: 400_000,
    360: 800_000,
    480: 1_200_000,
    720: 2_500_000,
    1080: 4_500_000,
    1440: 8_000_000,
    2160: 14_000_000,
}


def bitrate_for(height: int) -> int:
    """The target video bit rate of a rung, bits/s."""
    return _BITRATES.get(height) or round(2_500_000 * (height / 720) ** 1.5, -3)


@dataclass(frozen=True, slots=True)
class TranscodeSpec:
    """What one worker makes: H.264 at `height` (None: the source's size) from `input_codec`."""

    input_codec: InputCodec
    height: int | None
    bitrate_bps: int
    preset: str = "veryfast"
    profile: Literal["baseline", "main"] = "main"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One H.264 access unit from a worker: Annex-B, an IDR carries SPS/PPS in front."""

    pts: int  # 90 kHz, the pts of the input unit it was made from
    keyframe: bool
    data: bytes


class VideoUnit(Protocol):
    """One encoded video access unit in (the hubs' MediaUnit is one)."""

    @property
    def pts(self) -> int: ...  # CLOCK_HZ ticks
    @property
    def keyframe(self) -> bool: ...
    @property
    def data(self) -> bytes: ...
