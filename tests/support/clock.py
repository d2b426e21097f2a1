"""A clock a test moves by hand, for code that takes its time source as a callable (chat's
rate limits, the sign-in throttle, the circuit breaker, the TTL cache)."""

from __future__ import annotations


class ManualClock:
    """Reads `now`, which changes only when the test sets it: no test waits for real time."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
