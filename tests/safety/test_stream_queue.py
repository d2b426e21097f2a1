"""The owner's stream-level queue, and a live stream's context in the admins' queue."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.chat.conftest import connect, user
from tests.conftest import Client, bearer
from tests.safety.conftest import admin, owner_and_stream


async def _report(client: Client, token: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/reports", json=body, headers=bearer(token))
    assert resp.status == 201, await resp.text()
    report: dict[str, Any] = (await resp.json())["report"]
    return report


async def test_owner_sees_reports_on_the_stream_its_lines_and_recordings(
    node: Client, dsn: str
) -> None:
    owner, stream_id = await owner_and_stream(node)
    alice, bob = [await user(node, n) for n in ("alice", "bob")]
    conn = await asyncpg.connect(dsn)
    try:
        recording = await conn.fetchval(
            "INSERT INTO broadcasts (stream_id, ended_at, recording_path, recording_bytes)"
            " VALUES ($1, now(), 'recordings/1/x', 1000) RETURNING id",
            stream_id,
        )
    finally:
        await conn.close()
    talker = await connect(node, "room-one", str(alice["token"]))
    try:
        ack = await talker.say("rude words", "r")
    finally:
        await talker.close()
    token = str(bob["token"])
    on_stream = await _report(node, token, target_kind="stream", stream="room-one",
                              category="violence")  # fmt: skip
    on_line = await _report(node, token, target_kind="line", stream="room-one",
                            line_id=ack["id"], category="spam")  # fmt: skip
    on_recording = await _report(node, token, target_kind="recording",
                                 recording_id=recording, category="copyright")  # fmt: skip
    # A report on a person is the platform's business, not the stream's.
    await _report(node, token, target_kind="user", user_id=alice["user"]["id"], category="spam")
    # The chat moderation API's report on the same line keeps working and shows here too.
    resp = await node.post(
        f"/api/v1/streams/room-one/chat/messages/{ack['id']}/reports",
        json={"reason": "rude"}, headers=bearer(str(owner["token"])),
    )  # fmt: skip
    assert resp.status == 201
    chat_report = (await resp.json())["id"]

    resp = await node.get("/api/v1/streams/room-one/reports", headers=bearer(str(owner["token"])))
    assert resp.status == 200
    reports = (await resp.json())["reports"]
    assert [(r["source"], r["id"]) for r in reports] == [
        ("user", on_stream["id"]), ("user", on_line["id"]), ("user", on_recording["id"]),
        ("chat", chat_report),
    ]  # fmt: skip
    assert reports[3]["target_id"] == f"{stream_id}:{ack['id']}"
    assert reports[3]["note"] == "rude"
    # The chat queue itself is unchanged.
    resp = await node.get(
        "/api/v1/streams/room-one/chat/reports", headers=bearer(str(owner["token"]))
    )
    assert [r["id"] for r in (await resp.json())["reports"]] == [chat_report]
    # Viewers may not read it; a moderator may.
    resp = await node.get("/api/v1/streams/room-one/reports", headers=bearer(token))
    assert resp.status == 403
    await node.put(
        f"/api/v1/streams/room-one/moderators/{bob['user']['id']}",
        headers=bearer(str(owner["token"])),
    )
    resp = await node.get("/api/v1/streams/room-one/reports", headers=bearer(token))
    assert resp.status == 200
    resp = await node.get("/api/v1/streams/no-such/reports", headers=bearer(token))
    assert resp.status == 404
    resp = await node.get("/api/v1/streams/room-one/reports?state=odd", headers=bearer(token))
    assert resp.status == 422


async def test_live_stream_context(node: Client, dsn: str) -> None:
    owner, stream_id = await owner_and_stream(node)
    alice = await user(node, "alice")
    root = await admin(node, dsn)
    conn = await asyncpg.connect(dsn)
    try:
        # As the broadcast log marks a stream whose publisher is on air.
        await conn.execute(
            "UPDATE streams SET state = 'live', title = 'Late show' WHERE id = $1", stream_id
        )
    finally:
        await conn.close()
    talker = await connect(node, "room-one", str(owner["token"]))
    watcher = await connect(node, "room-one")
    try:
        await talker.say("welcome all", "w")
        await _report(node, str(alice["token"]), target_kind="stream", stream="room-one",
                      category="violence")  # fmt: skip
        resp = await node.get("/api/v1/admin/reports", headers=bearer(str(root["token"])))
        [report] = (await resp.json())["reports"]
    finally:
        await talker.close()
        await watcher.close()
    context = report["context"]
    assert context["stream"] == {
        "id": stream_id, "slug": "room-one", "title": "Late show", "state": "live",
        "thumbnail_url": "/hls/room-one/thumb.jpg", "viewers": 2,
    }  # fmt: skip
    assert [line["text"] for line in context["recent_chat"]] == ["welcome all"]
    assert context["prior_reports"] == []
