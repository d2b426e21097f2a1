"""Tips with the built-in test provider: exactly once, balanced, and announced in the room."""

from __future__ import annotations

import asyncio
from typing import Any

from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.chat.conftest import connect
from tests.conftest import Client, bearer
from tests.tips.people import creator_and_fan

HEADERS = {"Idempotency-Key": "tip-1"}


async def _tip(client: Client, token: str, key: str, **body: Any) -> Any:
    payload = {"amount_minor": 500, "currency": "usd", **body}
    headers = bearer(token) | {"Idempotency-Key": key}
    return await client.post("/api/v1/streams/tipjar/tips", json=payload, headers=headers)


async def _owed(client: Client, creator: dict[str, Any]) -> dict[str, int]:
    resp = await client.get("/api/v1/me/earnings", headers=bearer(creator["token"]))
    body: dict[str, dict[str, int]] = await resp.json()
    return body["owed_minor"]


async def _ledger_ok(dsn: str) -> bool:
    db = await Database.connect(dsn, max_size=1)
    try:
        return (await Ledger(db).check()).ok
    finally:
        await db.close()


async def test_tip_is_posted_with_the_platform_share_and_reaches_the_room(
    client: Client, dsn: str
) -> None:
    creator, fan = await creator_and_fan(client)
    viewer = await connect(client, "tipjar")
    try:
        resp = await _tip(client, fan["token"], "k1", message="great show")
        assert resp.status == 201
        body = await resp.json()
        assert body["test_mode"] is True
        assert body["tip"]["status"] == "succeeded"
        event = await viewer.wait_for(lambda e: e["type"] == "tip")
        assert (event["amount_minor"], event["currency"], event["message"]) == (
            500, "usd", "great show",
        )  # fmt: skip
        assert event["user"] == {"id": fan["user"]["id"], "name": "Fan"}
    finally:
        await viewer.close()
    assert await _owed(client, creator) == {"usd": 400}  # 20% platform share
    assert await _ledger_ok(dsn)


async def test_retry_with_the_same_key_never_charges_again(client: Client) -> None:
    creator, fan = await creator_and_fan(client)
    first = await (await _tip(client, fan["token"], "same")).json()
    again = await _tip(client, fan["token"], "same")
    assert again.status == 200
    assert (await again.json())["tip"]["id"] == first["tip"]["id"]
    assert await _owed(client, creator) == {"usd": 400}


async def test_racing_requests_with_one_key_make_one_tip(client: Client, dsn: str) -> None:
    creator, fan = await creator_and_fan(client)
    answers = await asyncio.gather(*(_tip(client, fan["token"], "race") for _ in range(8)))
    ids = {(await a.json())["tip"]["id"] for a in answers}
    assert len(ids) == 1
    assert sorted(a.status for a in answers).count(201) == 1
    assert await _owed(client, creator) == {"usd": 400}
    assert await _ledger_ok(dsn)


async def test_key_reused_for_another_tip_is_409(client: Client) -> None:
    _, fan = await creator_and_fan(client)
    await _tip(client, fan["token"], "k")
    resp = await _tip(client, fan["token"], "k", amount_minor=900)
    assert resp.status == 409


async def test_concurrent_tips_to_one_creator_lose_nothing(client: Client, dsn: str) -> None:
    creator, fan = await creator_and_fan(client)
    answers = await asyncio.gather(
        *(_tip(client, fan["token"], f"c{i}", amount_minor=100 + i) for i in range(10))
    )
    assert {a.status for a in answers} == {201}
    expected = sum((100 + i) - (100 + i) * 2000 // 10_000 for i in range(10))
    assert await _owed(client, creator) == {"usd": expected}
    assert await _ledger_ok(dsn)


async def test_bad_tips_are_refused_and_change_nothing(client: Client) -> None:
    creator, fan = await creator_and_fan(client)
    token = fan["token"]
    no_key = await client.post(
        "/api/v1/streams/tipjar/tips", json={"amount_minor": 500, "currency": "usd"},
        headers=bearer(token),
    )  # fmt: skip
    assert no_key.status == 400
    assert (await _tip(client, token, "a", amount_minor=1)).status == 422
    assert (await _tip(client, token, "b", amount_minor=10**9)).status == 422
    assert (await _tip(client, token, "c", currency="xyz")).status == 422
    assert (await _tip(client, creator["token"], "d")).status == 422  # own stream
    anonymous = await client.post(
        "/api/v1/streams/tipjar/tips", json={"amount_minor": 500, "currency": "usd"},
        headers={"Idempotency-Key": "e"},
    )  # fmt: skip
    assert anonymous.status == 401
    missing = await client.post(
        "/api/v1/streams/nobody/tips", json={"amount_minor": 500, "currency": "usd"},
        headers=bearer(token) | {"Idempotency-Key": "f"},
    )  # fmt: skip
    assert missing.status == 404
    assert await _owed(client, creator) == {}


async def test_tip_message_is_screened_by_the_room_rules(client: Client) -> None:
    creator, fan = await creator_and_fan(client)
    await client.patch(
        "/api/v1/streams/tipjar/chat/settings", json={"banned_terms": ["badword"]},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    viewer = await connect(client, "tipjar")
    try:
        assert (await _tip(client, fan["token"], "m", message="you b4dw0rd")).status == 201
        event = await viewer.wait_for(lambda e: e["type"] == "tip")
        assert event["message"] == ""
    finally:
        await viewer.close()


async def test_tip_options_say_what_this_viewer_may_tip(client: Client, dsn: str) -> None:
    creator, fan = await creator_and_fan(client)
    anonymous = await client.get("/api/v1/streams/tipjar/tips/options")
    assert anonymous.status == 200
    body = await anonymous.json()
    assert body == {
        "currencies": ["usd", "eur", "gbp"], "min_minor": 100, "max_minor": 50_000,
        "new_account_until": None, "refusal": None, "test_mode": True, "publishable_key": None,
        "notice": "Test mode: no money moves.",
    }  # fmt: skip
    # A new account's smaller limit, and until when it holds.
    young = await (
        await client.get("/api/v1/streams/tipjar/tips/options", headers=bearer(fan["token"]))
    ).json()
    assert young["max_minor"] == 2_000 and young["new_account_until"] is not None
    assert young["refusal"] is None
    # An older account may tip up to the limit.
    db = await Database.connect(dsn, max_size=1)
    try:
        await db.pool.execute(
            "UPDATE users SET created_at = now() - interval '2 days' WHERE id = $1",
            fan["user"]["id"],
        )
    finally:
        await db.close()
    # A new session reads the account afresh (sessions cache it).
    login = await client.post(
        "/api/v1/auth/login", json={"email": "fan@example.com", "password": "correct horse battery"}
    )
    client.session.cookie_jar.clear()
    token = (await login.json())["token"]
    older = await (
        await client.get("/api/v1/streams/tipjar/tips/options", headers=bearer(token))
    ).json()
    assert (older["max_minor"], older["new_account_until"]) == (50_000, None)
    own = await (
        await client.get("/api/v1/streams/tipjar/tips/options", headers=bearer(creator["token"]))
    ).json()
    assert own["refusal"] == "you cannot tip your own stream"
    missing = await client.get("/api/v1/streams/nobody/tips/options")
    assert missing.status == 404
