"""Moderation through the API, taking effect on the room at once."""

from __future__ import annotations

import asyncpg

from livecore.appkeys import CHAT
from tests.chat.conftest import chat_config, connect, stream, user
from tests.conftest import Client, MakeClient, bearer


async def _setup(client: Client) -> tuple[dict[str, object], dict[str, object]]:
    owner = await user(client, "owner", creator=True)
    await stream(client, str(owner["token"]))
    alice = await user(client, "alice")
    return owner, alice


async def test_delete_message_reaches_viewers_and_history(node_a: Client) -> None:
    owner, alice = await _setup(node_a)
    talker = await connect(node_a, "room-one", str(alice["token"]))
    watcher = await connect(node_a, "room-one")
    try:
        ack = await talker.say("regrettable", "r")
        resp = await node_a.delete(
            f"/api/v1/streams/room-one/chat/messages/{ack['id']}",
            headers=bearer(str(owner["token"])),
        )
        assert resp.status == 204
        gone = await watcher.wait_for(lambda e: e["type"] == "chat_deleted")
        assert gone["message_id"] == ack["id"]
        late = await connect(node_a, "room-one")
        kinds = [e["type"] for e in late.hello["history"]]
        assert kinds == ["chat", "chat_deleted"]
        await late.close()
    finally:
        await talker.close()
        await watcher.close()


async def test_timeout_refuses_until_it_ends(node_a: Client) -> None:
    owner, alice = await _setup(node_a)
    talker = await connect(node_a, "room-one", str(alice["token"]))
    try:
        resp = await node_a.post(
            "/api/v1/streams/room-one/chat/timeouts",
            json={"user_id": alice["user"]["id"], "seconds": 600},  # type: ignore[index]
            headers=bearer(str(owner["token"])),
        )
        assert resp.status == 201
        await talker.wait_for(lambda e: e["type"] == "user_timed_out")
        refused = await talker.say("let me talk", "t")
        assert refused["code"] == "timed_out" and "more seconds" in refused["message"]
        assert 0 < refused["retry_after_s"] <= 600
    finally:
        await talker.close()


async def test_only_staff_moderate(node_a: Client) -> None:
    owner, alice = await _setup(node_a)
    bob = await user(node_a, "bob")
    headers = bearer(str(alice["token"]))
    ban = {"user_id": bob["user"]["id"]}
    assert (
        await node_a.post("/api/v1/streams/room-one/chat/bans", json=ban, headers=headers)
    ).status == 403
    # The owner makes alice a moderator; now she may.
    resp = await node_a.put(
        f"/api/v1/streams/room-one/moderators/{alice['user']['id']}",  # type: ignore[index]
        headers=bearer(str(owner["token"])),
    )
    assert resp.status == 204
    resp = await node_a.post("/api/v1/streams/room-one/chat/bans", json=ban, headers=headers)
    assert resp.status == 201
    # Nobody bans the owner.
    owner_ban = {"user_id": owner["user"]["id"]}  # type: ignore[index]
    resp = await node_a.post("/api/v1/streams/room-one/chat/bans", json=owner_ban, headers=headers)
    assert resp.status == 422


async def test_room_modes(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(redis_url=redis_url, chat=chat_config())
    owner, alice = await _setup(client)
    talker = await connect(client, "room-one", str(alice["token"]))
    staff = bearer(str(owner["token"]))
    try:
        resp = await client.patch(
            "/api/v1/streams/room-one/chat/settings",
            json={"slow_mode_s": 30, "links_allowed": False, "banned_terms": ["badword"],
                  "max_length": 40},
            headers=staff,
        )  # fmt: skip
        assert resp.status == 200
        mode = await talker.wait_for(lambda e: e["type"] == "room_mode")
        assert mode["slow_mode_s"] == 30 and "banned_terms" not in mode
        assert mode["banned_terms_count"] == 1

        assert (await talker.say("visit example.com now", "l"))["code"] == "link"
        evasion = "you are a " + _fullwidth("badword")
        assert (await talker.say(evasion, "b"))["code"] == "banned_term"
        assert (await talker.say("x" * 41, "long"))["code"] == "too_long"
        assert (await talker.say("   ", "empty"))["code"] == "empty"
        assert (await talker.say("first", "1"))["type"] == "ack"
        slow = await talker.say("second", "2")
        assert slow["code"] == "slow_mode"
        assert 29 <= slow["retry_after_s"] <= 30  # for a countdown, not read from the words
        assert "retry_after_s" not in await talker.say("x" * 41, "long-again")

        resp = await client.patch(
            "/api/v1/streams/room-one/chat/settings", json={"slow_mode_s": 0}, headers=staff
        )
        await talker.wait_for(lambda e: e["type"] == "room_mode" and e["slow_mode_s"] == 0)
        assert (await talker.say("third", "3"))["type"] == "ack"
        assert (await talker.say("third", "3b"))["code"] == "duplicate"

        resp = await client.patch(
            "/api/v1/streams/room-one/chat/settings", json={"subscribers_only": True},
            headers=staff,
        )  # fmt: skip
        await talker.wait_for(lambda e: e["type"] == "room_mode" and e["subscribers_only"])
        assert (await talker.say("fourth", "4"))["code"] == "subscribers_only"
        bad = await client.patch(
            "/api/v1/streams/room-one/chat/settings", json={"slow_mode_s": -1}, headers=staff
        )
        assert bad.status == 422
    finally:
        await talker.close()


async def test_rate_limit(make_client: MakeClient, redis_url: str) -> None:
    client = await make_client(redis_url=redis_url, chat=chat_config(rate_burst=3, rate_per_s=0.1))
    _, alice = await _setup(client)
    talker = await connect(client, "room-one", str(alice["token"]))
    try:
        codes = [(await talker.say(f"m{i}", f"r{i}")).get("code", "ok") for i in range(5)]
        assert codes == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
    finally:
        await talker.close()


async def test_reports_queue(node_a: Client, dsn: str) -> None:
    owner, alice = await _setup(node_a)
    bob = await user(node_a, "bob")
    talker = await connect(node_a, "room-one", str(alice["token"]))
    try:
        ack = await talker.say("something rude", "rude")
    finally:
        await talker.close()
    await node_a.app[CHAT].service.drain()
    url = f"/api/v1/streams/room-one/chat/messages/{ack['id']}/reports"
    resp = await node_a.post(url, json={"reason": "rude"}, headers=bearer(str(bob["token"])))
    assert resp.status == 201
    again = await node_a.post(url, json={"reason": "rude"}, headers=bearer(str(bob["token"])))
    assert again.status == 409
    missing = await node_a.post(
        "/api/v1/streams/room-one/chat/messages/999999/reports", json={},
        headers=bearer(str(bob["token"])),
    )  # fmt: skip
    assert missing.status == 404
    staff = bearer(str(owner["token"]))
    assert (
        await node_a.get("/api/v1/streams/room-one/chat/reports", headers=bearer(str(bob["token"])))
    ).status == 403
    reports = (
        await (await node_a.get("/api/v1/streams/room-one/chat/reports", headers=staff)).json()
    )["reports"]
    assert [(r["text"], r["reason"]) for r in reports] == [("something rude", "rude")]
    resp = await node_a.post(
        f"/api/v1/streams/room-one/chat/reports/{reports[0]['id']}", json={"action": "resolve"},
        headers=staff,
    )  # fmt: skip
    assert resp.status == 204
    open_now = await (
        await node_a.get("/api/v1/streams/room-one/chat/reports", headers=staff)
    ).json()
    assert open_now["reports"] == []
    conn = await asyncpg.connect(dsn)
    try:
        actions = [
            r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")
        ]
    finally:
        await conn.close()
    assert "chat.report_resolved" in actions


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)
