"""Transcoder: one long-lived worker process that decodes one stream's video (H.264 or VP8)
and re-encodes it as H.264 for one rung of the renditions ladder (or at the source's own
size, which turns a VP8-only publisher into H.264).

Decoding and encoding never run in this process. The worker is spawned and stopped in threads
and its two pipes are asyncio pipe transports (`procpipes`), so nothing here blocks the loop.
At most `max_in_flight` units are outstanding: a worker that falls behind is reported through
`submit()` returning False, and the caller drops the rendition rather than queueing more.

Keyframes stay aligned with the source: the output frame of every input keyframe is forced
to an IDR (with SPS/PPS in front, Annex-B), x264 never places one of its own, and output pts
are the input pts, so every rendition's segments cut at the same points as the source's.

May import: transcode/. The worker process imports this module and PyAV only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal, Protocol

from livecore.transcode import procpipes
from livecore.transcode.metrics import TranscodeMetrics

if TYPE_CHECKING:
    import av

logger = logging.getLogger(__name__)

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
# Frames: "!qB" (pts, keyframe) then the data. Messages back: one per input unit.
_UNIT = struct.Struct("!qB")
_COUNT = struct.Struct("!H")
_PACKET = struct.Struct("!qBI")
_READY, _DONE, _FLUSHED, _ERROR = b"R", b"D", b"F", b"E"


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


class TranscoderFailed(Exception):
    pass


class Transcoder:
    """One worker process and the loop's side of its pipes.

    `start()` spawns the worker (in a thread); `submit()` hands it video units and never
    waits; encoded frames come back through `on_output` (on the loop, in order, one call
    per input unit). `finish()` flushes at the end of the broadcast; `aclose()` stops it at
    once. Either way the process is gone when they return (terminated by its PID if it
    does not exit within a bound). `on_crash` is called once if the worker dies or fails to
    start while it was wanted.
    """

    def __init__(
        self,
        spec: TranscodeSpec,
        *,
        name: str,
        on_output: Callable[[list[EncodedFrame]], None],
        on_crash: Callable[[str], None],
        label: str = "",
        metrics: TranscodeMetrics | None = None,
        max_in_flight: int = 150,
        max_lag_s: float = 2.0,
        start_timeout_s: float = 20.0,
    ) -> None:
        self.spec = spec
        self.name = name
        self.pid: int | None = None
        self.crashed = False
        self.exitcode: int | None = None
        self.frames_out = 0
        self.refusal = ""  # why the last submit() was refused
        self._on_output = on_output
        self._on_crash = on_crash
        self._label = label or (f"{spec.height}p" if spec.height else "source")
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._max_lag_s = max_lag_s
        self._start_timeout_s = start_timeout_s
        # (pts, handed to the worker at) of every unit not yet answered, oldest first.
        self._in_flight: deque[tuple[int, float]] = deque()
        self._before_connect: list[bytes] = []  # frames submitted while the worker spawns
        self._spawned: asyncio.Future[procpipes.Spawned] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._reader: asyncio.ReadTransport | None = None
        self._ready = False
        self._finishing = False
        self._flushed = False
        self._closed = False
        self._exited: asyncio.Future[None] | None = None
        self._settled: asyncio.Event | None = None  # set once ready, crashed or exited

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the worker in a thread; units submitted meanwhile wait for it (bounded)."""
        if self._spawned is not None:
            return
        self._exited = asyncio.get_running_loop().create_future()
        self._settled = asyncio.Event()
        self._spawned = procpipes.start(worker_main, (self.spec,), f"transcode-{self.name}")
        if self._metrics is not None:
            self._metrics.processes.labels(self._label).inc()
        self._connecting = asyncio.create_task(self._connect(), name=f"transcoder-{self.name}")

    async def _connect(self) -> None:
        assert self._spawned is not None
        try:
            # Shielded: cancelling this task must not cancel the future holding the process.
            spawned = await asyncio.shield(self._spawned)
        except Exception as exc:
            self._crash(f"could not start: {exc!r}")
            return
        self.pid = spawned.process.pid
        self._writer, self._reader = await procpipes.connect(
            spawned, self._on_message, self._on_eof
        )
        for data in self._before_connect:
            self._writer.write(data)
        self._before_connect.clear()
        if self._finishing:
            self._writer.write(procpipes.END)
        assert self._settled is not None
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await self._settled.wait()
        except TimeoutError:
            self._crash(f"not ready within {self._start_timeout_s} s")

    async def finish(self, timeout_s: float = 10.0) -> None:
        """End of input: the worker encodes what it holds (those frames come through
        `on_output`) and exits; after `timeout_s` it is stopped. Returns when it is gone."""
        if self._spawned is None or self._closed:
            await self.aclose()
            return
        self._finishing = True
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(procpipes.END)
        assert self._exited is not None
        try:
            async with asyncio.timeout(timeout_s):
                if self._connecting is not None:
                    await asyncio.shield(self._connecting)
                await asyncio.shield(self._exited)
        except TimeoutError:
            logger.warning(
                "transcoder %s: no flush within %.1f s, stopping it", self.name, timeout_s
            )
        await self.aclose()

    async def aclose(self, grace_s: float = 1.0) -> None:
        """Stop now: close the pipes (the worker exits at EOF), terminate it by its PID after
        `grace_s`, and reap it. Safe to call more than once and from a `finally`."""
        if self._closed:
            return
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.wait([self._connecting])
        # abort() on a pipe transport that already closed itself (the worker exited) fails.
        if self._writer is not None and not self._writer.is_closing():
            self._writer.abort()
        if self._reader is not None and not self._reader.is_closing():
            self._reader.close()
        self._forget_in_flight()
        if self._spawned is None:
            return
        try:
            self.exitcode = await procpipes.release(
                self._spawned, self._writer, self._reader, grace_s
            )
        finally:
            if self._metrics is not None:
                self._metrics.processes.labels(self._label).dec()
        if self.crashed and self.exitcode is not None:  # one that never started said so
            logger.warning("transcoder %s: worker exited with code %s", self.name, self.exitcode)

    # -- units in -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The worker has started and opened its decoder."""
        return self._ready

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def oldest_pending_pts(self) -> int | None:
        """The pts of the oldest unit not yet answered; None when the worker has caught up."""
        return self._in_flight[0][0] if self._in_flight else None

    def submit(self, unit: VideoUnit) -> bool:
        """Hand one video unit to the worker. Never waits: False when the worker is behind
        (the window is full, or the oldest unit has waited more than `max_lag_s`), has
        crashed or is closed, and `refusal` says which."""
        if self.crashed or self._closed or self._finishing or self._spawned is None:
            self.refusal = "not running"
            return False
        now = time.monotonic()
        if len(self._in_flight) >= self._max_in_flight:
            self.refusal = f"{len(self._in_flight)} units in flight"
            return False
        if self._ready and self._in_flight and now - self._in_flight[0][1] > self._max_lag_s:
            self.refusal = f"a unit waited more than {self._max_lag_s} s"
            return False
        data = procpipes.framed(_UNIT.pack(unit.pts, unit.keyframe) + unit.data)
        self._in_flight.append((unit.pts, now))
        if self._metrics is not None:
            self._metrics.queue.labels(self._label).inc()
        if self._writer is None:
            self._before_connect.append(data)
        elif not self._writer.is_closing():
            self._writer.write(data)  # buffered by the transport; bounded by the window
        return True

    # -- messages back ------------------------------------------------------------------------

    def _on_message(self, message: bytes) -> None:
        kind, body = message[:1], memoryview(message)[1:]
        if kind == _READY:
            self._ready = True
            # Lag counts from the moment the worker could start on a unit, not from spawning.
            now = time.monotonic()
            self._in_flight = deque((pts, now) for pts, _ in self._in_flight)
            self._settle()
        elif kind in (_DONE, _FLUSHED):
            frames = _unpack_frames(body)
            self.frames_out += len(frames)
            if kind == _DONE and self._in_flight:
                self._in_flight.popleft()
                if self._metrics is not None:
                    self._metrics.queue.labels(self._label).dec()
            if kind == _FLUSHED:
                self._flushed = True
                self._forget_in_flight()
            if frames or kind == _DONE:
                self._on_output(frames)
        elif kind == _ERROR:
            self._crash(bytes(body).decode(errors="replace"))

    def _on_eof(self) -> None:
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)
        if not self._flushed and not self._closed:
            self._crash("the worker exited")
        self._settle()

    def _crash(self, why: str) -> None:
        if self.crashed or self._closed:
            return
        self.crashed = True
        logger.warning("transcoder %s (pid %s): %s", self.name, self.pid, why)
        self._settle()
        self._on_crash(why)

    def _settle(self) -> None:
        if self._settled is not None:
            self._settled.set()

    def _forget_in_flight(self) -> None:
        if self._metrics is not None and self._in_flight:
            self._metrics.queue.labels(self._label).dec(len(self._in_flight))
        self._in_flight.clear()


def _unpack_frames(body: memoryview) -> list[EncodedFrame]:
    (count,) = _COUNT.unpack_from(body)
    offset = _COUNT.size
    frames: list[EncodedFrame] = []
    for _ in range(count):
        pts, key, size = _PACKET.unpack_from(body, offset)
        offset += _PACKET.size
        frames.append(EncodedFrame(pts, bool(key), bytes(body[offset : offset + size])))
        offset += size
    return frames


def _pack_frames(kind: bytes, frames: list[EncodedFrame]) -> bytes:
    parts = [kind, _COUNT.pack(len(frames))]
    for f in frames:
        parts += [_PACKET.pack(f.pts, f.keyframe, len(f.data)), f.data]
    return b"".join(parts)


# -- the worker process ----------------------------------------------------------------------


def worker_main(units: Connection, results: Connection, spec: TranscodeSpec) -> None:
    """The worker process: one message back per unit in, until the end marker or EOF."""
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            job = Job(spec)
        except Exception as exc:
            results.send_bytes(_ERROR + repr(exc).encode())
            return
        results.send_bytes(_READY)
        while True:
            message = units.recv_bytes()
            if not message:
                results.send_bytes(_pack_frames(_FLUSHED, job.flush()))
                return
            pts, key = _UNIT.unpack_from(message)
            frames = job.push(pts, bool(key), message[_UNIT.size :])
            results.send_bytes(_pack_frames(_DONE, frames))
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
