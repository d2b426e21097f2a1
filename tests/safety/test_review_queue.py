"""The admins' review queue: context, filters, actions, audit, and reporters' notifications."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.chat.conftest import connect, user
from tests.conftest import PASSWORD, Client, bearer
from tests.safety.conftest import admin, owner_and_stream


async def _report(client: Client, token: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/reports", json=body, headers=bearer(token))
    assert resp.status == 201, await resp.text()
    report: dict[str, Any] = (await resp.json())["report"]
    return report


async def _queue(client: Client, token: str, query: str = "", status: int = 200) -> Any:
    resp = await client.get(f"/api/v1/admin/reports{query}", headers=bearer(token))
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _act(client: Client, token: str, report_id: int, **body: Any) -> Any:
    resp = await client.post(
        f"/api/v1/admin/reports/{report_id}/action", json=body, headers=bearer(token)
    )
    return resp.status, await resp.json()


async def _notifications(client: Client, token: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/me/notifications", headers=bearer(token))
    assert resp.status == 200
    found: list[dict[str, Any]] = (await resp.json())["notifications"]
    return found


async def _audit(dsn: str, action: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action)
    finally:
        await conn.close()


async def test_only_admins_read_the_queue(node: Client, dsn: str) -> None:
    await owner_and_stream(node)
    alice = await user(node, "alice")
    resp = await node.get("/api/v1/admin/reports")
    assert resp.status == 401
    body = await _queue(node, str(alice["token"]), status=403)
    assert body["error"]["code"] == "forbidden"
    root = await admin(node, dsn)
    body = await _queue(node, str(root["token"]))
    assert body["reports"] == []
    assert body["actions"] == [
        "dismiss", "delete_line", "timeout", "ban", "take_down_recording", "end_broadcast",
        "suspend_account",
    ]  # fmt: skip


async def test_line_report_shows_neighbours_and_delete_closes_every_report(
    node: Client, dsn: str
) -> None:
    owner, stream_id = await owner_and_stream(node)
    alice, bob, carol = [await user(node, n) for n in ("alice", "bob", "carol")]
    root = await admin(node, dsn)
    talker = await connect(node, "room-one", str(alice["token"]))
    watcher = await connect(node, "room-one")
    try:
        acks = [await talker.say(text, text) for text in ("one", "two", "nasty", "four")]
        line = acks[2]["id"]
        target = {"target_kind": "line", "stream": "room-one", "line_id": line}
        first = await _report(node, str(bob["token"]), category="harassment_or_hate", **target)
        second = await _report(node, str(carol["token"]), category="spam", **target)
        # An older report about the same author, already in the queue.
        about_alice = {"target_kind": "user", "user_id": alice["user"]["id"]}
        older = await _report(node, str(carol["token"]), category="spam", **about_alice)
        # The same line reported through the chat moderation API.
        resp = await node.post(
            f"/api/v1/streams/room-one/chat/messages/{line}/reports", json={"reason": "rude"},
            headers=bearer(str(owner["token"])),
        )  # fmt: skip
        assert resp.status == 201
        chat_report = (await resp.json())["id"]

        queue = (await _queue(node, str(root["token"]), "?target_kind=line"))["reports"]
        assert [r["id"] for r in queue] == [first["id"], second["id"]]
        context = queue[0]["context"]
        assert context["line"]["text"] == "nasty"
        assert context["line"]["user_id"] == alice["user"]["id"]
        assert [n["text"] for n in context["neighbours"]] == ["one", "two", "four"]
        assert context["stream"]["slug"] == "room-one"
        prior = {p["id"] for p in context["prior_reports"]}
        assert {second["id"], older["id"]} <= prior

        status, body = await _act(
            node, str(root["token"]), first["id"], action="delete_line", reason="abuse"
        )
        assert status == 200
        assert sorted(body["closed"]) == sorted([first["id"], second["id"]])
        gone = await watcher.wait_for(lambda e: e["type"] == "chat_deleted")
        assert gone["message_id"] == line
    finally:
        await talker.close()
        await watcher.close()
    # Both reports on the line are closed; the one about alice herself stays open.
    left = (await _queue(node, str(root["token"])))["reports"]
    assert [r["id"] for r in left] == [older["id"]]
    closed = (await _queue(node, str(root["token"]), "?state=actioned"))["reports"]
    assert {r["outcome"] for r in closed} == {"delete_line"}
    # Each reporter is told the outcome.
    for reporter, report in ((bob, first), (carol, second)):
        told = await _notifications(node, str(reporter["token"]))
        assert [(n["report_id"], n["outcome"], n["read"]) for n in told] == [
            (report["id"], "delete_line", False)
        ]
    # The chat API's report on the line is resolved with them, and its reporter told.
    staff = bearer(str(owner["token"]))
    resp = await node.get("/api/v1/streams/room-one/chat/reports", headers=staff)
    assert (await resp.json())["reports"] == []
    resp = await node.get("/api/v1/streams/room-one/chat/reports?state=resolved", headers=staff)
    assert [r["id"] for r in (await resp.json())["reports"]] == [chat_report]
    [owner_note] = await _notifications(node, str(owner["token"]))
    assert (owner_note["report_id"], owner_note["source"], owner_note["outcome"]) == (
        chat_report,
        "chat",
        "delete_line",
    )
    # Audited: the queue's action and the chat's deletion.
    [entry] = await _audit(dsn, "report.delete_line")
    assert entry["actor_id"] == root["user"]["id"]
    assert entry["target_id"] == f"{stream_id}:{line}"
    assert len(await _audit(dsn, "chat.delete")) == 1
    # Marking read.
    token = str(bob["token"])
    [note] = await _notifications(node, token)
    resp = await node.post(f"/api/v1/me/notifications/{note['id']}/read", headers=bearer(token))
    assert resp.status == 204
    assert (await _notifications(node, token))[0]["read"] is True
    unread = await node.get("/api/v1/me/notifications?unread=1", headers=bearer(token))
    assert (await unread.json())["notifications"] == []
    # Someone else's notification is not theirs to mark.
    resp = await node.post(
        f"/api/v1/me/notifications/{note['id']}/read", headers=bearer(str(carol["token"]))
    )
    assert resp.status == 404


async def test_ban_and_timeout_in_the_room(node: Client, dsn: str) -> None:
    owner, stream_id = await owner_and_stream(node)
    alice, bob = [await user(node, n) for n in ("alice", "bob")]
    root = await admin(node, dsn)
    talker = await connect(node, "room-one", str(alice["token"]))
    try:
        ack = await talker.say("spam spam", "s")
        line = await _report(
            node, str(bob["token"]), target_kind="line", stream="room-one", line_id=ack["id"],
            category="spam",
        )  # fmt: skip
        status, body = await _act(node, str(root["token"]), line["id"], action="timeout")
        assert status == 422 and "seconds" in body["error"]["fields"]
        status, body = await _act(
            node, str(root["token"]), line["id"], action="timeout", seconds=600
        )
        assert status == 200 and body["closed"] == [line["id"]]
        await talker.wait_for(lambda e: e["type"] == "user_timed_out")
        assert (await talker.say("more", "m"))["code"] == "timed_out"

        person = await _report(
            node, str(bob["token"]), target_kind="user", user_id=alice["user"]["id"],
            category="harassment_or_hate",
        )  # fmt: skip
        # A user is not in a room: the admin names the stream.
        status, body = await _act(node, str(root["token"]), person["id"], action="ban")
        assert status == 422
        status, body = await _act(
            node, str(root["token"]), person["id"], action="ban", stream="room-one"
        )
        assert status == 200 and body["closed"] == [person["id"]]
        await talker.wait_for(lambda e: e["type"] == "user_banned")
        assert (await talker.say("let me in", "b"))["code"] == "banned"
    finally:
        await talker.close()
    assert len(await _audit(dsn, "report.timeout")) == 1
    assert len(await _audit(dsn, "report.ban")) == 1
    [ban] = await _audit(dsn, "chat.ban")
    assert ban["target_id"] == str(alice["user"]["id"])
    outcomes = [n["outcome"] for n in await _notifications(node, str(bob["token"]))]
    assert outcomes == ["ban", "timeout"]
    # The owner of a room is never banned in it from the queue.
    on_stream = await _report(
        node, str(bob["token"]), target_kind="stream", stream="room-one", category="other"
    )
    status, body = await _act(node, str(root["token"]), on_stream["id"], action="ban")
    assert status == 422
    del owner, stream_id


async def test_take_down_recording(node: Client, dsn: str) -> None:
    _, stream_id = await owner_and_stream(node)
    alice, bob = [await user(node, n) for n in ("alice", "bob")]
    root = await admin(node, dsn)
    conn = await asyncpg.connect(dsn)
    try:
        recording = await conn.fetchval(
            "INSERT INTO broadcasts (stream_id, ended_at, recording_path, recording_bytes)"
            " VALUES ($1, now(), 'recordings/1/x', 1000) RETURNING id",
            stream_id,
        )
    finally:
        await conn.close()
    listed = await (await node.get("/api/v1/streams/room-one/recordings")).json()
    assert [r["id"] for r in listed["recordings"]] == [recording]
    reports = [
        await _report(node, str(who["token"]), target_kind="recording", recording_id=recording,
                      category="copyright")
        for who in (alice, bob)
    ]  # fmt: skip
    status, body = await _act(
        node, str(root["token"]), reports[1]["id"], action="take_down_recording"
    )
    assert status == 200 and sorted(body["closed"]) == sorted(r["id"] for r in reports)
    listed = await (await node.get("/api/v1/streams/room-one/recordings")).json()
    assert listed["recordings"] == []
    assert len(await _audit(dsn, "recording.delete")) == 1
    assert len(await _audit(dsn, "report.take_down_recording")) == 1
    for who in (alice, bob):
        [note] = await _notifications(node, str(who["token"]))
        assert note["outcome"] == "take_down_recording"


async def test_dismiss_and_forged_actions(node: Client, dsn: str) -> None:
    owner, _ = await owner_and_stream(node)
    alice, bob = [await user(node, n) for n in ("alice", "bob")]
    root = await admin(node, dsn)
    report = await _report(
        node, str(alice["token"]), target_kind="stream", stream="room-one", category="other"
    )
    # Not an admin, not logged in.
    status, body = await _act(node, str(bob["token"]), report["id"], action="dismiss")
    assert status == 403
    resp = await node.post(
        f"/api/v1/admin/reports/{report['id']}/action", json={"action": "dismiss"}
    )
    assert resp.status == 401
    # An admin's browser session, sent by another site's page (no CSRF token).
    login = {"email": "root@example.com", "password": PASSWORD}
    assert (await node.post("/api/v1/auth/login", json=login)).status == 200
    resp = await node.post(
        f"/api/v1/admin/reports/{report['id']}/action", json={"action": "dismiss"}
    )
    assert resp.status == 403
    assert "X-CSRF-Token" in (await resp.json())["error"]["message"]
    node.session.cookie_jar.clear()
    token = str(root["token"])
    # Actions that do not exist, do not fit, or are not available yet.
    status, body = await _act(node, token, report["id"], action="nuke")
    assert status == 422 and "action" in body["error"]["fields"]
    status, body = await _act(node, token, report["id"], action="delete_line")
    assert status == 422
    status, body = await _act(node, token, report["id"], action="end_broadcast")
    assert status == 422 and body["error"]["message"] == "the stream is not live"
    status, body = await _act(node, token, 999_999, action="dismiss")
    assert status == 404
    # Nothing above changed the report.
    assert [r["id"] for r in (await _queue(node, token))["reports"]] == [report["id"]]
    status, body = await _act(node, token, report["id"], action="dismiss", reason="fine")
    assert status == 200 and body["closed"] == [report["id"]]
    # A closed report is not acted on twice.
    status, body = await _act(node, token, report["id"], action="dismiss")
    assert status == 422
    dismissed = (await _queue(node, token, "?state=dismissed"))["reports"]
    assert [(r["id"], r["outcome"]) for r in dismissed] == [(report["id"], "dismiss")]
    [note] = await _notifications(node, str(alice["token"]))
    assert note["outcome"] == "dismiss"
    [entry] = await _audit(dsn, "report.dismiss")
    assert entry["actor_id"] == root["user"]["id"]
    assert (entry["target_type"], entry["target_id"]) == ("stream", report["target_id"])
    # The stream's own audit shows what the queue did to it.
    resp = await node.get("/api/v1/streams/room-one/audit", headers=bearer(str(owner["token"])))
    assert "report.dismiss" in [e["action"] for e in (await resp.json())["entries"]]
    # Notifications and the stream's queue need a login too.
    assert (await node.get("/api/v1/me/notifications")).status == 401
    assert (await node.get("/api/v1/streams/room-one/reports")).status == 401


async def test_filters(node: Client, dsn: str) -> None:
    owner, _ = await owner_and_stream(node)
    alice = await user(node, "alice")
    root = await admin(node, dsn)
    token = str(alice["token"])
    spam = await _report(node, token, target_kind="stream", stream="room-one", category="spam")
    hate = await _report(
        node, token, target_kind="user", user_id=owner["user"]["id"], category="harassment_or_hate"
    )
    admin_token = str(root["token"])

    async def ids(query: str) -> list[int]:
        return [r["id"] for r in (await _queue(node, admin_token, query))["reports"]]

    assert await ids("") == [spam["id"], hate["id"]]
    assert await ids("?category=spam") == [spam["id"]]
    assert await ids("?target_kind=user") == [hate["id"]]
    assert await ids("?category=spam&target_kind=user") == []
    assert await ids("?state=dismissed") == []
    assert await ids("?state=all") == [spam["id"], hate["id"]]
    # Age: filed at least an hour ago (none), and within the last hour (both).
    assert await ids("?min_age_s=3600") == []
    assert await ids("?max_age_s=3600") == [spam["id"], hate["id"]]
    for bad in ("?state=gone", "?category=rude", "?target_kind=planet", "?min_age_s=soon"):
        body = await _queue(node, admin_token, bad, status=422)
        assert body["error"]["code"] == "invalid"


async def test_suspend_account(node: Client, dsn: str) -> None:
    await owner_and_stream(node)
    alice, bob = [await user(node, n) for n in ("alice", "bob")]
    root = await admin(node, dsn)
    talker = await connect(node, "room-one", str(alice["token"]))
    try:
        ack = await talker.say("buy my followers now", "s")
    finally:
        await talker.close()
    line = await _report(
        node, str(bob["token"]), target_kind="line", stream="room-one", line_id=ack["id"],
        category="spam",
    )  # fmt: skip
    token = str(root["token"])
    status, body = await _act(node, token, line["id"], action="suspend_account", reason="\x07")
    assert status == 422
    # The admin is never suspended from the queue by a report about themselves.
    own = await _report(node, str(bob["token"]), target_kind="user",
                        user_id=root["user"]["id"], category="other")  # fmt: skip
    status, body = await _act(node, token, own["id"], action="suspend_account")
    assert status == 422 and body["error"]["message"] == "an admin cannot suspend themselves"
    status, body = await _act(
        node, token, line["id"], action="suspend_account", reason="Spam ring", seconds=3600
    )
    assert status == 200 and body["closed"] == [line["id"]]
    # The line's author is suspended: her requests are refused, and she reads why.
    resp = await node.get("/api/v1/me", headers=bearer(str(alice["token"])))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "account_suspended"
    login = {"email": "alice@example.com", "password": PASSWORD}
    resp = await node.post("/api/v1/auth/login", json=login)
    refused = await resp.json()
    assert resp.status == 403 and refused["error"]["code"] == "account_suspended"
    assert "Spam ring" in refused["error"]["message"]
    [suspended] = await _audit(dsn, "user.suspend")
    assert suspended["target_id"] == str(alice["user"]["id"])
    assert len(await _audit(dsn, "report.suspend_account")) == 1
    [note] = await _notifications(node, str(bob["token"]))
    assert note["outcome"] == "suspend_account"
