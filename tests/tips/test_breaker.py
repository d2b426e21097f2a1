"""The circuit breaker opens after consecutive failures, allows one trial, and closes."""

from __future__ import annotations

from livecore.tips.breaker import CircuitBreaker, State
from tests.support.clock import ManualClock


def _state(breaker: CircuitBreaker) -> State:
    # A call, not the property: the state changes as the clock moves between assertions.
    return breaker.state


def test_opens_after_consecutive_failures_and_recovers_through_one_trial() -> None:
    clock = ManualClock()
    changes: list[State] = []
    breaker = CircuitBreaker(3, 10.0, clock, changes.append)
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    breaker.succeeded()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        assert breaker.allow()
        breaker.failed()
    assert _state(breaker) == "open" and not breaker.allow()
    clock.now = 10.0
    assert _state(breaker) == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # one trial at a time
    breaker.succeeded()
    assert _state(breaker) == "closed" and breaker.allow()
    assert changes == ["open", "closed"]


def test_a_failed_trial_opens_the_circuit_again() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.failed()
    clock.now = 5.0
    assert breaker.allow()
    breaker.failed()
    assert _state(breaker) == "open"
    clock.now = 9.9
    assert not breaker.allow()


def test_a_trial_that_ends_without_a_verdict_lets_the_next_call_try() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.failed()
    clock.now = 5.0
    assert breaker.allow()
    assert not breaker.allow()  # the trial is running
    breaker.released()  # it was cancelled: neither up nor down
    assert _state(breaker) == "half_open"
    assert breaker.allow()
    breaker.succeeded()
    assert _state(breaker) == "closed"
