"""A creator's figures for the Money page: each broadcast's viewers and the tips paid while it
was on air (GET /api/v1/me/broadcasts), and subscriber counts (GET /api/v1/me/subscribers)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from livecore.store import Database
from livecore.store.broadcasts import Broadcasts
from tests.conftest import Client, bearer, register
from tests.tips.people import creator_and_fan


async def _tip(client: Client, fan: dict[str, Any], key: str, amount: int, **more: Any) -> int:
    resp = await client.post(
        "/api/v1/streams/tipjar/tips",
        json={"amount_minor": amount, "currency": "usd", **more},
        headers=bearer(fan["token"]) | {"Idempotency-Key": key},
    )
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["tip"]["id"])


async def _get(client: Client, path: str, who: dict[str, Any]) -> Any:
    resp = await client.get(path, headers=bearer(who["token"]))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _stream_id(db: Database, slug: str) -> int:
    return int(await db.pool.fetchval("SELECT id FROM streams WHERE slug = $1", slug))


async def test_each_broadcast_has_its_viewers_and_the_tips_paid_while_on_air(
    client: Client, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    stream_id = await _stream_id(db, "tipjar")
    broadcasts = Broadcasts(db)
    await _tip(client, fan, "offline", 300)  # before any broadcast: in none
    first = await broadcasts.start(stream_id)
    await broadcasts.record_audience(first.id, 4, 9)
    await _tip(client, fan, "a", 500)
    await _tip(client, fan, "b", 1000, currency="eur")
    await broadcasts.end(first.id)
    await _tip(client, fan, "between", 700)  # offline again: in none
    second = await broadcasts.start(stream_id)
    await broadcasts.record_audience(second.id, 2, 3)
    await broadcasts.record_audience(second.id, 1, 2)  # never lowers the figures
    await _tip(client, fan, "c", 200)
    # A failed tip was never paid: it counts nowhere.
    await db.pool.execute("UPDATE tips SET status = 'failed' WHERE idempotency_key = 'c'")
    await _tip(client, fan, "d", 100)

    body = await _get(client, "/api/v1/me/broadcasts", creator)
    assert [b["id"] for b in body["broadcasts"]] == [second.id, first.id]  # newest first
    latest, earlier = body["broadcasts"]
    assert latest["ended_at"] is None  # on air
    assert (latest["peak_viewers"], latest["unique_viewers"]) == (2, 3)
    assert latest["tips"] == {"usd": {"count": 1, "amount_minor": 100, "share_minor": 80}}
    assert latest["stream"] == {"slug": "tipjar", "title": ""}
    assert (earlier["peak_viewers"], earlier["unique_viewers"]) == (4, 9)
    assert earlier["ended_at"] is not None
    assert earlier["tips"] == {
        "eur": {"count": 1, "amount_minor": 1000, "share_minor": 800},
        "usd": {"count": 1, "amount_minor": 500, "share_minor": 400},
    }
    one = await _get(client, "/api/v1/me/broadcasts?limit=1", creator)
    assert [b["id"] for b in one["broadcasts"]] == [second.id]
    # Another creator's broadcasts and tips are not theirs to see.
    assert (await _get(client, "/api/v1/me/broadcasts", fan)) == {"broadcasts": []}


async def test_a_tip_belongs_to_the_broadcast_of_its_own_stream(
    client: Client, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    other = await client.post(
        "/api/v1/streams", json={"slug": "second-show"}, headers=bearer(creator["token"])
    )
    assert other.status == 201
    broadcasts = Broadcasts(db)
    on_other = await broadcasts.start(await _stream_id(db, "second-show"))
    await _tip(client, fan, "to-tipjar", 500)  # tipjar is offline while second-show is live
    body = await _get(client, "/api/v1/me/broadcasts", creator)
    assert [(b["id"], b["tips"]) for b in body["broadcasts"]] == [(on_other.id, {})]
    # A tip sent at the instant a broadcast ended belongs to it no more.
    await broadcasts.end(on_other.id)
    ended = await db.pool.fetchval("SELECT ended_at FROM broadcasts WHERE id = $1", on_other.id)
    started = ended - timedelta(minutes=5)
    await db.pool.execute("UPDATE broadcasts SET started_at = $2 WHERE id = $1", on_other.id,
                          started)  # fmt: skip
    await db.pool.execute(
        "UPDATE tips SET stream_id = $1, created_at = $2", await _stream_id(db, "second-show"),
        ended,
    )  # fmt: skip
    body = await _get(client, "/api/v1/me/broadcasts", creator)
    assert body["broadcasts"][0]["tips"] == {}
    await db.pool.execute("UPDATE tips SET created_at = $1", started)
    body = await _get(client, "/api/v1/me/broadcasts", creator)
    assert body["broadcasts"][0]["tips"]["usd"]["count"] == 1


async def test_bad_limits_are_refused_and_anonymous_callers_are_401(client: Client) -> None:
    creator = await register(client, "creator@example.com", creator=True, display_name="Cara")
    client.session.cookie_jar.clear()
    for bad in ("0", "101", "-1", "x", "1.5", "99999"):
        resp = await client.get(
            f"/api/v1/me/broadcasts?limit={bad}", headers=bearer(creator["token"])
        )
        assert resp.status == 422, bad
        assert "limit" in (await resp.json())["error"]["fields"]
    assert (await client.get("/api/v1/me/broadcasts")).status == 401
    assert (await client.get("/api/v1/me/subscribers")).status == 401


async def test_subscribers_are_counted_once_per_viewer_and_per_tier(
    client: Client, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    second_fan = await register(client, "second@example.com", display_name="Second")
    client.session.cookie_jar.clear()
    tiers = []
    for name, price in (("Gold", 500), ("Silver", 300)):
        resp = await client.post(
            "/api/v1/me/tiers", json={"name": name, "price_minor": price, "currency": "usd"},
            headers=bearer(creator["token"]),
        )  # fmt: skip
        assert resp.status == 201, await resp.text()
        tiers.append((await resp.json())["tier"]["id"])
    assert await _get(client, "/api/v1/me/subscribers", creator) == {
        "subscribers": 0,
        "tiers": [
            {"tier_id": tiers[0], "name": "Gold", "price_minor": 500, "currency": "usd",
             "active": True, "subscribers": 0},
            {"tier_id": tiers[1], "name": "Silver", "price_minor": 300, "currency": "usd",
             "active": True, "subscribers": 0},
        ],
    }  # fmt: skip
    for who, tier in ((fan, tiers[0]), (fan, tiers[1]), (second_fan, tiers[0])):
        resp = await client.post(f"/api/v1/tiers/{tier}/subscribe", headers=bearer(who["token"]))
        assert resp.status == 201, await resp.text()
    # A retired tier's subscriptions go on, and still count.
    resp = await client.delete(f"/api/v1/me/tiers/{tiers[1]}", headers=bearer(creator["token"]))
    assert resp.status == 200
    body = await _get(client, "/api/v1/me/subscribers", creator)
    assert body["subscribers"] == 2  # the fan has two tiers, and counts once
    counts = {t["name"]: (t["subscribers"], t["active"]) for t in body["tiers"]}
    assert counts == {"Gold": (2, True), "Silver": (1, False)}
    # A canceled subscription lets nobody in, and counts no more.
    await db.pool.execute(
        "UPDATE subscriptions SET status = 'canceled' WHERE viewer_id = $1",
        second_fan["user"]["id"],
    )
    body = await _get(client, "/api/v1/me/subscribers", creator)
    assert body["subscribers"] == 1
    assert {t["name"]: t["subscribers"] for t in body["tiers"]} == {"Gold": 1, "Silver": 1}
    assert (await _get(client, "/api/v1/me/subscribers", fan)) == {"subscribers": 0, "tiers": []}
