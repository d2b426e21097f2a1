"""Read HLS or MP4 back with PyAV (FFmpeg), as a player would. Blocking: call in a thread."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import av


@dataclass(frozen=True, slots=True)
class Probe:
    video_codec: str | None
    audio_codec: str | None
    audio_profile: str | None
    width: int | None
    height: int | None
    video: tuple[tuple[float, bool], ...]  # (pts seconds, keyframe)
    audio: tuple[float, ...]

    @property
    def video_span_s(self) -> float:
        return self.video[-1][0] - self.video[0][0] if len(self.video) > 1 else 0.0


def probe(url: str, *, max_packets: int | None = None) -> Probe:
    video: list[tuple[float, bool]] = []
    audio: list[float] = []
    with av.open(url, options={"http_persistent": "0"}, timeout=20) as container:
        v = container.streams.video[0] if container.streams.video else None
        a = container.streams.audio[0] if container.streams.audio else None
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            if packet.stream.type == "video":
                video.append((t, packet.is_keyframe))
            elif packet.stream.type == "audio":
                audio.append(t)
            if max_packets is not None and len(video) + len(audio) >= max_packets:
                break
        return Probe(
            v.codec_context.name if v else None,
            a.codec_context.name if a else None,
            a.codec_context.profile if a else None,
            v.codec_context.width if v else None,
            v.codec_context.height if v else None,
            tuple(video),
            tuple(audio),
        )


def assert_continuous(times: list[float], step_s: float) -> None:
    """Increasing, and no gap longer than two steps."""
    for a, b in itertools.pairwise(times):
        assert b > a, (a, b)
        assert b - a <= 2 * step_s + 1e-6, (a, b)
