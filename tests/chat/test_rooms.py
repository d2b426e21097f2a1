"""Chat across nodes: delivery, history, bans, viewer counts, with a real Redis."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.chat.conftest import connect, stream, user
from tests.conftest import Client, bearer


async def test_message_reaches_other_nodes_once_and_in_order(
    node_a: Client, node_b: Client, node_c: Client
) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    alice = await user(node_a, "alice")
    sender = await connect(node_a, "room-one", alice["token"])
    on_b = await connect(node_b, "room-one")
    on_c = await connect(node_c, "room-one")
    on_a = await connect(node_a, "room-one")
    await asyncio.sleep(0.3)  # node B's subscription to the room reaches Redis
    try:
        for i in range(5):
            ack = await sender.say(f"hello {i}", f"n{i}")
            assert ack["type"] == "ack"
        for viewer in (on_a, on_b, on_c):
            await viewer.wait_for(lambda e: e.get("text") == "hello 4")
            lines = viewer.of("chat")
            assert [e["text"] for e in lines] == [f"hello {i}" for i in range(5)]
            assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
            assert lines[0]["user"] == {"id": alice["user"]["id"], "name": "alice", "badges": []}
    finally:
        for viewer in (sender, on_a, on_b, on_c):
            await viewer.close()


async def test_joining_viewer_gets_history_and_room_mode(node_a: Client) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    talker = await connect(node_a, "room-one", owner["token"])
    try:
        for i in range(3):
            assert (await talker.say(f"line {i}", f"h{i}"))["type"] == "ack"
        late = await connect(node_a, "room-one")
        assert [e["text"] for e in late.hello["history"]] == ["line 0", "line 1", "line 2"]
        assert late.hello["room_mode"]["slow_mode_s"] == 0
        assert late.hello["user"] is None
        assert talker.hello["user"]["badges"] == ["owner"]
        await late.close()
    finally:
        await talker.close()


async def test_ban_on_one_node_is_enforced_on_another(node_a: Client, node_b: Client) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    troll = await user(node_a, "troll")
    on_a = await connect(node_a, "room-one", troll["token"])
    await asyncio.sleep(0.3)
    try:
        assert (await on_a.say("first", "1"))["type"] == "ack"
        resp = await node_b.post(
            "/api/v1/streams/room-one/chat/bans",
            json={"user_id": troll["user"]["id"], "reason": "spam"},
            headers=bearer(owner["token"]),
        )
        assert resp.status == 201
        await on_a.wait_for(lambda e: e["type"] == "user_banned")
        refused = await on_a.say("second", "2")
        assert refused == {
            "type": "error", "code": "banned", "message": "you are banned from this chat",
            "nonce": "2",
        }  # fmt: skip
        # Reconnecting does not help.
        again = await connect(node_b, "room-one", troll["token"])
        assert (await again.say("third", "3"))["code"] == "banned"
        await again.close()
        resp = await node_a.delete(
            f"/api/v1/streams/room-one/chat/bans/{troll['user']['id']}",
            headers=bearer(owner["token"]),
        )
        assert resp.status == 204
        await on_a.wait_for(lambda e: e["type"] == "user_unbanned")
        assert (await on_a.say("back", "4"))["type"] == "ack"
    finally:
        await on_a.close()


async def test_viewer_counts_sum_across_nodes(node_a: Client, node_b: Client) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    viewers = [await connect(node_a, "room-one") for _ in range(2)]
    viewers.append(await connect(node_b, "room-one"))
    try:
        for viewer in viewers:
            await viewer.wait_for(lambda e: e["type"] == "viewer_count" and e["count"] == 3)
        await viewers.pop().close()
        await viewers[0].wait_for(
            lambda e: e["type"] == "viewer_count" and e["count"] == 2, timeout_s=10
        )
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_broadcast_records_peak_and_unique_viewers(node_a: Client, dsn: str) -> None:
    owner = await user(node_a, "owner", creator=True)
    stream_id = await stream(node_a, owner["token"])
    conn = await asyncpg.connect(dsn)
    try:
        broadcast_id = await conn.fetchval(
            "INSERT INTO broadcasts (stream_id) VALUES ($1) RETURNING id", stream_id
        )
        alice = await user(node_a, "alice")
        viewers = [
            await connect(node_a, "room-one", alice["token"]),
            await connect(node_a, "room-one", alice["token"]),  # the same person, twice
            await connect(node_a, "room-one"),
        ]
        try:
            await viewers[0].wait_for(lambda e: e["type"] == "viewer_count" and e["count"] == 3)
            async with asyncio.timeout(10):
                while True:
                    row = await conn.fetchrow(
                        "SELECT peak_viewers, unique_viewers FROM broadcasts WHERE id = $1",
                        broadcast_id,
                    )
                    assert row is not None
                    if row["peak_viewers"] == 3:
                        break
                    await asyncio.sleep(0.1)
            assert row["unique_viewers"] == 2  # alice and one anonymous address
        finally:
            for viewer in viewers:
                await viewer.close()
    finally:
        await conn.close()


async def test_viewer_count_drops_when_a_node_goes_away(node_a: Client, node_b: Client) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    on_a = await connect(node_a, "room-one")
    on_b = [await connect(node_b, "room-one") for _ in range(2)]
    try:
        await on_a.wait_for(lambda e: e["type"] == "viewer_count" and e["count"] == 3)
        await node_b.close()  # the whole node stops, its sockets with it
        await on_a.wait_for(lambda e: e["type"] == "viewer_count" and e["count"] == 1)
    finally:
        await on_a.close()
        for viewer in on_b:
            await viewer.close()


async def test_a_tip_on_one_node_reaches_every_node_once(
    node_a: Client, node_b: Client, node_c: Client
) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    fan = await user(node_a, "fan")
    viewers = [await connect(node, "room-one") for node in (node_a, node_b, node_c)]
    await asyncio.sleep(0.3)  # every node's subscription to the room reaches Redis
    try:
        resp = await node_b.post(
            "/api/v1/streams/room-one/tips",
            json={"amount_minor": 300, "currency": "usd", "message": "for the show"},
            headers=bearer(fan["token"]) | {"Idempotency-Key": "t1"},
        )
        assert resp.status == 201, await resp.text()
        for viewer in viewers:
            tip = await viewer.wait_for(lambda e: e["type"] == "tip")
            assert (tip["amount_minor"], tip["message"], tip["user"]["name"]) == (
                300, "for the show", "fan",
            )  # fmt: skip
        await asyncio.sleep(0.3)
        assert all(len(viewer.of("tip")) == 1 for viewer in viewers)
    finally:
        for viewer in viewers:
            await viewer.close()
