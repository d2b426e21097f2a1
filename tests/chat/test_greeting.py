"""The hello joiners share: one read for the joins that arrive together, never a stale one."""

from __future__ import annotations

import asyncio
import json

from livecore.chat.greeting import Greeter, Greeting, greeting
from tests.chat.conftest import connect, stream, user
from tests.conftest import Client


class _Room:
    """What a greeter reads: a history that grows, the events counted, reads gated by a test."""

    def __init__(self) -> None:
        self.history: list[bytes] = []
        self.events = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def read(self) -> Greeting:
        snapshot = list(self.history)  # what the room holds when the read starts
        self.started.set()
        await self.gate.wait()
        return greeting({"slow_mode_s": 0}, snapshot)

    def say(self, n: int) -> None:
        self.history.append(json.dumps({"type": "chat", "id": n}).encode())
        self.events += 1


def _ids(g: Greeting) -> list[int]:
    return [json.loads(body)["id"] for body in g.history]


async def test_joiners_during_a_read_share_the_next_one_not_the_one_under_way() -> None:
    room = _Room()
    greeter = Greeter(room.read, lambda: room.events)
    room.gate.clear()
    first = asyncio.create_task(greeter.get())
    await room.started.wait()
    room.say(1)  # logged after the first read started: later joiners must see it
    later = [asyncio.create_task(greeter.get()) for _ in range(50)]
    await asyncio.sleep(0)
    room.gate.set()
    assert _ids(await first) == []
    results = await asyncio.gather(*later)
    assert all(_ids(r) == [1] for r in results)
    assert greeter.reads == 2  # 51 joiners, two reads
    assert len({id(r) for r in results}) == 1  # and one encoding for the 50


async def test_a_kept_hello_serves_later_joiners_until_the_room_hears_an_event() -> None:
    room = _Room()
    greeter = Greeter(room.read, lambda: room.events)
    room.say(1)
    await greeter.get()
    assert _ids(await greeter.get()) == [1] and greeter.reads == 1
    room.say(2)
    assert _ids(await greeter.get()) == [1, 2] and greeter.reads == 2


async def test_a_kept_hello_is_read_again_after_its_age_limit() -> None:
    room = _Room()
    now = [100.0]
    greeter = Greeter(room.read, lambda: room.events, max_age_s=1.0, clock=lambda: now[0])
    await greeter.get()
    now[0] += 0.5
    await greeter.get()
    assert greeter.reads == 1
    now[0] += 0.6
    await greeter.get()
    assert greeter.reads == 2


async def test_a_failed_read_fails_its_joiners_and_the_next_joiner_reads_again() -> None:
    calls = 0

    async def read() -> Greeting:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("history unreachable")
        return greeting({}, [])

    greeter = Greeter(read, lambda: 0)
    try:
        await greeter.get()
    except OSError:
        pass
    else:
        raise AssertionError("the first read should have failed")
    assert (await greeter.get()).history == []


async def test_an_anonymous_hello_is_the_frame_a_logged_in_one_would_be_without_the_user() -> None:
    g = greeting({"slow_mode_s": 3}, [b'{"type":"chat","id":7}'])
    payload = g.anonymous_frame[2:]  # a short text frame: two header bytes
    assert json.loads(payload) == json.loads(g.hello(None))
    assert json.loads(g.hello({"id": 1}))[0]["user"] == {"id": 1}


async def test_a_line_said_in_a_room_is_in_the_next_joiners_hello(client: Client) -> None:
    owner = await user(client, "owner", creator=True)
    await stream(client, owner["token"])
    first = await connect(client, "room-one")
    second = await connect(client, "room-one")  # the kept hello
    assert second.hello["history"] == first.hello["history"] == []
    talker = await connect(client, "room-one", owner["token"])
    ack = await talker.say("hello room", "n1")
    assert ack["type"] == "ack"
    third = await connect(client, "room-one")
    assert [e["text"] for e in third.hello["history"]] == ["hello room"]
    for viewer in (first, second, talker, third):
        await viewer.close()
