"""The line in front of the chat's joins: when viewers arrive faster than a node takes them,
they wait their turn instead of all being refused at once.

Joins are admitted at `rate_per_s`, after a first `burst` admitted together (a generic cell
rate: each admitted join moves the earliest time of the next one on by 1/rate). A join that
arrives when the line is already long waits for its slot, before the WebSocket upgrade, one
timer each and no task; a join whose wait would pass `max_wait_s` is refused with how long
to wait (the HTTP answer is 503 + Retry-After, socket_routes.py), with jitter so that the
refused do not all come back in the same second. The line's state is a metric and an answer
for the watch page (moderation_routes.py): how many wait, and how long a newcomer would.

Plain asyncio, no aiohttp: one per node, made by chat/setup.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

# A refused join is told to come back after its estimated wait times a factor in this range:
# spread over the window, the refused return about as fast as the line moves.
JITTER = (1.0, 1.5)


# Why a join is refused: the line is too long, the node or the address has too many sockets.
REFUSAL_REASONS = ("line_full", "node_full", "address_full")


class LineFull(Exception):
    """The wait for a slot would be longer than the node lets a join wait."""

    def __init__(self, waiting: int, retry_after_s: int) -> None:
        super().__init__(f"{waiting} viewers are waiting; retry after {retry_after_s} s")
        self.waiting = waiting
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LineState:
    waiting: int  # joins waiting for their slot now
    wait_s: float  # how long a join arriving now would wait
    admit_per_s: float
    open: bool  # a join arriving now would be let in (at once or after a wait)
    retry_after_s: int  # when a join refused now should come back (with jitter)


class Admission:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_wait_s: float,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._interval_s = 1.0 / rate_per_s
        self._rate = rate_per_s
        self._tolerance_s = (burst - 1) * self._interval_s
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._rand = rand
        self._next_at = 0.0  # the earliest time of the next slot, burst tolerance aside
        self.waiting = 0
        self.admitted = Counter(
            "livecore_chat_admitted_total", "Chat joins let in by the admission line",
            registry=registry,
        )  # fmt: skip
        self.refused = Counter(
            "livecore_chat_admission_refused_total",
            "Chat joins refused with 503 + Retry-After, by reason", ["reason"], registry=registry,
        )  # fmt: skip
        for reason in REFUSAL_REASONS:  # at 0 from the start: rates and alerts see every reason
            self.refused.labels(reason)
        self.queued = Counter(
            "livecore_chat_admission_queued_total", "Chat joins that waited in line for a slot",
            registry=registry,
        )  # fmt: skip
        waiting = Gauge(
            "livecore_chat_admission_waiting", "Chat joins waiting in line now", registry=registry
        )
        waiting.set_function(lambda: self.waiting)
        wait = Gauge(
            "livecore_chat_admission_wait_seconds", "How long a chat join arriving now would wait",
            registry=registry,
        )  # fmt: skip
        wait.set_function(lambda: self._wait_s(self._clock()))

    def _wait_s(self, now: float) -> float:
        return max(0.0, self._next_at - now - self._tolerance_s)

    def state(self) -> LineState:
        wait_s = self._wait_s(self._clock())
        is_open = wait_s <= self._max_wait_s
        return LineState(self.waiting, wait_s, self._rate, is_open, self._retry_after(wait_s))

    def _retry_after(self, wait_s: float) -> int:
        # Beyond the longest wait, what is already in line must pass first.
        return self.retry_after(max(wait_s - self._max_wait_s, 1.0))

    async def enter(self) -> None:
        """Wait for this join's slot; LineFull at once when the wait would be too long."""
        now = self._clock()
        wait_s = self._wait_s(now)
        if wait_s > self._max_wait_s:
            self.refused.labels("line_full").inc()
            raise LineFull(self.waiting, self._retry_after(wait_s))
        self._next_at = max(self._next_at, now) + self._interval_s
        if wait_s > 0:
            self.queued.inc()
            self.waiting += 1
            try:
                await asyncio.sleep(wait_s)
            finally:
                self.waiting -= 1
        self.admitted.inc()

    def refuse(self, reason: str, after_s: float) -> int:
        """Count a join refused for another reason (the node or the address is full); the
        Retry-After to send, with jitter."""
        self.refused.labels(reason).inc()
        return self.retry_after(after_s)

    def retry_after(self, after_s: float) -> int:
        """`after_s` with jitter, in whole seconds (at least 1)."""
        low, high = JITTER
        return max(1, round(after_s * self._rand(low, high)))
