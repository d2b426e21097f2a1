"""Where a packager's worker runs (`WorkerLink`): a thread of this process (`ThreadLink`, for
tests and tools) or a packaging process shared by several broadcasts (`PackagingProcesses`,
what `livecore serve` uses).

Packaging is CPU work the event loop must never wait on: Opus is decoded and encoded to AAC,
and PyAV holds the GIL while it does, so in a thread it would slow the loop (and every
publisher and viewer on it) and keep the whole server on one core. In packaging processes it
runs beside the loop on other cores. Each process hosts several broadcasts, all fed by one
thread (`packaging_host.host_main`); broadcasts go to the least loaded one, and a node spawns them
only as broadcasts need them, up to `hls.packaging_processes`.

The loop's side never blocks: units go down a pipe transport, events come back through one.
When a process dies, each broadcast it hosted goes on in another (`resuming.ResumingLink`,
which every link handed out here is): the same broadcast and recording, after a
discontinuity. One whose packaging keeps dying ends as failed (its recording stays playable
up to the last complete segment).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from livecore.hls.metrics import HlsMetrics
from livecore.hls.packaging_host import UNIT_HEAD, host_main
from livecore.hls.resuming import RestartBudget, ResumingLink
from livecore.hls.worker import Finished, QueueItem, Worker, WorkerEvent, WorkerSpec
from livecore.sfu.media import MediaUnit
from livecore.transcode import procpipes

logger = logging.getLogger(__name__)

# How long units wait to go down a packaging process's pipe together (parts are 0.2 s).
FLUSH_S = 0.01

EventHandler = Callable[[WorkerEvent], None]


class WorkerLink(Protocol):
    """The loop's end of one packager's worker. `on_event` is always called on the loop."""

    def start(self, spec: WorkerSpec, on_event: EventHandler) -> None: ...

    def send(self, unit: MediaUnit, queued_at: float) -> None:
        """Never waits."""
        ...

    @property
    def backlog(self) -> int:
        """Units sent that the worker has not taken yet (as far as the loop knows)."""
        ...

    def end(self) -> None:
        """No more units: the worker flushes, finishes the recording and reports Finished."""
        ...


class ThreadLink:
    """The worker in a thread of this process."""

    def __init__(self) -> None:
        # SimpleQueue: put() never takes a lock the worker may hold, so the loop never blocks.
        self._inbox: queue.SimpleQueue[QueueItem | None] = queue.SimpleQueue()

    def start(self, spec: WorkerSpec, on_event: EventHandler) -> None:
        loop = asyncio.get_running_loop()

        def emit(event: WorkerEvent) -> None:
            # RuntimeError: the loop is closed, so nobody is left to read the state.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_event, event)

        worker = Worker(spec, emit)
        name = f"hls-{spec.slug}"
        threading.Thread(target=worker.run, args=(self._inbox,), name=name, daemon=True).start()

    def send(self, unit: MediaUnit, queued_at: float) -> None:
        self._inbox.put((unit, queued_at))

    @property
    def backlog(self) -> int:
        return self._inbox.qsize()

    def end(self) -> None:
        self._inbox.put(None)


class _Process:
    """One packaging process and the loop's side of its pipes."""

    def __init__(self, name: str, on_death: Callable[[_Process], None]) -> None:
        self.name = name
        self._on_death = on_death
        self.dead = False
        self._stopping = False  # asked to exit: its end is not a death
        self.handlers: dict[int, Callable[[int | None, WorkerEvent], None]] = {}
        self.assigned = 0  # links handed out and not finished: what "least loaded" counts
        self._spawned: asyncio.Future[procpipes.Spawned] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._reader: asyncio.ReadTransport | None = None
        self._outgoing: list[bytes] = []  # framed messages not yet written
        self._flush_timer: asyncio.TimerHandle | None = None
        self._exited = asyncio.Event()

    def start(self) -> None:
        self._spawned = procpipes.start(host_main, (), self.name)
        self._connecting = asyncio.create_task(self._connect(), name=self.name)

    async def _connect(self) -> None:
        assert self._spawned is not None
        try:
            spawned = await asyncio.shield(self._spawned)
        except Exception as exc:
            self._die(f"could not start: {exc!r}")
            return
        self._writer, self._reader = await procpipes.connect(spawned, self._on_message, self._die)
        self._flush()

    @property
    def pid(self) -> int | None:
        spawned = self._spawned
        if spawned is None or not spawned.done() or spawned.cancelled() or spawned.exception():
            return None
        return spawned.result().process.pid

    @property
    def buffered_bytes(self) -> int:
        waiting = sum(len(m) for m in self._outgoing)
        return waiting + (self._writer.get_write_buffer_size() if self._writer else 0)

    def write(self, payload: bytes) -> None:
        """Queue one message; messages go down the pipe together every FLUSH_S: a write per
        unit cost the loop more than the rest of a unit's way through it."""
        if self.dead:
            return
        self._outgoing.append(procpipes.framed(payload))
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        if self._writer is None:
            return  # still connecting: _connect flushes
        data, self._outgoing = b"".join(self._outgoing), []
        if data and not self._writer.is_closing():
            self._writer.write(data)

    def _on_message(self, message: bytes) -> None:
        sid, consumed, event = pickle.loads(message)
        handler = self.handlers.get(sid)
        if isinstance(event, Finished):
            self.handlers.pop(sid, None)
            self.assigned -= 1
        if handler is not None:
            handler(consumed, event)

    def _die(self, why: str = "exited") -> None:
        self._exited.set()
        if self.dead:
            return
        self.dead = True
        self._outgoing.clear()
        if not self._stopping:
            self._on_death(self)
        if self.handlers:
            logger.error("%s: %s, with %d broadcasts' packaging", self.name, why,
                         len(self.handlers))  # fmt: skip
        handlers, self.handlers = self.handlers, {}
        for handler in handlers.values():
            handler(None, self.death())

    def death(self) -> Finished:
        """What its broadcasts' packaging is told once it is dead: asked to stop, it did not
        finish them in time; otherwise it crashed (and they go on elsewhere)."""
        return Finished(failed=True, crashed=not self._stopping)

    async def aclose(self, grace_s: float) -> None:
        """Ask the process to finish its broadcasts and exit; stop it by its PID after
        `grace_s`. Once dead: collect its exit status and close its pipes."""
        self._stopping = True
        if self._connecting is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await asyncio.shield(self._connecting)  # a process still starting
                    if self._writer is not None:
                        if not self._writer.is_closing() and not self.dead:
                            self._flush()
                            self._writer.write(procpipes.END)
                        await self._exited.wait()
            self._connecting.cancel()
            await asyncio.wait([self._connecting])
        self._die("stopped")
        for transport in (self._writer, self._reader):
            if transport is not None and not transport.is_closing():
                transport.close()
        if self._spawned is None:
            return
        code = await procpipes.release(self._spawned, self._writer, self._reader, 0.5)
        if code:
            logger.warning("%s exited with code %s", self.name, code)


class _ProcessLink:
    """One broadcast's worker in a packaging process."""

    def __init__(self, process: _Process, sid: int) -> None:
        self._process = process
        self._sid = sid
        self._sent = 0
        self._consumed = 0
        self._on_event: EventHandler | None = None

    def start(self, spec: WorkerSpec, on_event: EventHandler) -> None:
        self._on_event = on_event
        if self._process.dead:
            asyncio.get_running_loop().call_soon(on_event, self._process.death())
            return
        self._process.handlers[self._sid] = self._on_process_event
        self._process.write(b"O" + pickle.dumps((self._sid, spec)))

    def _on_process_event(self, consumed: int | None, event: WorkerEvent) -> None:
        if consumed is not None:
            self._consumed = consumed
        assert self._on_event is not None
        self._on_event(event)

    def send(self, unit: MediaUnit, queued_at: float) -> None:
        self._sent += 1
        codec = unit.codec.encode()
        head = UNIT_HEAD.pack(self._sid, unit.pts, unit.clock_hz, unit.kind == "video",
                              unit.keyframe, queued_at, len(codec))  # fmt: skip
        self._process.write(b"U" + head + codec + unit.data)

    @property
    def backlog(self) -> int:
        return self._sent - self._consumed

    def end(self) -> None:
        self._process.write(b"E" + UNIT_HEAD.pack(self._sid, 0, 0, False, False, 0.0, 0))


class PackagingProcesses:
    """Up to `processes` packaging processes, spawned as broadcasts need them. A broadcast's
    packaging goes on in another process when its own dies, `restarts` times within
    `restart_window_s` at most (`resuming.RestartBudget`)."""

    def __init__(
        self,
        processes: int,
        metrics: HlsMetrics | None = None,
        *,
        restarts: int = 3,
        restart_window_s: float = 60.0,
    ) -> None:
        self._max = processes
        self._restarts = restarts
        self._restart_window_s = restart_window_s
        self._live: list[_Process] = []
        self._all: list[_Process] = []
        self._ids = itertools.count(1)
        self._metrics = metrics
        self._closed = False
        self._reaping: set[asyncio.Task[None]] = set()  # dead processes being reaped
        if metrics is not None:
            metrics.packaging_processes.set_function(lambda: len(self.pids))

    def link(self) -> WorkerLink:
        """A worker for one more broadcast, in the least loaded process, moving to another
        if that one dies."""
        budget = RestartBudget(self._restarts, self._restart_window_s)
        return ResumingLink(self._process_link, budget, self._metrics)

    def _process_link(self) -> WorkerLink | None:
        """A worker in the least loaded process (None once closing: nothing may start)."""
        if self._closed:
            return None
        self._live = [p for p in self._live if not p.dead]
        if len(self._live) < self._max and all(p.assigned for p in self._live):
            process = _Process(f"hls-packaging-{next(self._ids)}", self._dead)
            process.start()
            self._live.append(process)
            self._all.append(process)
        else:
            process = min(self._live, key=lambda p: p.assigned)
        process.assigned += 1
        return _ProcessLink(process, next(self._ids))

    @property
    def buffered_bytes(self) -> int:
        """Bytes on their way to the processes, not yet in their pipes."""
        return sum(p.buffered_bytes for p in self._live)

    def _dead(self, process: _Process) -> None:
        if self._metrics is not None:
            self._metrics.packaging_process_deaths.inc()
        # Reaped now, not at close: a node whose processes die now and then keeps no zombies.
        if process in self._all:
            self._all.remove(process)
            reaping = asyncio.create_task(process.aclose(0.5), name=f"{process.name}-reap")
            self._reaping.add(reaping)
            reaping.add_done_callback(self._reaping.discard)

    @property
    def pids(self) -> list[int]:
        """The PIDs of the running packaging processes (those started so far)."""
        return [pid for p in self._live if not p.dead and (pid := p.pid) is not None]

    async def close(self, grace_s: float = 10.0) -> None:
        """Let every process finish what it holds, then stop it."""
        self._closed = True
        processes, self._all, self._live = self._all, [], []
        await asyncio.gather(*(p.aclose(grace_s) for p in processes), *self._reaping)
