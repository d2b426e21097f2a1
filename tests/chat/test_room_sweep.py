"""A room's sweep over its sockets: once and in order, storms thinned, slow sockets dropped.

These drive one Room directly with in-memory transports, so a room of more sockets than a
write slice, and events arriving between two slices, can be set up exactly.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry

from livecore.chat.metrics import ChatMetrics
from livecore.chat.room import MAX_DEFERRALS, WRITE_SLICE, Outbox, Room, RoomTuning
from livecore.events.types import Event, encode
from tests.chat.memory_transport import MemoryTransport


def event(n: int, kind: str = "chat") -> Event:
    return Event(1, n, kind, encode(1, n, kind, 0.0, {"text": f"line {n}"}))


def room_of(sockets: int, **tuning: Any) -> tuple[Room, list[MemoryTransport], ChatMetrics]:
    metrics = ChatMetrics(CollectorRegistry())
    room = Room(1, RoomTuning(**tuning), metrics)
    transports = [MemoryTransport() for _ in range(sockets)]
    for transport in transports:
        room.add(Outbox(transport, 1 << 20, None))
    return room, transports, metrics


def ids(transport: MemoryTransport) -> list[int]:
    return [e["id"] for e in transport.events()]


def ids_of(frame: bytes) -> list[int]:
    one = MemoryTransport()
    one.frames.append(frame)
    return ids(one)


async def test_every_socket_gets_every_event_once_in_order_with_one_write_per_sweep() -> None:
    room, transports, metrics = room_of(3)
    for n in (1, 2, 3):
        room.on_event(event(n))
    await room.sweep()
    room.on_event(event(4, "tip"))
    await room.sweep()
    await room.sweep()  # nothing new: nothing written
    for transport in transports:
        assert len(transport.frames) == 2
        assert ids(transport) == [1, 2, 3, 4]
    assert metrics.batches._value.get() == 2  # one frame built per sweep, for all three
    assert metrics.deliveries._value.get() == 6


async def test_an_event_arriving_mid_sweep_reaches_every_socket_exactly_once() -> None:
    room, transports, _ = room_of(WRITE_SLICE * 3)
    room.on_event(event(1))
    sweep = asyncio.create_task(room.sweep())
    await asyncio.sleep(0)  # the first slice is written, then the sweep lets the loop run
    room.on_event(event(2))
    await sweep
    # The first slice was written before event 2 came; the later slices take it at once.
    assert sorted(len(ids(t)) for t in transports) == [1] * WRITE_SLICE + [2] * WRITE_SLICE * 2
    await room.sweep()  # the next sweep brings it to the sockets written before it came
    for transport in transports:
        assert ids(transport) == [1, 2]
    assert room.pending() == 0  # written everywhere: the log is empty again


async def test_a_joining_socket_gets_only_what_is_logged_after_it_joined() -> None:
    room, (early,), _ = room_of(1)
    room.on_event(event(1))
    late = MemoryTransport()
    room.add(Outbox(late, 1 << 20, None))
    room.on_event(event(2))
    await room.sweep()
    assert ids(early) == [1, 2]
    assert ids(late) == [2]  # event 1 reaches it as history in its hello instead


async def test_a_storm_is_thinned_but_every_tip_and_moderation_event_goes_through() -> None:
    room, (viewer,), metrics = room_of(1, storm_chat_per_tick=10, tick_s=60.0)
    for n in range(1, 1001):
        kinds = ["tip" if n % 50 == 0 else "user_banned" if n % 77 == 0 else "chat"]
        room.on_event(event(n, kinds[0]))
    await room.sweep()
    got = viewer.events()
    essential = [e["id"] for e in got if e["type"] != "chat"]
    assert essential == [n for n in range(1, 1001) if n % 50 == 0 or n % 77 == 0]
    chat = [e for e in got if e["type"] == "chat"]
    assert len(chat) == 10  # the tick's allowance (no time passed to refill it)
    assert metrics.thinned._value.get() == 1000 - len(essential) - 10
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)


async def test_a_socket_behind_is_passed_over_then_gets_one_frame_with_everything() -> None:
    room, (behind, fine), _ = room_of(2)
    room.on_event(event(1))
    await room.sweep()
    behind.backlog = 100  # its client has not taken the last frame yet
    for n in (2, 3, 4):
        room.on_event(event(n))
        await room.sweep()
    assert len(behind.frames) == 1 and len(fine.frames) == 4
    assert room.pending() == 3  # kept for the socket behind
    behind.backlog = 0  # it caught up
    await room.sweep()
    assert [len(ids_of(f)) for f in behind.frames] == [1, 3]  # one write for all three
    assert ids(behind) == ids(fine) == [1, 2, 3, 4]
    assert room.pending() == 0


async def test_a_slow_socket_is_dropped_and_the_others_keep_getting_everything() -> None:
    room, (slow, fine), _ = room_of(2)
    room.on_event(event(1))
    await room.sweep()
    slow.backlog = 2 << 20  # its client stopped reading: past the outbox limit
    for n in range(2, MAX_DEFERRALS + 3):
        room.on_event(event(n))
        await room.sweep()
    assert ids(slow) == [1]
    assert ids(fine) == list(range(1, MAX_DEFERRALS + 3))
    assert len(room.outboxes) == 1
    assert room.pending() == 0  # nothing is kept for a socket that was closed


async def test_lines_held_up_for_a_moment_all_go_out_but_not_more_than_a_second_of_them() -> None:
    # 10 lines per 0.1 s tick: 100 a second. A second's worth arriving together (the node
    # was busy) is not a storm; what comes beyond it is.
    room, (viewer,), metrics = room_of(1, storm_chat_per_tick=10, tick_s=0.1)
    for n in range(1, 111):
        room.on_event(event(n))
    await room.sweep()
    assert ids(viewer)[:100] == list(range(1, 101))
    assert len(ids(viewer)) < 110 and metrics.thinned._value.get() > 0


async def test_each_sweep_measures_how_long_its_oldest_event_waited() -> None:
    room, _, metrics = room_of(2)
    logged = time.monotonic()
    room.on_event(event(1))
    after_log = time.monotonic()
    room.on_event(event(2))
    await asyncio.sleep(0.05)  # the event waits in the log (no sweep yet)
    before_sweep = time.monotonic()
    await room.sweep()
    swept = time.monotonic()
    await room.sweep()  # nothing new: nothing measured
    (family,) = metrics.delivery.collect()
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    waited = next(s.value for s in family.samples if s.name.endswith("_sum"))
    assert count == 1  # one observation per sweep that wrote something: event 1's wait
    assert before_sweep - after_log <= waited <= swept - logged
