"""Acknowledged chat lines survive restarts: of a node (in-process bus) and of Redis.

Every acked line is stored exactly once under the id it was acked with, ids are never given
twice, the room's history comes back, and moderation by id reaches the line it names.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from tests.chat.conftest import FAST_CHAT, Viewer, connect, stream, user
from tests.conftest import Client, MakeClient, bearer
from tests.support.services import RedisProcess


async def _say_all(viewer: Viewer, prefix: str, count: int) -> dict[int, str]:
    """Send `count` lines; the id each was acked with, to its text."""
    acked: dict[int, str] = {}
    for i in range(count):
        text = f"{prefix} line {i}"
        answer = await viewer.say(text, f"{prefix}-{i}")
        assert answer["type"] == "ack", answer
        acked[answer["id"]] = text
    return acked


async def _stored(dsn: str, stream_id: int) -> dict[int, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, text FROM chat_messages WHERE stream_id = $1 AND deleted_at IS NULL",
            stream_id,
        )
    finally:
        await conn.close()
    return {r["id"]: r["text"] for r in rows}


def _history_texts(viewer: Viewer) -> list[str]:
    return [e["text"] for e in viewer.hello["history"] if e["type"] == "chat"]


async def _delete(client: Client, owner: str, slug: str, message_id: int) -> None:
    resp = await client.delete(
        f"/api/v1/streams/{slug}/chat/messages/{message_id}", headers=bearer(owner)
    )
    assert resp.status == 204, await resp.text()


async def test_acked_lines_survive_a_node_restart(make_client: MakeClient, dsn: str) -> None:
    first = await make_client(chat=FAST_CHAT)
    owner = (await user(first, "owner", creator=True))["token"]
    fan = (await user(first, "fan"))["token"]
    stream_id = await stream(first, owner)
    viewer = await connect(first, "room-one", fan)
    before = await _say_all(viewer, "before", 12)
    await viewer.close()
    await first.close()  # the node goes away; its bus's counters with it

    second = await make_client(chat=FAST_CHAT)
    viewer = await connect(second, "room-one", fan)
    assert _history_texts(viewer) == list(before.values())  # history survives the restart
    after = await _say_all(viewer, "after", 12)

    assert not set(before) & set(after), "an id was given twice"
    assert min(after) > max(before)  # ids keep rising for clients that resume by them
    assert await _stored(dsn, stream_id) == before | after  # every acked line, once

    # Moderation by id hits the line it names, not a line from before the restart.
    target = max(after)
    await _delete(second, owner, "room-one", target)
    stored = await _stored(dsn, stream_id)
    assert target not in stored
    assert stored == {i: t for i, t in (before | after).items() if i != target}
    await viewer.close()


async def _node(make_client: MakeClient, url: str) -> Client:
    return await make_client(redis_url=url, chat=FAST_CHAT)


async def _restart(redis: RedisProcess) -> None:
    await asyncio.to_thread(redis.stop)
    await asyncio.to_thread(redis.start)  # the same port, nothing kept


async def _say_until_acked(viewer: Viewer, text: str, nonce: str) -> dict[str, Any]:
    """Send until the line is acked (refused as unavailable while Redis comes back)."""
    async with asyncio.timeout(30):
        attempt = 0
        while True:
            attempt += 1
            answer = await viewer.say(text, f"{nonce}-{attempt}")
            if answer["type"] == "ack":
                return answer
            assert answer["code"] == "unavailable", answer
            await asyncio.sleep(0.2)


async def test_acked_lines_survive_a_redis_restart(
    make_client: MakeClient, dsn: str, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(redis.start)
    try:
        node_a = await _node(make_client, redis.url)
        node_b = await _node(make_client, redis.url)
        owner = (await user(node_a, "owner", creator=True))["token"]
        fan_a = (await user(node_a, "fan-a"))["token"]
        fan_b = (await user(node_a, "fan-b"))["token"]
        stream_id = await stream(node_a, owner)
        on_a = await connect(node_a, "room-one", fan_a)
        on_b = await connect(node_b, "room-one", fan_b)
        before = await _say_all(on_a, "a-before", 6) | await _say_all(on_b, "b-before", 6)

        await _restart(redis)

        after: dict[int, str] = {}
        for i in range(6):
            for viewer, name in ((on_a, "a"), (on_b, "b")):
                text = f"{name}-after line {i}"
                after[(await _say_until_acked(viewer, text, f"{name}{i}"))["id"]] = text

        assert not set(before) & set(after), "an id was given twice"
        assert await _stored(dsn, stream_id) == before | after  # every acked line, once

        # Both nodes' viewers get every line acked after the restart, each once.
        for viewer in (on_a, on_b):
            for line_id in after:
                await viewer.wait_for(lambda e, i=line_id: e["type"] == "chat" and e["id"] == i)
            chat_ids = [e["id"] for e in viewer.of("chat")]
            assert len(chat_ids) == len(set(chat_ids)), "a line was delivered twice"

        # A viewer joining now gets the history from before the restart too.
        late = await connect(node_b, "room-one", fan_b)
        assert _history_texts(late) == [(before | after)[i] for i in sorted(before | after)][-50:]

        # Moderation by id reaches the pre-restart line it names.
        target = min(before)
        await _delete(node_b, owner, "room-one", target)
        assert target not in await _stored(dsn, stream_id)
        for viewer in (on_a, on_b, late):
            await viewer.wait_for(
                lambda e: e["type"] == "chat_deleted" and e["message_id"] == target
            )
        for viewer in (on_a, on_b, late):
            await viewer.close()
    finally:
        await asyncio.to_thread(redis.stop)


async def test_lines_reach_this_nodes_viewers_while_pubsub_reconnects(
    make_client: MakeClient, redis_url: str
) -> None:
    node = await _node(make_client, redis_url)
    other = await _node(make_client, redis_url)
    owner = (await user(node, "owner", creator=True))["token"]
    fan = (await user(node, "fan"))["token"]
    await stream(node, owner)
    here = await connect(node, "room-one", fan)
    there = await connect(other, "room-one", fan)
    await _say_all(here, "warm-up", 1)

    # Drop every pub/sub connection: the command connections stay, so lines are acked at
    # once while the nodes are still resubscribing their rooms.
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.client_kill_filter(_type="pubsub")
    finally:
        await admin.aclose()
    mine = await _say_all(here, "during", 3)
    theirs = await _say_all(there, "elsewhere", 3)

    for viewer in (here, there):
        for line_id in mine | theirs:
            await viewer.wait_for(lambda e, i=line_id: e["type"] == "chat" and e["id"] == i)
        chat_ids = [e["id"] for e in viewer.of("chat")]
        assert len(chat_ids) == len(set(chat_ids)), "a line was delivered twice"
    await here.close()
    await there.close()


async def test_a_line_that_cannot_be_stored_is_refused_and_taken_back(
    node_a: Client, dsn: str
) -> None:
    owner = (await user(node_a, "owner", creator=True))["token"]
    fan = (await user(node_a, "fan"))["token"]
    stream_id = await stream(node_a, owner)
    speaker = await connect(node_a, "room-one", fan)
    watcher = await connect(node_a, "room-one")
    kept = await _say_all(speaker, "kept", 1)
    conn = await asyncpg.connect(dsn)
    try:  # the stream goes while its room is open: its lines have nowhere to be stored
        await conn.execute("DELETE FROM streams WHERE id = $1", stream_id)
    finally:
        await conn.close()

    answer = await speaker.say("lost", "lost-1")
    assert answer["type"] == "error" and answer["code"] == "not_stored", answer
    line = await watcher.wait_for(lambda e: e["type"] == "chat" and e["text"] == "lost")
    await watcher.wait_for(lambda e: e["type"] == "chat_deleted" and e["message_id"] == line["id"])
    assert list(kept) == [e["id"] for e in watcher.of("chat")][:1]
    await speaker.close()
    await watcher.close()
