"""The batcher: concurrent calls go together, answers line up, errors reach their callers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from livecore.tips.batching import Backlog, Batcher


async def test_calls_arriving_meanwhile_go_as_the_next_batch() -> None:
    batches: list[list[int]] = []

    async def double(items: Sequence[int]) -> list[int | Exception]:
        batches.append(list(items))
        await asyncio.sleep(0.01)
        return [ValueError(i) if i == 13 else i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(double, max_batch=3)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)  # the first batch is running: the others wait for it
    rest = [asyncio.create_task(batcher.submit(i)) for i in (2, 3, 13, 5)]
    assert await first == 2
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert results[:2] == [4, 6] and isinstance(results[2], ValueError) and results[3] == 10
    assert batches == [[1], [2, 3, 13], [5]]
    # A call after everything drained starts a new batch of its own.
    assert await batcher.submit(7) == 14


async def test_a_failing_batch_fails_each_of_its_callers() -> None:
    async def broken(items: Sequence[int]) -> list[int | Exception]:
        raise RuntimeError("database gone")

    batcher: Batcher[int, int] = Batcher(broken)
    for outcome in await asyncio.gather(
        *(batcher.submit(i) for i in range(4)), return_exceptions=True
    ):
        assert isinstance(outcome, RuntimeError)
    with pytest.raises(RuntimeError):
        await batcher.submit(9)


async def test_a_backlog_runs_what_waits_together_after_the_callers_moved_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started: list[int] = []
    running = peak = 0
    release = asyncio.Event()

    async def run(item: int) -> None:
        nonlocal running, peak
        started.append(item)
        running += 1
        peak = max(peak, running)
        await release.wait()
        await asyncio.sleep(0)  # the others of its round start meanwhile
        running -= 1
        if item == 3:
            raise RuntimeError("the bus is gone")

    backlog: Backlog[int] = Backlog(run, limit=3)
    await backlog.add(1)  # returns at once: the work happens in the background
    assert started == []
    await asyncio.sleep(0.01)
    assert started == [1]
    for item in (2, 3, 4):
        await backlog.add(item)  # they wait while item 1 runs
    blocked = asyncio.create_task(backlog.add(5))  # three wait already: no room for a fourth
    await asyncio.sleep(0.01)
    assert not blocked.done() and started == [1]
    release.set()
    await blocked
    await backlog.join()
    assert started == [1, 2, 3, 4, 5]
    assert peak == 3  # 2, 3 and 4 ran together
    assert "background work failed" in caplog.text  # item 3's error is logged; 4 and 5 ran
