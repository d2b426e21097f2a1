"""What the event loop and the garbage collector cost: loop lag and collection pauses.

Everything livecore serves runs on one event loop per process, so anything that holds the
loop (a long callback, a collection of a big heap) delays every socket at once. The lag
probe sleeps a short, fixed time and records how much later than asked it woke; the
collector's pauses are timed from the interpreter's own callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

PROBE_S = 0.1  # how often the loop is probed
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RuntimeProbe:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.loop_lag = Histogram(
            "livecore_event_loop_lag_seconds",
            f"How late the event loop ran a {PROBE_S:g} s timer (time it was held by other work)",
            buckets=_BUCKETS,
            registry=registry,
        )
        self.gc_pause = Histogram(
            "livecore_gc_pause_seconds",
            "Garbage collection pauses, by generation",
            ["generation"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._gc_started = 0.0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        gc.callbacks.append(self._on_gc)
        task = asyncio.create_task(self._probe(), name="loop-lag-probe")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            gc.callbacks.remove(self._on_gc)

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + PROBE_S
            await asyncio.sleep(PROBE_S)
            self.loop_lag.observe(max(0.0, loop.time() - asked))

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            pause = time.perf_counter() - self._gc_started
            self.gc_pause.labels(str(info.get("generation", "?"))).observe(pause)
