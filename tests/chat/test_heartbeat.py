"""Heartbeats: the node pings every chat socket and lets go of the ones that never answer."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from livecore.chat.heartbeat import PING_FRAME, Heartbeat
from livecore.chat.metrics import ChatMetrics
from livecore.chat.room import Outbox, Rooms, RoomTuning
from livecore.events.bus import LocalBus
from tests.chat.conftest import Viewer, chat_config, connect, stream, user
from tests.chat.memory_transport import MemoryTransport
from tests.conftest import MakeClient


async def test_a_round_pings_everyone_and_drops_the_silent_next_round() -> None:
    metrics = ChatMetrics(CollectorRegistry())
    rooms = Rooms(LocalBus(), RoomTuning(), metrics)
    answering, silent = MemoryTransport(), MemoryTransport()
    outboxes = [Outbox(t, 1 << 20, None) for t in (answering, silent)]
    for outbox in outboxes:
        rooms.join(1, outbox)
    heartbeat = Heartbeat(rooms, 0.02, metrics)
    await heartbeat.round()
    assert answering.frames == silent.frames == [PING_FRAME]
    await asyncio.sleep(0.02)  # a round's interval passes; one pong came back in it
    outboxes[0].unanswered = False
    await heartbeat.round()
    assert answering.frames == [PING_FRAME, PING_FRAME] and not outboxes[0].closed.is_set()
    assert outboxes[1].silent and outboxes[1].closed.is_set()
    assert silent.frames == [PING_FRAME]
    assert metrics.unresponsive._value.get() == 1
    await rooms.close()


async def test_a_client_that_answers_no_ping_is_let_go_and_the_others_stay(
    make_client: MakeClient,
) -> None:
    node = await make_client(chat=chat_config(heartbeat_s=1.0))
    owner = await user(node, "owner", creator=True)
    await stream(node, owner["token"])
    answering = await connect(node, "room-one")  # aiohttp's client answers pings itself
    ws = await node.ws_connect("/ws/room-one", autoping=False)
    gone = Viewer(ws)  # reads everything, answers nothing
    try:
        async with asyncio.timeout(10):
            await gone._task  # the server dropped it
        assert ws.closed
        assert not answering.ws.closed
        text = await (await node.get("/metrics")).text()
        assert "livecore_chat_unresponsive_closed_total 1.0" in text
        # The answering viewer is still in the room and hears the next line.
        talker = await user(node, "talker")
        speaker = await connect(node, "room-one", talker["token"])
        ack = await speaker.say("still here?", "n1")
        assert ack["type"] == "ack"
        await answering.wait_for(lambda e: e.get("text") == "still here?")
        await speaker.close()
    finally:
        await answering.close()
        await gone.close()
