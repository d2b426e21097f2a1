"""DELETE /api/v1/me: proven by the password (and a code with 2FA on); the account's
personal data goes, its chat lines stay as "deleted user", its money records stay and the
ledger balances, its subscriptions are canceled, its sessions, chat sockets and live
broadcast end on every node; refused while money is owed to it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from livecore.appkeys import PUBLISHERS
from livecore.config import ChatConfig, Config
from livecore.events.redis_scripts import PREFIX
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.admin.accounts import admin, audit_actions, login
from tests.admin.test_suspensions import _socket_closed
from tests.auth.test_two_factor import code, turn_on, wrong
from tests.chat.conftest import FAST_CHAT, connect, user
from tests.conftest import PASSWORD, Client, MakeClient, bearer, create_stream, register
from tests.rights.people import creator_with_fan, tip
from tests.streams.test_end_now import go_live, server_closed, whip_refusal
from tests.support.stripe_peer import StripePeer
from tests.tips.test_stripe_tips import deliver_all, stripe_config


async def _offline(db: Database, slug: str) -> None:
    """Wait until the broadcast log recorded the stream offline."""
    async with asyncio.timeout(20):
        while True:
            state = await db.pool.fetchval("SELECT state FROM streams WHERE slug = $1", slug)
            if state == "offline":
                return
            await asyncio.sleep(0.05)


async def redis_history(url: str, room: int) -> list[dict[str, Any]]:
    """The chat events a room's history in Redis holds, oldest first."""
    client = aioredis.from_url(url)
    try:
        items = await client.lrange(f"{PREFIX}{room}:history", 0, -1)
    finally:
        await client.aclose()
    return [e for e in map(json.loads, reversed(items)) if e["type"] == "chat"]


async def delete_me(client: Client, token: str, **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.delete("/api/v1/me", json=body, headers=bearer(token))
    return resp.status, await resp.json()


async def test_deleting_an_account_keeps_its_lines_and_money_records_and_nothing_personal(
    make_client: MakeClient, db: Database
) -> None:
    client = await make_client(chat=FAST_CHAT)
    ann, bob = await creator_with_fan(client, db)
    bob_id = bob["user"]["id"]
    secret, _ = await turn_on(client, bob["token"])
    ann_owed = await Ledger(db).balances("creator", ann["user"]["id"])

    # The password is needed, the right one, and with 2FA on a current code too.
    status, body = await delete_me(client, bob["token"])
    assert status == 422 and "password" in body["error"]["fields"]
    status, body = await delete_me(client, bob["token"], password="not my password")
    assert status == 422 and body["error"]["fields"] == {"password": "is wrong"}
    status, body = await delete_me(client, bob["token"], password=PASSWORD)
    assert status == 422
    assert body["error"]["fields"] == {"code": "is required: two-factor authentication is on"}
    status, body = await delete_me(client, bob["token"], password=PASSWORD, code=wrong(secret))
    assert status == 422 and body["error"]["fields"] == {"code": "is wrong or expired"}
    resp = await client.get("/api/v1/me", headers=bearer(bob["token"]))
    assert resp.status == 200  # none of the refusals changed anything

    status, body = await delete_me(
        client, bob["token"], password=PASSWORD, code=code(secret, steps=1)
    )
    assert status == 200, body
    assert len(body["canceled_subscriptions"]) == 1 and body["ended_streams"] == []

    # His session is over and no password logs in again.
    resp = await client.get("/api/v1/me", headers=bearer(bob["token"]))
    assert resp.status == 401
    status, _ = await login(client, "bob")
    assert status == 401
    row = await db.pool.fetchrow(
        "SELECT email, display_name, password_hash, deleted_at FROM users WHERE id = $1", bob_id
    )
    assert row is not None and row["deleted_at"] is not None
    assert (row["email"], row["display_name"]) == (f"deleted-{bob_id}@deleted.invalid",
                                                   "deleted user")  # fmt: skip
    assert "argon2" not in row["password_hash"]
    assert (
        await db.pool.fetchval(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL", bob_id
        )
        == 0
    )
    for table in ("two_factor", "two_factor_recovery"):
        assert (
            await db.pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", bob_id) == 0
        )
    # His chat lines stay, under "deleted user": a node that reads the room's history from
    # the store shows them so.
    bodies = await db.pool.fetch("SELECT body FROM chat_messages WHERE user_id = $1", bob_id)
    assert sorted(json.loads(r["body"])["text"] for r in bodies) == ["bob again", "bob says hi"]
    assert {json.loads(r["body"])["user"]["name"] for r in bodies} == {"deleted user"}
    fresh = await make_client(chat=FAST_CHAT)
    viewer = await connect(fresh, "ann-live")
    await viewer.close()
    lines = {e["text"]: e["user"]["name"] for e in viewer.hello["history"] if e["type"] == "chat"}
    assert lines == {"bob says hi": "deleted user", "bob again": "deleted user",
                     "ann answers": "ann"}  # fmt: skip
    # A node that remembers the room's recent events (in memory here) shows the name too,
    # on his lines and on his tips.
    viewer = await connect(client, "ann-live")
    await viewer.close()
    his = [e for e in viewer.hello["history"] if e.get("user", {}).get("id") == bob_id]
    assert sorted(e["type"] for e in his) == ["chat", "chat", "tip", "tip"]
    assert {e["user"]["name"] for e in his} == {"deleted user"}
    # His tips and the ledger's entries stay; the ledger balances; Ann is owed as before.
    assert await db.pool.fetchval("SELECT count(*) FROM tips WHERE viewer_id = $1", bob_id) == 2
    assert await Ledger(db).balances("creator", ann["user"]["id"]) == ann_owed
    assert (await Ledger(db).check()).ok
    # His subscription ends with the period he paid for (the test lane: nothing is charged).
    sub = await db.pool.fetchrow(
        "SELECT status, cancel_at_period_end FROM subscriptions WHERE viewer_id = $1", bob_id
    )
    assert sub is not None and (sub["status"], sub["cancel_at_period_end"]) == ("active", True)
    assert (await audit_actions(db, bob_id))[-1] == "user.delete"
    assert "user.delete_refused" in await audit_actions(db, bob_id)
    # The e-mail and the name are free for anyone again.
    again = await register(client, "bob@example.com", display_name="bob")
    assert again["user"]["id"] != bob_id


async def test_deleting_on_one_node_ends_the_session_socket_and_broadcast_on_another(
    make_client: MakeClient, redis_url: str, db: Database, config: Config
) -> None:
    # Sessions are cached for the longest allowed: without the event node B would honour
    # Cara's session for seconds after her deletion.
    auth = replace(config.auth, session_cache_s=5.0)
    chat = ChatConfig(tick_ms=20, presence_interval_s=0.3)
    node_a = await make_client(redis_url=redis_url, chat=chat, auth=auth)
    node_b = await make_client(redis_url=redis_url, chat=chat, auth=auth)
    cara = await user(node_a, "cara", creator=True)
    fan = await user(node_a, "fan")
    key = await create_stream(node_a, cara["token"], "cara-live")
    pub = await go_live(node_b, "cara-live", key)  # ingested on node B
    viewer_a = await connect(node_a, "cara-live")
    cara_chat_b = await connect(node_b, "cara-live", cara["token"])
    try:
        assert (await cara_chat_b.say("cara was here", "n1"))["type"] == "ack"
        resp = await node_b.get("/api/v1/me", headers=bearer(cara["token"]))
        assert resp.status == 200  # and now cached on node B
        status, body = await delete_me(node_a, cara["token"], password=PASSWORD)
        assert status == 200, body
        assert body["ended_streams"] == ["cara-live"] and body["unreached_streams"] == []
        # Node B heard it: her socket there is closed and her cached session dropped.
        close_code, _ = await _socket_closed(cara_chat_b)
        assert close_code == 1008
        resp = await node_b.get("/api/v1/me", headers=bearer(cara["token"]))
        assert resp.status == 401
        # Her broadcast, ingested on node B, ended; viewers on node A read why.
        said = await viewer_a.wait_for(lambda e: e["type"] == "stream_state" and "reason" in e)
        assert (said["ended_by"], said["reason"]) == ("owner", "the account was deleted")
        await server_closed(pub.pc)
        assert node_b.app is not None and node_b.app[PUBLISHERS].for_stream(1) is None
        await _offline(db, "cara-live")
        # Her stream is found no more: no publishing, no tips, no page.
        status, _ = await whip_refusal(node_b, "cara-live", key)
        assert status == 404
        resp = await node_a.post(
            "/api/v1/streams/cara-live/tips", json={"amount_minor": 500, "currency": "usd"},
            headers=bearer(fan["token"]) | {"Idempotency-Key": "late"},
        )  # fmt: skip
        assert resp.status == 404
        assert (await node_a.get("/api/v1/streams/cara-live")).status == 404
        resp = await node_a.get("/api/v1/streams", params={"search": "cara"})
        assert (await resp.json())["streams"] == []
        assert (await audit_actions(db, cara["user"]["id"]))[-1] == "user.delete"
        # The room's recent history, kept in Redis for every node, shows her line renamed.
        (body,) = await redis_history(redis_url, 1)
        assert (body["text"], body["user"]["name"]) == ("cara was here", "deleted user")
    finally:
        await viewer_a.close()
        await cara_chat_b.close()
        await pub.close()


async def test_a_creator_owed_money_is_refused_until_paid_out(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    client = await make_client(tips=replace(config.tips, payout_hold_days=0))
    dan = await user(client, "dan", creator=True)
    await create_stream(client, dan["token"], "dan-live")
    fan = await user(client, "fan")
    await tip(client, fan["token"], "dan-live", "fan-1")
    owed = -(await Ledger(db).balances("creator", dan["user"]["id"]))["usd"]
    assert owed > 0

    status, body = await delete_me(client, dan["token"], password=PASSWORD)
    assert status == 409, body
    assert body["error"]["fields"] == {"usd": str(owed)}
    assert "payout" in body["error"]["message"]
    # A payout on its way is still owed.
    resp = await client.post(
        "/api/v1/me/payouts", json={"currency": "usd"}, headers=bearer(dan["token"])
    )
    assert resp.status == 201, await resp.text()
    status, body = await delete_me(client, dan["token"], password=PASSWORD)
    assert status == 409 and body["error"]["fields"] == {"usd": str(owed)}
    # Nothing was changed: he is still there, and the ledger balances.
    resp = await client.get("/api/v1/me", headers=bearer(dan["token"]))
    assert resp.status == 200
    assert (await Ledger(db).check()).ok
    # A tip still being paid (a card payment waiting for the processor) counts too: its
    # creator's share would be owed once it settles.
    eli = await user(client, "eli", creator=True)
    await create_stream(client, eli["token"], "eli-live")
    await db.pool.execute(
        "INSERT INTO tips (stream_id, viewer_id, creator_id, amount_minor, currency, provider,"
        " idempotency_key, platform_fee_minor) SELECT id, $1, owner_id, 1000, 'usd', 'stripe',"
        " 'pending-1', 200 FROM streams WHERE slug = 'eli-live'",
        fan["user"]["id"],
    )
    status, body = await delete_me(client, eli["token"], password=PASSWORD)
    assert status == 409 and body["error"]["fields"] == {"usd": "800"}, body


@pytest.mark.parametrize("given", [{}, {"password": ""}, {"password": 5}])
async def test_a_deletion_needs_a_password_and_a_session(client: Client, given: Any) -> None:
    ann = await user(client, "ann")
    status, body = await delete_me(client, ann["token"], **given)
    assert status == 422 and "password" in body["error"]["fields"], body
    resp = await client.delete("/api/v1/me", json={"password": PASSWORD})
    assert resp.status == 401


async def test_a_deleted_accounts_stripe_subscription_is_canceled_at_stripe(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    cara = await user(client, "cara", creator=True)
    resp = await client.post(
        "/api/v1/me/tiers", json={"name": "Gold", "price_minor": 500, "currency": "usd"},
        headers=bearer(cara["token"]),
    )  # fmt: skip
    tier_id = (await resp.json())["tier"]["id"]
    fan = await user(client, "fan")
    resp = await client.post(
        f"/api/v1/tiers/{tier_id}/subscribe",
        headers=bearer(fan["token"]) | {"Idempotency-Key": "sub-1"},
    )
    assert resp.status == 201, await resp.text()
    await deliver_all(client, stripe_peer.complete_checkout((await resp.json())["session_id"]))
    (sub_ref,) = stripe_peer.subscriptions
    assert stripe_peer.subscriptions[sub_ref]["cancel_at_period_end"] is False

    status, body = await delete_me(client, fan["token"], password=PASSWORD)
    assert status == 200, body
    # Stripe was told: it charges the deleted account no more after the paid period.
    assert stripe_peer.subscriptions[sub_ref]["cancel_at_period_end"] is True
    row = await db.pool.fetchrow(
        "SELECT id, cancel_at_period_end FROM subscriptions WHERE provider_ref = $1", sub_ref
    )
    assert row is not None and row["cancel_at_period_end"] is True
    assert body["canceled_subscriptions"] == [row["id"]]
    assert (await Ledger(db).check()).ok


async def test_the_last_admin_cannot_delete_the_account(client: Client, db: Database) -> None:
    root = await admin(client, db)
    status, body = await delete_me(client, root["token"], password=PASSWORD)
    assert status == 409, body
    assert "last admin" in body["error"]["message"]
    # With another admin, it can.
    other = await admin(client, db, "deputy")
    status, body = await delete_me(client, root["token"], password=PASSWORD)
    assert status == 200, body
    role = await db.pool.fetchval("SELECT role FROM users WHERE id = $1", root["user"]["id"])
    assert role == "viewer"
    resp = await client.get("/api/v1/admin/users", headers=bearer(other["token"]))
    assert resp.status == 200


async def test_the_last_two_admins_deleting_themselves_at_once_leave_one(
    client: Client, db: Database
) -> None:
    for round_ in range(3):
        one = await admin(client, db, f"one{round_}")
        two = await admin(client, db, f"two{round_}")
        answers = await asyncio.gather(
            delete_me(client, one["token"], password=PASSWORD),
            delete_me(client, two["token"], password=PASSWORD),
        )
        assert sorted(status for status, _ in answers) == [200, 409], answers
        assert await db.pool.fetchval("SELECT count(*) FROM users WHERE role = 'admin'") == 1
        await db.pool.execute("UPDATE users SET role = 'viewer' WHERE role = 'admin'")


@pytest.mark.parametrize("name", ["deleted user", "Deleted User", " DELETED  USER "])
async def test_nobody_signs_up_as_deleted_user(client: Client, name: str) -> None:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "eve@example.com", "password": PASSWORD, "display_name": name},
    )
    assert resp.status == 422
    assert "reserved" in (await resp.json())["error"]["fields"]["display_name"]
