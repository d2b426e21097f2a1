"""Test media made with PyAV from numpy frames: H.264 (baseline, Annex-B, in-band SPS/PPS
before every IDR, no B-frames) and Opus (48 kHz stereo, 20 ms), as hub MediaUnits.

Shared by the hls and WHIP tests. Encoding costs CPU, so each clip is made once per session.
Also reads live HLS back with PyAV (FFmpeg), as a player would.
"""

from __future__ import annotations

import fractions
import functools
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from livecore.sfu.media import AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ, MediaUnit, h264_is_keyframe

FPS = 30
OPUS_FRAME_SAMPLES = 960  # 20 ms at 48 kHz


@dataclass(frozen=True, slots=True)
class Clip:
    width: int
    height: int
    fps: int
    keyint: int
    video: tuple[MediaUnit, ...]
    audio: tuple[MediaUnit, ...]

    def interleaved(self) -> list[MediaUnit]:
        """Both tracks in presentation order, as a publisher would deliver them."""
        return sorted(self.video + self.audio, key=lambda u: (u.pts_s, u.kind != "video"))


@functools.cache
def vp8_clip(seconds: float = 4.0, width: int = 640, height: int = 360, keyint: int = 30) -> Clip:
    """Like clip(), with VP8 video: what a browser that cannot send H.264 publishes."""
    video = encode_vp8(round(seconds * FPS), width, height, keyint)
    audio = encode_opus(round(seconds * 50))
    return Clip(width, height, FPS, keyint, tuple(video), tuple(audio))


@functools.cache
def clip(
    seconds: float = 6.0, width: int = 640, height: int = 360, keyint: int = 30, pts0_s: float = 0
) -> Clip:
    """A clip of `seconds` (cached per session); pts start at `pts0_s` on both tracks."""
    frames = round(seconds * FPS)
    video = encode_h264(frames, width, height, keyint, pts0=round(pts0_s * VIDEO_CLOCK_HZ))
    audio = encode_opus(round(seconds * 50), pts0=round(pts0_s * AUDIO_CLOCK_HZ))
    return Clip(width, height, FPS, keyint, tuple(video), tuple(audio))


def encode_h264(
    frames: int, width: int, height: int, keyint: int, *, pts0: int = 0, shade: int = 0
) -> list[MediaUnit]:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = 800_000
    ctx.gop_size = keyint
    ctx.max_b_frames = 0
    # ctx.profile is ignored by libx264: the profile goes through its own options. No global
    # header, so SPS/PPS are repeated in-band before every IDR, as WebRTC senders do.
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:repeat-headers=1",
    }
    yy, xx = np.mgrid[0:height, 0:width]
    step = VIDEO_CLOCK_HZ // FPS
    units: list[MediaUnit] = []

    def collect(packets: list[av.Packet[Any]]) -> None:
        for p in packets:
            data = bytes(p)
            key = h264_is_keyframe(data)
            assert p.pts is not None
            units.append(MediaUnit("video", "h264", data, pts0 + p.pts, VIDEO_CLOCK_HZ, key))

    for i in range(frames):
        img = np.empty((height, width, 3), np.uint8)
        img[..., 0] = (xx + 4 * i + shade) & 255
        img[..., 1] = (yy + 2 * i) & 255
        img[..., 2] = ((xx ^ yy) + i) & 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i * step
        frame.time_base = ctx.time_base
        collect(ctx.encode(frame))
    collect(ctx.encode(None))
    return units


def encode_opus(packets: int, *, pts0: int = 0, channels: int = 2) -> list[MediaUnit]:
    """A 440 Hz tone as Opus packets of 20 ms; `channels` 1 codes mono (as browsers send)."""
    layout = "mono" if channels == 1 else "stereo"
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = AUDIO_CLOCK_HZ
    ctx.layout = layout
    ctx.format = "s16"
    ctx.bit_rate = 64_000
    ctx.time_base = fractions.Fraction(1, AUDIO_CLOCK_HZ)
    ctx.options = {"frame_duration": "20", "application": "audio"}
    n = OPUS_FRAME_SAMPLES
    units: list[MediaUnit] = []

    def collect(out: list[av.Packet[Any]]) -> None:
        # RTP-style timestamps (n x 960), not the encoder's: those start negative (pre-skip).
        for p in out:
            pts = pts0 + len(units) * n
            units.append(MediaUnit("audio", "opus", bytes(p), pts, AUDIO_CLOCK_HZ, True))

    for i in range(packets):
        t = (np.arange(n) + i * n) / AUDIO_CLOCK_HZ
        tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        pcm = np.repeat(tone[None, :], channels, axis=0).T.reshape(1, -1)  # packed s16
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_CLOCK_HZ, i * n, ctx.time_base
        collect(ctx.encode(frame))
    collect(ctx.encode(None))
    return units


def encode_vp8(frames: int, width: int, height: int, keyint: int) -> list[MediaUnit]:
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = 800_000
    ctx.gop_size = keyint
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    yy, xx = np.mgrid[0:height, 0:width]
    step = VIDEO_CLOCK_HZ // FPS
    units: list[MediaUnit] = []

    def collect(packets: list[Any]) -> None:
        for p in packets:
            units.append(MediaUnit("video", "vp8", bytes(p), p.pts, VIDEO_CLOCK_HZ, p.is_keyframe))

    for i in range(frames):
        img = np.stack([(xx + 4 * i) & 255, (yy + 2 * i) & 255, (xx ^ yy) & 255], -1)
        frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = i * step, ctx.time_base
        collect(ctx.encode(frame))
    collect(ctx.encode(None))
    return units


def hls_video_packets(url: str, seconds: float) -> list[tuple[float, bool]]:
    """(pts, keyframe) of the video packets FFmpeg demuxes from a live HLS `url`, until
    `seconds` of media have passed. Blocks: run it in a thread."""
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        video = container.streams.video[0]
        seen: list[tuple[float, bool]] = []
        for packet in container.demux(video):
            if packet.pts is not None and video.time_base:
                seen.append((float(packet.pts * video.time_base), packet.is_keyframe))
                if seen[-1][0] - seen[0][0] >= seconds:
                    break
        return seen
