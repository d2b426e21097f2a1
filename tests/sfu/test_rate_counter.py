"""The receive-side rate counter after a pause: the same figures as aiortc's, without
stepping through every millisecond of the pause (see livecore.sfu.passthrough, item 7)."""

from __future__ import annotations

import random
from typing import Any

import aiortc.rate
import pytest

from livecore.sfu import passthrough
from livecore.sfu.passthrough import install_passthrough


class _AiortcRateCounter(aiortc.rate.RateCounter):
    """aiortc's own counter, whatever is installed on the class."""

    def _erase_old(self, now_ms: int) -> None:
        passthrough._aiortc_erase_old(self, now_ms)


def _state(counter: aiortc.rate.RateCounter) -> tuple[Any, ...]:
    return (
        counter._origin_ms,
        counter._origin_index,
        counter._total.count,
        counter._total.value,
        [(b.count, b.value) for b in counter._buckets],
    )


@pytest.mark.parametrize("seed", range(5))
def test_same_figures_as_aiortcs_counter_through_short_and_long_gaps(seed: int) -> None:
    install_passthrough()
    rng = random.Random(seed)
    ours, theirs = aiortc.rate.RateCounter(100), _AiortcRateCounter(100)
    now = rng.randrange(10**6)
    for _ in range(3000):
        now += rng.choice([0, 0, 1, 3, 7, 33, 99, 100, 101, 199, 200, 201, rng.randrange(5000)])
        if rng.random() < 0.6:
            size = rng.randrange(1, 1500)
            ours.add(size, now)
            theirs.add(size, now)
        else:
            assert ours.rate(now) == theirs.rate(now)
        assert _state(ours) == _state(theirs)


def test_a_day_long_pause_is_crossed_at_once() -> None:
    install_passthrough()
    counter = aiortc.rate.RateCounter(1000, 8000)
    counter.add(1200, 0)
    day_ms = 86_400_000  # aiortc's own loop would take over a minute here
    assert counter.rate(day_ms) is None  # nothing in the window: no rate
    counter.add(1200, day_ms + 1)
    counter.add(1200, day_ms + 2)
    assert counter.rate(day_ms + 2) == round(8000 * 2400 / 1000)
