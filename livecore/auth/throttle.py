"""Throttles: failed logins, sign-ups and password-reset requests, per account (or e-mail)
and per client address.

Counted in memory on each node, bounded in size. With several nodes an attacker spread over
all of them gets at most `nodes x limit` tries per window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureWindow:
    """At most `limit` failures per key within `window_s`; older ones are forgotten."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after_s(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may try now."""
        times = self._failures.get(key)
        if times is None:
            return 0.0
        # Forget only the failures that left the window: dropping the whole key here would
        # also forget recent failures and let more than `limit` through within one window.
        now = self._clock()
        while times and times[0] + self.window_s <= now:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window_s - now

    def fail(self, key: str) -> None:
        times = self._failures.get(key)
        if times is None:
            if len(self._failures) >= self._max_keys:
                self._evict()
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(self._clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, t in self._failures.items() if t[-1] + self.window_s <= now]:
            del self._failures[key]
        while len(self._failures) >= self._max_keys:
            # Still full of live entries: forget the oldest-inserted key.
            del self._failures[next(iter(self._failures))]


def admit(*slots: tuple[FailureWindow, str]) -> float:
    """Count one attempt under every (window, key) when all of them have room.

    Returns 0 when the attempt is admitted (and counted in each window), else the seconds
    until every window has room again; a refused attempt is counted nowhere. Synchronous on
    purpose: nothing runs between the check and the count, so a burst of concurrent requests
    cannot all pass the check before any of them is counted.
    """
    wait = max(window.retry_after_s(key) for window, key in slots)
    if wait > 0:
        return wait
    for window, key in slots:
        window.fail(key)
    return 0.0
