"""What one publisher is sending right now: rates over a short window, for the studio.

The node-wide Prometheus metrics (sfu/metrics.py) sum every stream and are never labelled
by stream; a creator wants their own stream's figures, so each publisher keeps these.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from livecore.sfu.media import MediaKind

WINDOW_S = 5.0  # long enough to smooth one keyframe's burst, short enough to show a stall


@dataclass(frozen=True, slots=True)
class IngestHealth:
    """One publisher's ingest as of now."""

    video_codec: str  # as sent by the publisher ("h264", "vp8"); "" before the first frame
    audio_codec: str
    bitrate_bps: int  # audio and video, over the last WINDOW_S
    video_bitrate_bps: int
    audio_bitrate_bps: int
    fps: float  # video frames per second over the last WINDOW_S
    keyframe_interval_s: float | None  # between the last two keyframes
    packets_received: int  # RTP, since the session started
    packets_lost: int
    last_media_s: float  # seconds since the last frame or packet arrived

    @property
    def loss_fraction(self) -> float:
        total = self.packets_received + self.packets_lost
        return self.packets_lost / total if total else 0.0


class IngestMeter:
    """Sliding-window byte and frame rates of one publisher. Fed from the packet path: O(1)
    amortised per frame, bounded by what arrives in WINDOW_S (a few hundred entries)."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self._window_s = window_s
        self._clock = clock
        self._started = clock()
        self._samples: deque[tuple[float, MediaKind, int]] = deque()
        self._bytes = {"video": 0, "audio": 0}
        self._frames = 0  # video frames in the window
        self.codecs: dict[MediaKind, str] = {}
        self._last_keyframe = 0.0
        self.keyframe_interval_s: float | None = None

    def record(self, kind: MediaKind, codec: str, size: int, keyframe: bool) -> None:
        now = self._clock()
        self.codecs[kind] = codec
        self._samples.append((now, kind, size))
        self._bytes[kind] += size
        if kind == "video":
            self._frames += 1
            if keyframe:
                if self._last_keyframe:
                    self.keyframe_interval_s = now - self._last_keyframe
                self._last_keyframe = now
        self._trim(now)

    def _trim(self, now: float) -> None:
        horizon = now - self._window_s
        samples = self._samples
        while samples and samples[0][0] < horizon:
            _, kind, size = samples.popleft()
            self._bytes[kind] -= size
            if kind == "video":
                self._frames -= 1

    def rates(self) -> tuple[int, int, float]:
        """(video bits/s, audio bits/s, video frames/s) over the window (or since the start,
        when the publisher has been sending for less than the window)."""
        now = self._clock()
        self._trim(now)
        span = min(self._window_s, now - self._started)
        if span <= 0:
            return 0, 0, 0.0
        return (
            round(self._bytes["video"] * 8 / span),
            round(self._bytes["audio"] * 8 / span),
            self._frames / span,
        )
