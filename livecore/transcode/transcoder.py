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

The worker process is `job.py`; the messages between them are `wire.py`.

May import: transcode/.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from livecore.transcode import procpipes, wire
from livecore.transcode.job import worker_main
from livecore.transcode.metrics import TranscodeMetrics
from livecore.transcode.spec import EncodedFrame, TranscodeSpec, VideoUnit

logger = logging.getLogger(__name__)


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
        data = procpipes.framed(wire.UNIT.pack(unit.pts, unit.keyframe) + unit.data)
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
        if kind == wire.READY:
            self._ready = True
            # Lag counts from the moment the worker could start on a unit, not from spawning.
            now = time.monotonic()
            self._in_flight = deque((pts, now) for pts, _ in self._in_flight)
            self._settle()
        elif kind in (wire.DONE, wire.FLUSHED):
            frames = wire.unpack_frames(body)
            self.frames_out += len(frames)
            if kind == wire.DONE and self._in_flight:
                self._in_flight.popleft()
                if self._metrics is not None:
                    self._metrics.queue.labels(self._label).dec()
            if kind == wire.FLUSHED:
                self._flushed = True
                self._forget_in_flight()
            if frames or kind == wire.DONE:
                self._on_output(frames)
        elif kind == wire.ERROR:
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
