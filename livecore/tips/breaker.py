"""A circuit breaker for calls to the payment processor.

Closed: calls go through. After `failures` consecutive failures it opens: calls are refused
at once (the caller uses its fallback lane) for `reset_s`. Then it is half-open: one trial
call goes through; its success closes the circuit, its failure opens it again, and a trial
that ends without telling either way (cancelled, crashed) lets the next call be the trial.

Only outages count as failures (the caller decides: transport failures and 5xx answers). Any
other answer, a refusal included, shows the processor is up and counts as a success: a trial
met by a refused request must close the circuit, or it would stay half-open for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._reset_s:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._trial_running:
            return False
        self._trial_running = True
        return True

    def succeeded(self) -> None:
        was_open = self._opened_at is not None
        self._failures = 0
        self._opened_at = None
        self._trial_running = False
        if was_open:
            self._changed("closed")

    def failed(self) -> None:
        self._failures += 1
        trial = self._trial_running
        self._trial_running = False
        if trial or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = self._clock()
            self._changed("open")

    def released(self) -> None:
        """The call that `allow()` let through ended with no verdict: free the trial."""
        self._trial_running = False

    def _changed(self, state: State) -> None:
        if self._on_change is not None:
            self._on_change(state)
