"""Bad input on the chat socket: each gets a clear error and changes nothing."""

from __future__ import annotations

import asyncio
import json

from aiohttp import WSMsgType

from livecore.appkeys import BUS
from tests.chat.conftest import chat_config, connect, stream, user
from tests.conftest import Client, MakeClient
from tests.events.raw import Raw


async def _room(client: Client) -> dict[str, object]:
    owner = await user(client, "owner", creator=True)
    await stream(client, str(owner["token"]))
    return owner


async def test_garbage_frames_get_errors(node_a: Client) -> None:
    await _room(node_a)
    alice = await user(node_a, "alice")
    viewer = await connect(node_a, "room-one", alice["token"])
    try:
        await viewer.ws.send_str("not json")
        await viewer.wait_for(lambda e: e.get("code") == "bad_json")
        await viewer.ws.send_str("[1, 2]")
        await viewer.wait_for(lambda e: e.get("code") == "bad_message")
        await viewer.ws.send_json({"type": "dance", "nonce": "d"})
        error = await viewer.wait_for(lambda e: e.get("code") == "unknown_type")
        assert error["nonce"] == "d"
        await viewer.ws.send_json({"type": "chat", "text": 42, "nonce": "t"})
        await viewer.wait_for(lambda e: e.get("code") == "bad_message" and e.get("nonce") == "t")
        await viewer.ws.send_json({"type": "ping", "nonce": "p"})
        await viewer.wait_for(lambda e: e["type"] == "pong" and e["nonce"] == "p")
        assert viewer.of("chat") == []
    finally:
        await viewer.close()


async def test_anonymous_viewer_reads_but_cannot_chat(node_a: Client) -> None:
    await _room(node_a)
    viewer = await connect(node_a, "room-one")
    try:
        refused = await viewer.say("hi", "x")
        assert refused["code"] == "login_required"
    finally:
        await viewer.close()


async def test_token_in_first_message_logs_in(node_a: Client) -> None:
    await _room(node_a)
    alice = await user(node_a, "alice")
    viewer = await connect(node_a, "room-one")
    try:
        await viewer.ws.send_json({"type": "auth", "token": "lcs_forged", "nonce": "a1"})
        assert (await viewer.wait_for(lambda e: e.get("nonce") == "a1"))["code"] == "unauthorized"
        await viewer.ws.send_json({"type": "auth", "token": alice["token"], "nonce": "a2"})
        ack = await viewer.wait_for(lambda e: e.get("nonce") == "a2")
        assert ack["type"] == "ack" and ack["user"]["name"] == "alice"
        assert (await viewer.say("now I can", "c"))["type"] == "ack"
    finally:
        await viewer.close()


async def test_forged_user_fields_are_ignored(node_a: Client) -> None:
    await _room(node_a)
    alice = await user(node_a, "alice")
    viewer = await connect(node_a, "room-one", alice["token"])
    try:
        await viewer.ws.send_json(
            {"type": "chat", "text": "I am admin", "nonce": "f",
             "user": {"id": 1, "name": "admin", "badges": ["admin"]}}
        )  # fmt: skip
        line = await viewer.wait_for(lambda e: e["type"] == "chat")
        assert line["user"] == {"id": alice["user"]["id"], "name": "alice", "badges": []}
    finally:
        await viewer.close()


async def test_binary_frame_closes_with_1003(node_a: Client) -> None:
    await _room(node_a)
    viewer = await connect(node_a, "room-one")
    await viewer.ws.send_bytes(b"\x00\x01")
    async with asyncio.timeout(5):
        await viewer._task
    assert viewer.ws.close_code == 1003


async def test_oversized_frame_closes_the_socket(node_a: Client) -> None:
    await _room(node_a)
    viewer = await connect(node_a, "room-one")
    await viewer.ws.send_str(json.dumps({"type": "chat", "text": "x" * 10_000}))
    async with asyncio.timeout(5):
        await viewer._task
    assert viewer.ws.close_code == 1009  # message too big


async def test_flooding_socket_is_warned_then_closed(node_a: Client) -> None:
    await _room(node_a)
    viewer = await connect(node_a, "room-one")
    for i in range(200):
        await viewer.ws.send_json({"type": "ping", "nonce": str(i)})
    async with asyncio.timeout(5):
        await viewer._task
    assert viewer.of("error")[0]["code"] == "flooding"
    assert viewer.ws.close_code == 1008


async def test_unknown_stream_is_404_before_upgrade(node_a: Client) -> None:
    resp = await node_a.get("/ws/nothing-here", headers={"Upgrade": "websocket"})
    assert resp.status == 404


async def test_full_node_refuses_before_the_upgrade(make_client: MakeClient) -> None:
    client = await make_client(chat=chat_config(max_connections=1))
    await _room(client)
    first = await connect(client, "room-one")
    try:
        resp = await client.get("/ws/room-one")
        assert resp.status == 503
        # Five seconds, spread by up to half again so the refused do not return together.
        assert 5 <= int(resp.headers["Retry-After"]) <= 8
    finally:
        await first.close()


async def test_slow_consumer_is_dropped_and_others_keep_up(make_client: MakeClient) -> None:
    client = await make_client(chat=chat_config(outbox_bytes=64 * 1024, tick_ms=5))
    await _room(client)
    stream_id = (await (await client.get("/api/v1/streams/room-one")).json())["stream"]["id"]
    fast = await connect(client, "room-one")
    slow_ws = await client.ws_connect("/ws/room-one", max_msg_size=0)
    # The slow client never reads: its socket fills, then its outbox, and it is closed.
    bus = client.app[BUS]
    big = "y" * 4000
    for i in range(3000):
        await bus.publish(stream_id, Raw("tip", {"n": i, "note": big}))
        if i % 50 == 0:
            await asyncio.sleep(0.01)
    await fast.wait_for(lambda e: e.get("n") == 2999, timeout_s=30)
    assert [e["n"] for e in fast.of("tip")] == list(range(3000))
    async with asyncio.timeout(10):
        while True:
            message = await slow_ws.receive()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                break
    assert slow_ws.close_code == 1013
    metrics = await (await client.get("/metrics")).text()
    assert "livecore_chat_slow_consumers_total 1.0" in metrics
    await fast.close()
