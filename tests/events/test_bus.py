from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from livecore.events.bus import LocalBus
from livecore.events.redis_bus import RedisBus
from livecore.events.types import Event
from tests.services import RedisProcess


class Inbox:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrived = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Event]:
        async with asyncio.timeout(timeout_s):
            while len(self.events) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.events


async def test_local_bus_numbers_and_delivers_in_order() -> None:
    bus = LocalBus()
    inbox = Inbox()
    unsubscribe = bus.subscribe(7, inbox)
    for i in range(3):
        await bus.publish(7, "chat", {"text": f"m{i}"})
    await bus.publish(8, "chat", {"text": "other room"})
    assert [e.id for e in inbox.events] == [1, 2, 3]
    assert [json.loads(e.body)["text"] for e in inbox.events] == ["m0", "m1", "m2"]
    assert json.loads(inbox.events[0].body)["type"] == "chat"
    unsubscribe()
    await bus.publish(7, "chat", {"text": "after"})
    assert len(inbox.events) == 3
    assert [json.loads(b)["text"] for b in await bus.history(7)] == ["m0", "m1", "m2", "after"]


@pytest.fixture
async def two_nodes(redis_url: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    a, b = RedisBus(redis_url), RedisBus(redis_url)
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


async def _settle() -> None:
    await asyncio.sleep(0.3)  # let SUBSCRIBE reach Redis before publishing


async def test_event_reaches_every_node_once_in_order(
    two_nodes: tuple[RedisBus, RedisBus],
) -> None:
    a, b = two_nodes
    on_a, on_b = Inbox(), Inbox()
    a.subscribe(1, on_a)
    b.subscribe(1, on_b)
    await a.joined(1)
    await b.joined(1)
    for i in range(10):
        await (a if i % 2 else b).publish(1, "chat", {"text": str(i)})
    for inbox in (on_a, on_b):
        events = await inbox.wait_for(10)
        assert [e.id for e in events] == list(range(1, 11))
        assert [json.loads(e.body)["text"] for e in events] == [str(i) for i in range(10)]
        assert all(json.loads(e.body)["id"] == e.id for e in events)
    await asyncio.sleep(0.2)
    assert len(on_a.events) == len(on_b.events) == 10  # once each, no duplicates


async def test_history_is_shared(two_nodes: tuple[RedisBus, RedisBus]) -> None:
    a, b = two_nodes
    for i in range(3):
        await a.publish(2, "chat", {"text": str(i)})
    await a.publish(2, "viewer_count", {"count": 3})  # not remembered
    history = await b.history(2)
    assert [json.loads(h)["text"] for h in history] == ["0", "1", "2"]


async def test_leaving_listener_stops_delivery(two_nodes: tuple[RedisBus, RedisBus]) -> None:
    a, b = two_nodes
    inbox = Inbox()
    unsubscribe = b.subscribe(3, inbox)
    await b.joined(3)
    await a.publish(3, "chat", {"text": "one"})
    await inbox.wait_for(1)
    unsubscribe()
    await _settle()
    await a.publish(3, "chat", {"text": "two"})
    await asyncio.sleep(0.3)
    assert len(inbox.events) == 1


async def test_redis_outage_keeps_local_delivery_and_recovers(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(redis.start)
    a, b = RedisBus(redis.url), RedisBus(redis.url)
    try:
        await a.start()
        await b.start()
        on_a, on_b = Inbox(), Inbox()
        a.subscribe(4, on_a)
        b.subscribe(4, on_b)
        await a.joined(4)
        await b.joined(4)
        await a.publish(4, "chat", {"text": "before"})
        await on_b.wait_for(1)

        await asyncio.to_thread(redis.stop)
        await a.publish(4, "chat", {"text": "during"})
        await on_a.wait_for(2)  # this node's viewers still get it
        assert json.loads(on_a.events[-1].body)["text"] == "during"

        await asyncio.to_thread(redis.start)  # same port
        async with asyncio.timeout(15):
            await a._connected.wait()
            await b._connected.wait()

        async def delivered() -> bool:
            await a.publish(4, "chat", {"text": "after"})
            await asyncio.sleep(0.3)
            return any(json.loads(e.body)["text"] == "after" for e in on_b.events)

        async with asyncio.timeout(15):
            while not await delivered():
                pass
    finally:
        await a.close()
        await b.close()
        await asyncio.to_thread(redis.stop)
