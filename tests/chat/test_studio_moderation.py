"""The reads the studio's moderation page needs: moderators by name or e-mail, the bans and
timeouts in force (and lifting them), the reports queue with names, and the stream's audit."""

from __future__ import annotations

from typing import Any

import asyncpg

from livecore.appkeys import CHAT
from tests.chat.conftest import connect, stream, user
from tests.conftest import Client, bearer


async def _json(client: Client, path: str, token: str, status: int = 200) -> Any:
    resp = await client.get(path, headers=bearer(token))
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_moderators_are_added_by_name_or_email(node_a: Client) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    alice = await user(node_a, "alice")
    bob = await user(node_a, "bob")
    url = "/api/v1/streams/room-one/moderators"
    staff = bearer(owner["token"])
    # By display name as people read it (case and width do not matter), or by e-mail.
    resp = await node_a.post(url, json={"user": " ALICE "}, headers=staff)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user"] == {"id": alice["user"]["id"], "display_name": "alice"}
    email = bob["user"]["email"]
    resp = await node_a.post(url, json={"user": email.upper()}, headers=staff)
    assert (await resp.json())["user"]["id"] == bob["user"]["id"]
    listed = await _json(node_a, url, owner["token"])
    assert listed["users"] == [
        {"id": alice["user"]["id"], "display_name": "alice"},
        {"id": bob["user"]["id"], "display_name": "bob"},
    ]
    assert listed["moderators"] == [alice["user"]["id"], bob["user"]["id"]]

    resp = await node_a.post(url, json={"user": "nobody-at-all"}, headers=staff)
    assert resp.status == 404
    resp = await node_a.post(url, json={"user": "owner"}, headers=staff)
    assert resp.status == 422
    # A moderator may not appoint moderators.
    resp = await node_a.post(url, json={"user": "owner"}, headers=bearer(alice["token"]))
    assert resp.status == 403


async def test_bans_and_timeouts_are_listed_and_lifted(node_a: Client) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    alice = await user(node_a, "alice")
    bob = await user(node_a, "bob")
    staff = bearer(owner["token"])
    base = "/api/v1/streams/room-one/chat"
    await node_a.post(f"{base}/bans", json={"user_id": alice["user"]["id"], "reason": "spam"},
                      headers=staff)  # fmt: skip
    await node_a.post(f"{base}/timeouts", json={"user_id": bob["user"]["id"], "seconds": 600},
                      headers=staff)  # fmt: skip
    bans = (await _json(node_a, f"{base}/bans", owner["token"]))["bans"]
    assert [(b["display_name"], b["reason"], b["by"]) for b in bans] == [
        ("bob", "", "owner"),
        ("alice", "spam", "owner"),
    ]
    assert bans[0]["until"] is not None and bans[1]["until"] is None
    await _json(node_a, f"{base}/bans", alice["token"], status=403)

    resp = await node_a.delete(f"{base}/bans/{alice['user']['id']}", headers=staff)
    assert resp.status == 204
    bans = (await _json(node_a, f"{base}/bans", owner["token"]))["bans"]
    assert [b["display_name"] for b in bans] == ["bob"]


async def test_reports_carry_names_and_the_audit_lists_the_streams_actions(
    node_a: Client, dsn: str
) -> None:
    owner = await user(node_a, "owner", creator=True)
    await stream(node_a, owner["token"])
    await stream(node_a, owner["token"], "room-two")
    alice = await user(node_a, "alice")
    bob = await user(node_a, "bob")
    talker = await connect(node_a, "room-one", alice["token"])
    try:
        ack = await talker.say("something rude", "rude")
    finally:
        await talker.close()
    await node_a.app[CHAT].service.drain()
    url = f"/api/v1/streams/room-one/chat/messages/{ack['id']}/reports"
    await node_a.post(url, json={"reason": "rude"}, headers=bearer(bob["token"]))
    reports = (await _json(node_a, "/api/v1/streams/room-one/chat/reports", owner["token"]))[
        "reports"
    ]
    assert [(r["author_name"], r["reporter_name"], r["text"]) for r in reports] == [
        ("alice", "bob", "something rude")
    ]
    staff = bearer(owner["token"])
    base = "/api/v1/streams/room-one/chat"
    await node_a.post(f"{base}/timeouts", json={"user_id": alice["user"]["id"], "seconds": 60},
                      headers=staff)  # fmt: skip
    await node_a.post(f"{base}/reports/{reports[0]['id']}", json={"action": "dismiss"},
                      headers=staff)  # fmt: skip
    # Another stream's actions stay out of this one's audit.
    await node_a.post("/api/v1/streams/room-two/chat/bans", json={"user_id": bob["user"]["id"]},
                      headers=staff)  # fmt: skip

    audit = await _json(node_a, "/api/v1/streams/room-one/audit", owner["token"])
    actions = [e["action"] for e in audit["entries"]]
    assert actions == ["chat.report_dismissed", "chat.timeout", "stream.create"]
    timeout = audit["entries"][1]
    assert timeout["actor"]["display_name"] == "owner"
    assert timeout["target_type"] == "user" and timeout["target_id"] == str(alice["user"]["id"])
    assert timeout["details"]["seconds"] == 60 and timeout["user_name"] == "alice"
    older = await _json(
        node_a, f"/api/v1/streams/room-one/audit?before={audit['entries'][0]['id']}",
        owner["token"],
    )  # fmt: skip
    assert [e["action"] for e in older["entries"]] == ["chat.timeout", "stream.create"]
    # Owner and admins only: not a moderator, not a viewer.
    await node_a.put(f"/api/v1/streams/room-one/moderators/{bob['user']['id']}", headers=staff)
    await _json(node_a, "/api/v1/streams/room-one/audit", bob["token"], status=403)
    await _json(node_a, "/api/v1/streams/room-one/audit?before=x", owner["token"], status=422)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", alice["user"]["id"])
    finally:
        await conn.close()
    login = {"email": "alice@example.com", "password": "correct horse battery"}
    resp = await node_a.post("/api/v1/auth/login", json=login)
    await _json(node_a, "/api/v1/streams/room-one/audit", (await resp.json())["token"])
