"""One fragmented MP4 stream of a broadcast, muxed with PyAV: H.264 access units passed
through (never re-encoded) and Opus packets decoded and re-encoded to AAC-LC, both tracks in
one init segment and its fragments. Runs in the packaging worker's thread or process.

Imports only hls.fmp4 and sfu.media.
"""

from __future__ import annotations

import fractions
import logging

import av
import numpy as np

from livecore.hls.fmp4 import BoxSplitter
from livecore.sfu.media import AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ, MediaUnit

logger = logging.getLogger(__name__)

AAC_CODEC = "mp4a.40.2"  # AAC-LC
_VIDEO_TB = fractions.Fraction(1, VIDEO_CLOCK_HZ)
_AUDIO_TB = fractions.Fraction(1, AUDIO_CLOCK_HZ)
# Opus gaps are filled with silence so the AAC track stays continuous; longer gaps jump.
_MAX_SILENCE_S = 10.0
_AUDIO_JITTER_SAMPLES = 480


class Mux:
    """One PyAV mp4 muxer instance, i.e. one init segment; fragments go to `splitter`."""

    def __init__(
        self,
        *,
        parameter_sets: tuple[bytes, bytes] | None,
        size: tuple[int, int] | None,
        channels: int,
        origin_s: float,
        fragment_us: int,
        audio_bitrate: int,
        splitter: BoxSplitter,
    ) -> None:
        self.parameter_sets = parameter_sets
        self.origin_s = origin_s
        self.has_video = parameter_sets is not None
        self.has_audio = channels > 0
        self.channels = channels  # of the AAC track: 0 (none), 1 or 2
        layout = "mono" if channels == 1 else "stereo"
        # empty_moov: the init segment is written first, alone; frag_keyframe + frag_duration:
        # a fragment ends at every IDR and after about `fragment_us`, so one fragment is one
        # part; skip_trailer: no mfra at close; max_interleave_delta: if one track stalls,
        # the other is held back at most 1 s.
        options = {
            "movflags": "empty_moov+default_base_moof+frag_keyframe+skip_trailer+cmaf",
            "frag_duration": str(fragment_us),
            "flush_packets": "1",
            "max_interleave_delta": "1000000",
        }
        self.out = av.open(splitter, "w", format="mp4", options=options)
        self.video_stream = None
        self.audio_stream = None
        if parameter_sets is not None:
            width, height = size or (0, 0)
            # PyAV >= 18 takes SPS/PPS from the first (IDR) packet: nothing is decoded.
            self.video_stream = self.out.add_mux_stream("h264", rate=30, width=width, height=height)
            self.video_stream.time_base = _VIDEO_TB
        if channels:
            self.audio_stream = self.out.add_stream("aac", rate=AUDIO_CLOCK_HZ, layout=layout)
            self.audio_stream.codec_context.bit_rate = audio_bitrate
            # FFmpeg's "fast" AAC coder: its authors rate it above the default "twoloop" at
            # 128 kb/s and up, and it takes about half the CPU (packaging 720p30 + Opus: 1.6% of a
            # core instead of 3.0% here).
            self.audio_stream.codec_context.options = {"aac_coder": "fast"}
            self.decoder = _opus_decoder(layout)
            self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_CLOCK_HZ)
        self._origin_video = round(origin_s * VIDEO_CLOCK_HZ)
        self._last_video_pts: int | None = None
        self._video_step = VIDEO_CLOCK_HZ // 30
        self._audio_next = 0  # samples since origin: the AAC track starts at 0 like the video

    def video(self, unit: MediaUnit) -> bool:
        """Mux one access unit; False when it was refused (timestamps going backwards)."""
        pts = unit.pts - self._origin_video
        if pts < 0 or (self._last_video_pts is not None and pts <= self._last_video_pts):
            return False
        if self._last_video_pts is not None:
            self._video_step = pts - self._last_video_pts
        self._last_video_pts = pts
        packet = av.Packet(unit.data)
        packet.pts = packet.dts = pts
        packet.time_base = _VIDEO_TB
        packet.duration = self._video_step  # the last sample's duration at close
        assert self.video_stream is not None  # has_video
        packet.stream = self.video_stream
        packet.is_keyframe = unit.keyframe
        self.out.mux(packet)
        return True

    def audio(self, unit: MediaUnit) -> bool:
        """Decode one Opus packet and mux the AAC it yields; False when it was refused."""
        position = round((unit.pts_s - self.origin_s) * AUDIO_CLOCK_HZ)
        gap = position - self._audio_next
        if gap < -_AUDIO_JITTER_SAMPLES:
            return False  # before the track start, or overlapping what we already encoded
        if _AUDIO_JITTER_SAMPLES < gap <= _MAX_SILENCE_S * AUDIO_CLOCK_HZ:
            self._encode(_silence(gap, self.channels))
        elif gap > _AUDIO_JITTER_SAMPLES:
            self._audio_next = position  # a long pause: leave a hole rather than minutes of zeros
        packet = av.Packet(unit.data)
        packet.pts = packet.dts = unit.pts
        packet.time_base = _AUDIO_TB
        for frame in self.decoder.decode(packet):
            for out in self.resampler.resample(frame):
                self._encode(out)
        return True

    def _encode(self, frame: av.AudioFrame) -> None:
        frame.pts = self._audio_next
        frame.time_base = _AUDIO_TB
        frame.sample_rate = AUDIO_CLOCK_HZ
        self._audio_next += frame.samples
        assert self.audio_stream is not None
        for packet in self.audio_stream.encode(frame):
            self.out.mux(packet)

    def close(self) -> None:
        """Flush the encoder and the muxer: the last fragment comes out here."""
        try:
            if self.audio_stream is not None:
                for packet in self.audio_stream.encode(None):
                    self.out.mux(packet)
        finally:
            self.out.close()

    def abort(self) -> None:
        try:
            self.out.close()
        except Exception:  # already failing; the container is discarded either way
            logger.debug("closing a failed muxer", exc_info=True)


def _opus_decoder(layout: str) -> av.AudioCodecContext:
    # libopus first, though FFmpeg's own decoder is a little cheaper: that one yields float
    # with detail below 16 bits, which makes the AAC coder up to four times slower on clean
    # signals (a test tone: 4.8% of a core instead of 1.1%); libopus yields 16-bit samples.
    try:
        decoder = av.CodecContext.create("libopus", "r")
    except av.FFmpegError:
        decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate = AUDIO_CLOCK_HZ
    decoder.layout = layout
    return decoder


def opus_channels(packet: bytes) -> int:
    """Channels coded in an Opus packet: the TOC byte's stereo flag (RFC 6716 3.1)."""
    return 2 if packet and packet[0] & 0x04 else 1


def _silence(samples: int, channels: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.zeros((channels, samples), np.float32), format="fltp",
        layout="mono" if channels == 1 else "stereo",
    )  # fmt: skip
    frame.sample_rate = AUDIO_CLOCK_HZ
    return frame
