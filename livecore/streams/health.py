"""A live stream's ingest health, as the studio shows it: the streams API asks through this
Protocol, and wiring/media.py answers from the stream's publisher (sfu/) and its HLS source
rendition (the picture size from the stream's SPS), which this package may not import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class IngestReport:
    video_codec: str
    audio_codec: str
    width: int | None  # None until the packager has read the first keyframe's SPS
    height: int | None
    bitrate_bps: int
    video_bitrate_bps: int
    audio_bitrate_bps: int
    fps: float
    keyframe_interval_s: float | None
    packets_received: int
    packets_lost: int
    packet_loss: float  # lost / (received + lost), since the session started
    last_media_s: float


class IngestProbe(Protocol):
    async def report(self, stream_id: int) -> IngestReport | None:
        """The stream's ingest now, or None when this node has no publisher for it."""
        ...
