"""Suspending accounts: every action of a suspended user is refused with the reason, their
sessions and chat sockets end on every node, their live broadcast ends; lifting the
suspension or reaching its end restores the account; money owed stays in the ledger."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from livecore.appkeys import PUBLISHERS
from livecore.config import ChatConfig, Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.admin.accounts import admin, audit_actions, login, suspend
from tests.chat.conftest import FAST_CHAT, Viewer, connect, user
from tests.conftest import PASSWORD, Client, MakeClient, bearer, create_stream, wait_state
from tests.streams.test_end_now import go_live, server_closed, whip_refusal
from tests.support.services import RedisProcess


async def _tip(client: Client, token: str, slug: str, key: str) -> aiohttp.ClientResponse:
    return await client.post(
        f"/api/v1/streams/{slug}/tips", json={"amount_minor": 500, "currency": "usd"},
        headers=bearer(token) | {"Idempotency-Key": key},
    )  # fmt: skip


async def _socket_closed(viewer: Viewer) -> tuple[int | None, str]:
    """Wait until the server closed the chat socket: its close code and reason."""
    async with asyncio.timeout(30):
        await asyncio.gather(viewer._task, return_exceptions=True)
    return viewer.ws.close_code, str(viewer.ws.exception() or "")


def _refused_for_suspension(status: int, body: dict[str, Any], reason: str) -> None:
    assert status == 403, body
    assert body["error"]["code"] == "account_suspended"
    assert body["error"]["fields"]["reason"] == reason
    assert reason in body["error"]["message"]


async def test_a_suspended_creator_can_do_nothing_and_the_money_owed_stays_in_the_ledger(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    client = await make_client(tips=replace(config.tips, payout_hold_days=0), chat=FAST_CHAT)
    cara = await user(client, "cara", creator=True)
    key = await create_stream(client, cara["token"], "cara-live")
    dan = await user(client, "dan", creator=True)
    await create_stream(client, dan["token"], "dan-live")
    fan = await user(client, "fan")
    root = await admin(client, db)
    resp = await client.post(
        "/api/v1/me/tiers", json={"name": "Gold", "price_minor": 500, "currency": "usd"},
        headers=bearer(dan["token"]),
    )  # fmt: skip
    tier_id = (await resp.json())["tier"]["id"]
    for n in range(2):
        assert (await _tip(client, fan["token"], "cara-live", f"fan-{n}")).status == 201
    owed_before = (await Ledger(db).balances("creator", cara["user"]["id"]))["usd"]
    # Cara reads the chat with her session, and keeps a browser session (cookie) too.
    chat = await connect(client, "cara-live", cara["token"])
    assert (await chat.say("hello", "n1"))["type"] == "ack"
    status, _ = await login(client, "cara")
    assert status == 200
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "cara@example.com", "password": PASSWORD}
    )
    assert resp.status == 200

    status, body = await suspend(client, root["token"], cara["user"]["id"], "Fraud inquiry")
    assert status == 201, body
    assert body["suspension"]["reason"] == "Fraud inquiry"
    assert body["suspension"]["until"] is None

    # The open chat socket is closed, and a new one is refused with the reason.
    code, _ = await _socket_closed(chat)
    assert code == 1008
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/cara-live", headers=bearer(cara["token"]))
    assert refused.value.status == 403
    # The browser's page reads why (the cookie is kept for that), and nothing more.
    resp = await client.get("/api/v1/me")
    _refused_for_suspension(resp.status, await resp.json(), "Fraud inquiry")
    assert "livecore_session" in {c.key for c in client.session.cookie_jar}
    client.session.cookie_jar.clear()
    # Every request with her session token says why.
    headers = bearer(cara["token"])
    resp = await client.get("/api/v1/me", headers=headers)
    _refused_for_suspension(resp.status, await resp.json(), "Fraud inquiry")
    resp = await _tip(client, cara["token"], "dan-live", "cara-1")
    _refused_for_suspension(resp.status, await resp.json(), "Fraud inquiry")
    resp = await client.post(f"/api/v1/tiers/{tier_id}/subscribe", headers=headers)
    _refused_for_suspension(resp.status, await resp.json(), "Fraud inquiry")
    resp = await client.post("/api/v1/me/payouts", json={"currency": "usd"}, headers=headers)
    _refused_for_suspension(resp.status, await resp.json(), "Fraud inquiry")
    # Logging in again is refused with the reason and its end (none: until lifted).
    status, body = await login(client, "cara")
    _refused_for_suspension(status, body, "Fraud inquiry")
    assert body["error"]["fields"]["until"] == ""
    assert "until further notice" in body["error"]["message"]
    # Her stream key no longer goes live.
    status, body = await whip_refusal(client, "cara-live", key)
    assert status == 403 and "Fraud inquiry" in body["error"]["message"]
    # The money owed is held, not lost: the ledger still owes it and balances.
    assert (await Ledger(db).balances("creator", cara["user"]["id"]))["usd"] == owed_before
    assert (await Ledger(db).check()).ok

    # Lifted: she logs in again and may take her money.
    resp = await client.delete(
        f"/api/v1/admin/users/{cara['user']['id']}/suspension", headers=bearer(root["token"])
    )
    assert resp.status == 204
    status, body = await login(client, "cara")
    assert status == 200, body
    resp = await client.post(
        "/api/v1/me/payouts", json={"currency": "usd"}, headers=bearer(body["token"])
    )
    assert resp.status == 201, await resp.text()
    assert (await Ledger(db).check()).ok
    assert (await audit_actions(db, cara["user"]["id"]))[-2:] == ["user.suspend", "user.unsuspend"]
    row = await db.pool.fetchrow(
        "SELECT actor_id, details FROM audit_log WHERE action = 'user.suspend'"
    )
    assert row is not None and row["actor_id"] == root["user"]["id"]
    assert '"reason": "Fraud inquiry"' in row["details"]


async def test_a_suspension_on_one_node_ends_the_session_socket_and_broadcast_on_another(
    make_client: MakeClient, redis_url: str, db: Database, config: Config
) -> None:
    # Sessions are cached for the longest allowed: without the event, node B would honour
    # Cara's session for seconds after her suspension.
    auth = replace(config.auth, session_cache_s=5.0)
    chat = ChatConfig(tick_ms=20, presence_interval_s=0.3)
    node_a = await make_client(redis_url=redis_url, chat=chat, auth=auth)
    node_b = await make_client(redis_url=redis_url, chat=chat, auth=auth)
    cara = await user(node_a, "cara", creator=True)
    root = await admin(node_a, db)
    key = await create_stream(node_a, cara["token"], "cara-live")
    pub = await go_live(node_b, "cara-live", key)  # ingested on node B
    viewer_a = await connect(node_a, "cara-live")
    cara_chat_b = await connect(node_b, "cara-live", cara["token"])
    try:
        resp = await node_b.get("/api/v1/me", headers=bearer(cara["token"]))
        assert resp.status == 200  # and now cached on node B
        status, body = await suspend(node_a, root["token"], cara["user"]["id"], "Rules broken")
        assert status == 201
        assert body["ended_streams"] == ["cara-live"]
        # Node B heard it: her socket there is closed and her cached session dropped.
        code, _ = await _socket_closed(cara_chat_b)
        assert code == 1008
        resp = await node_b.get("/api/v1/me", headers=bearer(cara["token"]))
        _refused_for_suspension(resp.status, await resp.json(), "Rules broken")
        # Her broadcast, ingested on node B, ended; viewers on node A read why.
        said = await viewer_a.wait_for(lambda e: e["type"] == "stream_state" and "reason" in e)
        assert (said["ended_by"], said["reason"]) == ("platform", "Rules broken")
        await server_closed(pub.pc)
        assert node_b.app is not None and node_b.app[PUBLISHERS].for_stream(1) is None
        await wait_state(node_a, "cara-live", "offline")
        status, body = await whip_refusal(node_b, "cara-live", key)
        assert status == 403 and "Rules broken" in body["error"]["message"]
        # The end is in the stream's audit, as other ends are, with the admin who acted.
        resp = await node_a.get("/api/v1/streams/cara-live/audit", headers=bearer(root["token"]))
        entry = next(e for e in (await resp.json())["entries"] if e["action"] == "stream.end")
        assert entry["actor"]["id"] == root["user"]["id"]
        assert (entry["details"]["ended_by"], entry["details"]["reason"]) == (
            "platform", "Rules broken",
        )  # fmt: skip
    finally:
        await viewer_a.close()
        await cara_chat_b.close()
        await pub.close()


async def test_a_timed_suspension_ends_by_itself(client: Client, db: Database) -> None:
    ann = await user(client, "ann")
    root = await admin(client, db)
    until = datetime.now(UTC) + timedelta(seconds=2)
    status, body = await suspend(client, root["token"], ann["user"]["id"], "Cool down", until)
    assert status == 201
    ends = body["suspension"]["until"]
    assert datetime.fromisoformat(ends) <= until
    status, body = await login(client, "ann")
    _refused_for_suspension(status, body, "Cool down")
    assert body["error"]["fields"]["until"] == ends
    assert f"until {ends}" in body["error"]["message"]
    # Bounded wait for the database's clock to pass the end; nothing lifts it meanwhile.
    async with asyncio.timeout(30):
        while True:
            status, _ = await login(client, "ann")
            if status == 200:
                break
            await asyncio.sleep(0.2)
    assert "user.unsuspend" not in await audit_actions(db, ann["user"]["id"])
    # A new suspension replaces the expired one.
    status, _ = await suspend(client, root["token"], ann["user"]["id"], "Again")
    assert status == 201
    assert (await login(client, "ann"))[0] == 403


async def test_suspension_refusals(client: Client, db: Database) -> None:
    ann = await user(client, "ann")
    bob = await user(client, "bob")
    root = await admin(client, db)
    url = f"/api/v1/admin/users/{ann['user']['id']}/suspension"
    # Not an admin; not logged in.
    resp = await client.post(url, json={"reason": "x"}, headers=bearer(bob["token"]))
    assert resp.status == 403
    assert (await client.post(url, json={"reason": "x"})).status == 401
    # Bad input.
    headers = bearer(root["token"])
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for payload in (
        {},
        {"reason": " "},
        {"reason": "x", "until": past},
        {"reason": "x", "until": "2030-01-01T00:00:00"},
        {"reason": "x", "until": "tomorrow"},
        {"reason": "x", "until": "2999-01-01T00:00:00+00:00"},
    ):
        resp = await client.post(url, json=payload, headers=headers)
        assert resp.status == 422, payload
    # Unknown user; oneself; lifting what is not there.
    assert (await suspend(client, root["token"], 999999, "x"))[0] == 404
    status, _ = await suspend(client, root["token"], root["user"]["id"], "x")
    assert status == 409
    assert (await client.delete(url, headers=headers)).status == 404
    assert await audit_actions(db, ann["user"]["id"]) == ["user.register"]


async def test_with_redis_out_the_suspension_stands_and_says_which_ends_may_not_have_arrived(
    make_client: MakeClient, tmp_path: Path, db: Database
) -> None:
    redis = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(redis.start)
    try:
        chat = ChatConfig(tick_ms=20, presence_interval_s=0.3)
        node_a = await make_client(redis_url=redis.url, chat=chat)
        node_b = await make_client(redis_url=redis.url, chat=chat)
        cara = await user(node_a, "cara", creator=True)
        root = await admin(node_a, db)
        key = await create_stream(node_a, cara["token"], "cara-live")
        pub = await go_live(node_b, "cara-live", key)
        try:
            assert (await node_b.get("/api/v1/me", headers=bearer(cara["token"]))).status == 200
            await asyncio.to_thread(redis.stop)
            status, body = await suspend(node_a, root["token"], cara["user"]["id"], "Outage test")
            assert status == 201, body
            assert (body["ended_streams"], body["unreached_streams"]) == ([], ["cara-live"])
            status, body = await login(node_a, "cara")
            _refused_for_suspension(status, body, "Outage test")
            # Node B did not hear it, but stops honouring her session once its cache lapses
            # (auth.session_cache_s): the store never honours a suspended account's session.
            async with asyncio.timeout(30):
                while True:
                    resp = await node_b.get("/api/v1/me", headers=bearer(cara["token"]))
                    if resp.status != 200:
                        break
                    await asyncio.sleep(0.2)
            _refused_for_suspension(resp.status, await resp.json(), "Outage test")
        finally:
            await pub.close()
    finally:
        await asyncio.to_thread(redis.stop)
