from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from livecore.events.bus import BusUnavailable, LocalBus, event_id
from livecore.events.ids import MemoryIds
from livecore.events.redis_bus import RedisBus
from livecore.events.types import Event
from tests.events.raw import Raw
from tests.support.services import RedisProcess


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
        await bus.publish(7, Raw("chat", {"text": f"m{i}"}))
    await bus.publish(8, Raw("chat", {"text": "other room"}))
    assert [e.id for e in inbox.events] == [1, 2, 3]
    assert [json.loads(e.body)["text"] for e in inbox.events] == ["m0", "m1", "m2"]
    assert json.loads(inbox.events[0].body)["type"] == "chat"
    unsubscribe()
    await bus.publish(7, Raw("chat", {"text": "after"}))
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
        await (a if i % 2 else b).publish(1, Raw("chat", {"text": str(i)}))
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
        await a.publish(2, Raw("chat", {"text": str(i)}))
    await a.publish(2, Raw("viewer_count", {"count": 3}))  # not remembered
    history = await b.history(2)
    assert [json.loads(h)["text"] for h in history] == ["0", "1", "2"]


async def test_leaving_listener_stops_delivery(two_nodes: tuple[RedisBus, RedisBus]) -> None:
    a, b = two_nodes
    inbox = Inbox()
    unsubscribe = b.subscribe(3, inbox)
    await b.joined(3)
    await a.publish(3, Raw("chat", {"text": "one"}))
    await inbox.wait_for(1)
    unsubscribe()
    await _settle()
    await a.publish(3, Raw("chat", {"text": "two"}))
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
        await a.publish(4, Raw("chat", {"text": "before"}))
        await on_b.wait_for(1)

        await asyncio.to_thread(redis.stop)
        await a.publish(4, Raw("chat", {"text": "during"}))
        await on_a.wait_for(2)  # this node's viewers still get it
        assert json.loads(on_a.events[-1].body)["text"] == "during"

        await asyncio.to_thread(redis.start)  # same port
        async with asyncio.timeout(15):
            await a._connected.wait()
            await b._connected.wait()

        async def delivered() -> bool:
            await a.publish(4, Raw("chat", {"text": "after"}))
            await asyncio.sleep(0.3)
            return any(json.loads(e.body)["text"] == "after" for e in on_b.events)

        async with asyncio.timeout(15):
            while not await delivered():
                pass
    finally:
        await a.close()
        await b.close()
        await asyncio.to_thread(redis.stop)


async def test_ids_are_never_given_twice_after_a_restart() -> None:
    source = MemoryIds()  # what PostgreSQL keeps across restarts
    first = LocalBus(source)
    before = [(await first.publish(5, Raw("chat", {"text": str(i)}))).id for i in range(3)]
    second = LocalBus(source)  # the node restarted: its counters are gone, the source is not
    after = [(await second.publish(5, Raw("chat", {"text": str(i)}))).id for i in range(3)]
    assert before == [1, 2, 3]
    assert min(after) > max(before)


async def test_history_is_taken_up_from_the_stored_lines() -> None:
    class Stored:
        async def recent(self, room: int, limit: int) -> list[bytes]:
            return [b'{"type":"chat","id":7,"text":"old"}']

    bus = LocalBus(history=5, stored=Stored())
    await bus.publish(5, Raw("chat", {"text": "new"}))  # id 1: older than the stored line 7
    await bus.publish(5, Raw("tip", {"amount": 100}))
    assert [event_id(b) for b in await bus.history(5)] == [1, 2, 7]


async def test_redis_flush_never_repeats_an_id(redis_url: str) -> None:
    source = MemoryIds()
    bus = RedisBus(redis_url, ids=source)
    await bus.start()
    try:
        before = [(await bus.publish(6, Raw("chat", {"text": str(i)}))).id for i in range(3)]
        admin = aioredis.Redis.from_url(redis_url)
        try:
            await admin.flushdb()
        finally:
            await admin.aclose()
        after = [(await bus.publish(6, Raw("chat", {"text": str(i)}))).id for i in range(3)]
        assert min(after) > max(before)
        assert after == sorted(after)
    finally:
        await bus.close()


async def test_chat_is_refused_not_delivered_locally_while_redis_is_out(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(redis.start)
    bus = RedisBus(redis.url)
    try:
        await bus.start()
        inbox = Inbox()
        bus.subscribe(4, inbox)
        await bus.joined(4)
        await asyncio.to_thread(redis.stop)
        with pytest.raises(BusUnavailable):
            await bus.publish(
                4, Raw("chat", {"text": "nobody else would see this"}), local_fallback=False
            )
        assert inbox.events == []
    finally:
        await bus.close()
        await asyncio.to_thread(redis.stop)
