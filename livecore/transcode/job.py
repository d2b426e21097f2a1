"""The transcoder's worker process: decodes one stream's video (H.264 or VP8), scales it and
encodes it as H.264 with x264, keeping the input's keyframes and pts (`transcoder.py` says why).

Plain blocking code: it runs in its own process (`worker_main`), and the benchmark runs `Job`
in-process. The worker process imports this module, the rest of transcode/ it needs and PyAV.

May import: transcode/.
"""

from __future__ import annotations

import contextlib
import signal
from collections import deque
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from livecore.transcode import wire
from livecore.transcode.spec import CLOCK_HZ, EncodedFrame, TranscodeSpec

if TYPE_CHECKING:
    import av


def worker_main(units: Connection, results: Connection, spec: TranscodeSpec) -> None:
    """The worker process: one message back per unit in, until the end marker or EOF."""
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            job = Job(spec)
        except Exception as exc:
            results.send_bytes(wire.ERROR + repr(exc).encode())
            return
        results.send_bytes(wire.READY)
        while True:
            message = units.recv_bytes()
            if not message:
                results.send_bytes(wire.pack_frames(wire.FLUSHED, job.flush()))
                return
            pts, key = wire.UNIT.unpack_from(message)
            frames = job.push(pts, bool(key), message[wire.UNIT.size :])
            results.send_bytes(wire.pack_frames(wire.DONE, frames))
    except (EOFError, BrokenPipeError):
        return  # the parent dropped this rendition, or is gone


class Job:
    """The decoder, scaler and encoder of one worker. Plain blocking code; the benchmark
    also runs it in-process."""

    def __init__(self, spec: TranscodeSpec) -> None:
        import fractions

        import av
        from av.video.reformatter import Interpolation, VideoReformatter

        self._av = av
        self._spec = spec
        self._time_base = fractions.Fraction(1, CLOCK_HZ)
        self._decoder = av.CodecContext.create(spec.input_codec, "r")
        self._decoder.thread_count = 1  # frame threads would hold frames back
        # low_delay: output each frame at once, even when the SPS does not promise "no
        # reordering" (WebRTC senders leave that out).
        self._decoder.options = {"flags": "low_delay"}
        self._reformatter = VideoReformatter()
        self._interpolation = Interpolation.BILINEAR
        self._encoder: av.VideoCodecContext | None = None
        self._size = (0, 0)
        self._keyframes: deque[int] = deque(maxlen=64)  # pts of input keyframes to mirror
        self.decode_errors = 0

    def push(self, pts: int, keyframe: bool, data: bytes) -> list[EncodedFrame]:
        av = self._av
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = self._time_base
        if keyframe:
            self._keyframes.append(pts)
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError:
            # A broken unit: the decoder resyncs by itself at the next keyframe.
            self.decode_errors += 1
            return []
        out: list[EncodedFrame] = []
        for frame in frames:
            out += self._encode(frame)
        return out

    def flush(self) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        with contextlib.suppress(self._av.FFmpegError):
            for frame in self._decoder.decode(None):
                out += self._encode(frame)
        if self._encoder is not None:
            out += self._collect(self._encoder.encode(None))
        return out

    def _encode(self, frame: av.VideoFrame) -> list[EncodedFrame]:
        if frame.pts is None:
            return []
        out: list[EncodedFrame] = []
        size = self._output_size(frame.width, frame.height)
        if self._encoder is None or (self._spec.height is None and size != self._size):
            # At the source's size, a new size means a new encoder (the source changes size
            # only at a keyframe, so the new encoder's first IDR stays aligned).
            if self._encoder is not None:
                out += self._collect(self._encoder.encode(None))
            self._encoder = self._open_encoder(size)
        width, height = self._size
        picture = self._reformatter.reformat(
            frame, width=width, height=height, format="yuv420p", interpolation=self._interpolation
        )
        picture.pts = frame.pts
        picture.time_base = self._time_base
        while self._keyframes and self._keyframes[0] < frame.pts:
            self._keyframes.popleft()  # that keyframe never decoded into a frame
        if self._keyframes and self._keyframes[0] == frame.pts:
            self._keyframes.popleft()
            picture.pict_type = self._av.video.frame.PictureType.I  # forced-idr: an IDR
        else:
            picture.pict_type = self._av.video.frame.PictureType.NONE
        return out + self._collect(self._encoder.encode(picture))

    def _output_size(self, width: int, height: int) -> tuple[int, int]:
        target = self._spec.height
        if target is None:
            return max(2, width // 2 * 2), max(2, height // 2 * 2)
        if self._encoder is not None:
            return self._size  # a rung keeps its size for the whole broadcast
        return max(2, round(width * target / height / 2) * 2), target // 2 * 2

    def _open_encoder(self, size: tuple[int, int]) -> av.VideoCodecContext:
        import fractions

        spec = self._spec
        encoder = self._av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = size
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = self._time_base
        encoder.framerate = fractions.Fraction(30, 1)  # nominal: x264 rate control uses pts
        encoder.bit_rate = spec.bitrate_bps
        encoder.max_b_frames = 0
        kbps = spec.bitrate_bps // 1000
        params = [
            # Keyframes only where the source has them: no GOP limit, no scene cuts.
            "keyint=infinite",
            "min-keyint=1",
            "scenecut=0",
            "bframes=0",
            # SPS/PPS before every IDR, in-band: each segment starts decodable.
            "repeat-headers=1",
            f"vbv-maxrate={kbps * 6 // 5}",
            f"vbv-bufsize={kbps}",
            # One thread is the cheapest per frame; larger pictures need two to keep up.
            f"threads={1 if size[0] * size[1] <= 1280 * 720 else 2}",
        ]
        encoder.options = {
            "preset": spec.preset,
            "tune": "zerolatency",
            "profile": spec.profile,
            "forced-idr": "1",
            "x264-params": ":".join(params),
        }
        encoder.open()
        self._size = size
        return encoder

    def _collect(self, packets: list[av.Packet[Any]]) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        for p in packets:
            if p.pts is None:
                continue
            out.append(EncodedFrame(int(p.pts), bool(p.is_keyframe), bytes(p)))
        return out
