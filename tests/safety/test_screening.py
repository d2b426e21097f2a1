"""The screening hook: banned terms in titles, display names and chat lines are flagged into
the review queue, off the chat's path, through a bounded queue that drops and counts."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry

from livecore.appkeys import SCREENING
from livecore.safety.screening import Flag, ScreeningQueue, Subject
from tests.chat.conftest import connect, user
from tests.conftest import Client, bearer, register
from tests.safety.conftest import admin, owner_and_stream


async def _queue(client: Client, token: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/admin/reports", headers=bearer(token))
    assert resp.status == 200
    reports: list[dict[str, Any]] = (await resp.json())["reports"]
    return reports


async def test_a_title_with_a_banned_term_is_flagged_when_the_stream_goes_live(
    node: Client, dsn: str
) -> None:
    owner, stream_id = await owner_and_stream(node)
    root = await admin(node, dsn)
    resp = await node.patch(
        "/api/v1/streams/room-one", json={"title": "Watch my B A D W O R D show"},
        headers=bearer(str(owner["token"])),
    )  # fmt: skip
    assert resp.status == 200, await resp.text()
    screening = node.app[SCREENING]
    # What the hub's going-live callback queues (app.py): the title and the owner's name.
    assert screening.offer_stream(stream_id)
    await screening.join()
    [flag] = await _queue(node, str(root["token"]))
    assert flag["source"] == "screening" and flag["reporter_id"] is None
    assert flag["target_kind"] == "stream" and flag["target_id"] == str(stream_id)
    assert flag["subject_id"] == owner["user"]["id"]
    assert flag["score"] == 1.0
    assert flag["note"] == "title contains the banned term 'badword'"
    # Going live again flags nothing new while that flag waits for a person.
    screening.offer_stream(stream_id)
    await screening.join()
    assert len(await _queue(node, str(root["token"]))) == 1


async def test_a_clean_title_and_name_are_not_flagged(node: Client, dsn: str) -> None:
    _, stream_id = await owner_and_stream(node)
    root = await admin(node, dsn)
    screening = node.app[SCREENING]
    screening.offer_stream(stream_id)
    await screening.join()
    assert await _queue(node, str(root["token"])) == []


async def test_a_display_name_with_a_banned_term_is_flagged(node: Client, dsn: str) -> None:
    owner = await register(node, "king@example.com", creator=True, display_name="King Badword")
    node.session.cookie_jar.clear()
    resp = await node.post(
        "/api/v1/streams", json={"slug": "kings-room"}, headers=bearer(str(owner["token"]))
    )
    stream_id = (await resp.json())["stream"]["id"]
    root = await admin(node, dsn)
    screening = node.app[SCREENING]
    screening.offer_stream(stream_id)
    await screening.join()
    [flag] = await _queue(node, str(root["token"]))
    assert flag["target_kind"] == "user" and flag["target_id"] == str(owner["user"]["id"])
    assert "display name" in flag["note"]


async def test_a_chat_line_with_a_banned_term_is_flagged_and_still_sent(
    node: Client, dsn: str
) -> None:
    _, stream_id = await owner_and_stream(node)
    alice = await user(node, "alice")
    root = await admin(node, dsn)
    talker = await connect(node, "room-one", str(alice["token"]))
    try:
        clean = await talker.say("nice stream", "n")
        ack = await talker.say("you badword", "b")
        # The platform's terms do not refuse a line (the room's own banned terms do that).
        assert clean["type"] == "ack" and ack["type"] == "ack"
    finally:
        await talker.close()
    await node.app[SCREENING].join()
    [flag] = await _queue(node, str(root["token"]))
    assert flag["target_kind"] == "line"
    assert flag["target_id"] == f"{stream_id}:{ack['id']}"
    assert flag["subject_id"] == alice["user"]["id"]
    assert flag["context"]["line"]["text"] == "you badword"
    # An admin acts on it like on any report; nobody is notified (no reporter).
    resp = await node.post(
        f"/api/v1/admin/reports/{flag['id']}/action", json={"action": "delete_line"},
        headers=bearer(str(root["token"])),
    )  # fmt: skip
    assert resp.status == 200
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 0
    finally:
        await conn.close()


class _HeldScreener:
    """Screens nothing until released: a classifier that has fallen behind."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.busy = asyncio.Event()
        self.seen: list[Subject] = []

    async def screen(self, subject: Subject) -> Flag | None:
        self.busy.set()
        await self.release.wait()
        self.seen.append(subject)
        return None


async def _nothing(subject: Subject, flag: Flag) -> None:
    raise AssertionError("nothing is flagged")


async def _no_stream(stream_id: int) -> list[Subject]:
    return []


async def test_a_full_screening_queue_drops_and_counts() -> None:
    registry = CollectorRegistry()
    screener = _HeldScreener()
    queue = ScreeningQueue(screener, _nothing, _no_stream, maxsize=2, registry=registry)
    worker = asyncio.create_task(queue.run())
    try:
        lines = [Subject("chat_line", 1, 1, f"line {i}", i + 1) for i in range(4)]
        # The worker takes the first and waits on the screener; two more fill the queue.
        assert queue.offer(lines[0])
        await screener.busy.wait()
        assert queue.offer(lines[1]) and queue.offer(lines[2])
        assert not queue.offer(lines[3])  # full: dropped at once, never waited for
        assert queue.dropped == 1
        dropped = registry.get_sample_value("livecore_safety_screening_dropped_total")
        assert dropped == 1.0
        screener.release.set()
        await queue.join()
        assert [s.line_id for s in screener.seen] == [1, 2, 3]
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
