"""Whether this node reaches PostgreSQL, as a metric: pinged every few seconds in the
background, so an alert sees the database go away even where nothing probes /readyz."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

INTERVAL_S = 5.0  # a scrape every 15 s sees about three pings


class DatabaseProbe:
    def __init__(
        self, registry: CollectorRegistry, ping: Callable[[], Awaitable[bool]],
        interval_s: float = INTERVAL_S,
    ) -> None:  # fmt: skip
        self._ping = ping
        self._interval_s = interval_s
        self.up = Gauge(
            "livecore_database_up",
            f"1 when PostgreSQL answered this node's last ping (every {interval_s:g} s), else 0",
            registry=registry,
        )
        self.failures = Counter(
            "livecore_database_ping_failures_total",
            "Pings of PostgreSQL that failed or timed out",
            registry=registry,
        )

    async def check(self) -> bool:
        ok = await self._ping()
        self.up.set(1 if ok else 0)
        if not ok:
            self.failures.inc()
        return ok

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Ping once now (the gauge is right from the first scrape), then every interval."""
        await self.check()
        task = asyncio.create_task(self._loop(), name="database-probe")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.check()
