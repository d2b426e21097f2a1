from __future__ import annotations

import asyncio

import pytest

from livecore.cache import TtlCache
from tests.support.clock import ManualClock


async def test_concurrent_misses_share_one_load() -> None:
    cache: TtlCache[str, int] = TtlCache(1.0)
    loads = 0
    gate = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return 42

    waiting = [asyncio.create_task(cache.get("k", load)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [42] * 50
    assert loads == 1


async def test_value_expires_after_ttl() -> None:
    clock = ManualClock()
    cache: TtlCache[str, int] = TtlCache(1.0, clock=clock)
    values = iter([1, 2])

    async def load() -> int:
        return next(values)

    assert await cache.get("k", load) == 1
    clock.now = 0.5
    assert await cache.get("k", load) == 1
    clock.now = 1.5
    assert await cache.get("k", load) == 2


async def test_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache: TtlCache[str, int] = TtlCache(1.0)
    gate = asyncio.Event()

    async def broken() -> int:
        await gate.wait()
        raise RuntimeError("database down")

    waiting = [asyncio.create_task(cache.get("k", broken)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

    async def fine() -> int:
        return 7

    assert await cache.get("k", fine) == 7


async def test_invalidate_forgets_values() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0)
    values = iter([1, 2])

    async def load() -> int:
        return next(values)

    assert await cache.get("k", load) == 1
    cache.invalidate()
    assert await cache.get("k", load) == 2


@pytest.mark.parametrize("max_keys", [2])
async def test_size_is_bounded(max_keys: int) -> None:
    cache: TtlCache[int, int] = TtlCache(60.0, max_keys=max_keys)

    for i in range(10):

        async def load(i: int = i) -> int:
            return i

        await cache.get(i, load)
    assert len(cache._values) <= max_keys


async def test_a_forgotten_key_is_loaded_again_and_the_others_are_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0, clock=ManualClock())
    values = iter([1, 2, 3])

    async def load() -> int:
        return next(values)

    assert await cache.get("a", load) == 1
    assert await cache.get("b", load) == 2
    cache.forget("a")
    assert await cache.get("a", load) == 3
    assert await cache.get("b", load) == 2


async def test_a_value_is_forgotten_only_while_it_is_the_one_that_failed() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0, clock=ManualClock())
    values = iter([1, 2])

    async def load() -> int:
        return next(values)

    assert await cache.get("a", load) == 1
    cache.forget_if("a", 1)  # the first asker that saw 1 fail
    assert await cache.get("a", load) == 2
    cache.forget_if("a", 1)  # another asker that saw 1 fail: 2 is kept
    assert cache.peek("a") == (60.0, 2)


async def test_peek_sees_a_fresh_value_only() -> None:
    clock = ManualClock()
    cache: TtlCache[str, int | None] = TtlCache(1.0, clock=clock)

    async def load() -> int | None:
        return None

    assert cache.peek("k") is None  # never loaded
    assert await cache.get("k", load) is None
    assert cache.peek("k") == (1.0, None)  # a stored None is a hit, told apart from a miss
    clock.now = 1.5
    assert cache.peek("k") is None  # expired


async def test_a_value_due_is_refreshed_ahead_while_askers_get_it_at_once() -> None:
    clock = ManualClock()
    cache: TtlCache[str, int] = TtlCache(1.0, clock=clock, refresh_ahead_s=0.5)
    values = iter([1, 2])
    loads = 0
    gate = asyncio.Event()
    landed = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        if loads > 1:
            await gate.wait()  # the refresh is slow: nobody may wait for it
            landed.set()
        return next(values)

    assert await cache.get("k", load) == 1
    clock.now = 0.4
    assert cache.peek("k") == (1.0, 1)  # not due yet: no refresh
    clock.now = 0.6
    assert cache.peek("k") is None  # due: callers go to get, which answers at once
    assert [await cache.get("k", load) for _ in range(20)] == [1] * 20
    await asyncio.sleep(0)  # the refresh task starts
    assert loads == 2  # one refresh, however many asked
    gate.set()
    await landed.wait()
    await asyncio.sleep(0)  # the refresh stores its value after its load returns
    assert cache.peek("k") == (1.6, 2)
    assert loads == 2


async def test_a_value_past_its_ttl_is_never_returned_while_a_refresh_runs() -> None:
    clock = ManualClock()
    cache: TtlCache[str, int] = TtlCache(1.0, clock=clock, refresh_ahead_s=0.5)
    values = iter([1, 2])
    gate = asyncio.Event()

    async def load() -> int:
        value = next(values)
        if value > 1:
            await gate.wait()
        return value

    assert await cache.get("k", load) == 1
    clock.now = 0.9
    assert await cache.get("k", load) == 1  # starts the refresh
    clock.now = 1.1  # expired: this asker waits for the refresh in flight, not the old value
    waiting = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.set()
    assert await waiting == 2


async def test_a_load_begun_before_an_invalidation_is_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0, clock=ManualClock())
    values = iter([1, 2])
    gate = asyncio.Event()

    async def load() -> int:
        value = next(values)
        if value == 1:
            await gate.wait()  # read before the change below
        return value

    reading = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    cache.invalidate()  # this node changed what the value is computed from
    gate.set()
    assert await reading == 1  # the asker gets what was read for it
    assert cache.peek("k") is None  # but it is not kept
    assert await cache.get("k", load) == 2
