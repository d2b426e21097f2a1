"""Subscriptions: tiers, the built-in test lane end to end, the processor's objects applied in
any order, and what an active subscription lets its viewer do (watch, chat)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.appkeys import CONFIG, DB, SUBSCRIBER_ACCESS, SUBSCRIPTIONS
from livecore.config import Config
from livecore.store import Database
from livecore.store.creator_settings import CreatorSettings
from livecore.store.ledger import Ledger
from livecore.store.subscriptions import Subscriptions
from livecore.tips.providers import ProviderUnavailable
from livecore.tips.stripe.objects import ProcessorSubscription, parse_invoice, parse_subscription
from livecore.tips.subscriptions import Renewals, SubscriptionService
from tests.chat.conftest import FAST_CHAT, connect
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.fakes import CapturingMailSender

DAY_S = 24 * 3600
Account = dict[str, Any]


async def _people(client: Client) -> tuple[Account, Account, Account]:
    """A creator, a fan and another viewer."""
    creator = await register(client, "cara@example.com", creator=True, display_name="Cara")
    fan = await register(client, "fan@example.com", display_name="Fan")
    other = await register(client, "otto@example.com", display_name="Otto")
    client.session.cookie_jar.clear()  # each request below says who it is
    return creator, fan, other


async def _tier(client: Client, creator: Account, **body: Any) -> dict[str, Any]:
    payload = {"name": "Gold", "price_minor": 500, "currency": "usd", **body}
    resp = await client.post("/api/v1/me/tiers", json=payload, headers=bearer(creator["token"]))
    assert resp.status == 201, await resp.text()
    tier: dict[str, Any] = (await resp.json())["tier"]
    return tier


async def _subscribe(client: Client, fan: Account, tier_id: int, **headers: str) -> Any:
    return await client.post(
        f"/api/v1/tiers/{tier_id}/subscribe", headers=bearer(fan["token"]) | headers
    )


async def _owed(client: Client, creator: Account) -> dict[str, int]:
    resp = await client.get("/api/v1/me/earnings", headers=bearer(creator["token"]))
    owed: dict[str, int] = (await resp.json())["owed_minor"]
    return owed


async def _my_subscriptions(client: Client, who: Account) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/me/subscriptions", headers=bearer(who["token"]))
    assert resp.status == 200
    subs: list[dict[str, Any]] = (await resp.json())["subscriptions"]
    return subs


async def _subscriber(
    client: Client, **tier_body: Any
) -> tuple[Account, Account, dict[str, str], SubscriptionService]:
    """A creator with a tier, a fan, the metadata livecore puts on the fan's Stripe
    subscription to it, and the service its webhooks reach."""
    creator, fan, _ = await _people(client)
    tier = await _tier(client, creator, **tier_body)
    return creator, fan, _meta(fan, tier, creator), _service(client)


def _service(client: Client) -> SubscriptionService:
    service: SubscriptionService = client.app[SUBSCRIPTIONS]
    return service


async def _set(db: Database, client: Client, sub_id: int, assignments: str) -> None:
    """Move a subscription's clock (periods, grace) as time passing would."""
    await db.pool.execute(f"UPDATE subscriptions SET {assignments} WHERE id = $1", sub_id)
    _service(client).forget()


# -- the test lane ------------------------------------------------------------------------------


async def test_test_lane_subscription_is_active_at_once_and_posts_the_first_period(
    client: Client, db: Database
) -> None:
    creator, fan, _ = await _people(client)
    resp = await client.post(
        "/api/v1/me/tiers", json={"name": "Gold", "price_minor": 500, "currency": "usd"},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert resp.status == 201
    body = await resp.json()
    assert body["test_mode"] is True
    tier = body["tier"]
    assert (tier["name"], tier["price_minor"], tier["currency"], tier["active"]) == (
        "Gold", 500, "usd", True,
    )  # fmt: skip
    listed = await (await client.get(f"/api/v1/users/{creator['user']['id']}/tiers")).json()
    assert [t["id"] for t in listed["tiers"]] == [tier["id"]]

    resp = await _subscribe(client, fan, tier["id"])
    assert resp.status == 201
    body = await resp.json()
    assert body["test_mode"] is True and "notice" in body
    sub = body["subscription"]
    assert (sub["status"], sub["access"], sub["cancel_at_period_end"]) == ("active", True, False)
    assert sub["tier"] == {"id": tier["id"], "name": "Gold", "price_minor": 500, "currency": "usd"}

    assert await _owed(client, creator) == {"usd": 400}  # 20% platform share
    invoice = await db.pool.fetchrow("SELECT * FROM subscription_invoices")
    assert invoice is not None
    assert (invoice["id"], invoice["amount_minor"], invoice["platform_fee_minor"]) == (
        f"test_in_{sub['id']}_1", 500, 100,
    )  # fmt: skip
    posted = await db.pool.fetchrow("SELECT kind, external_ref FROM ledger_transactions")
    assert posted is not None
    assert (posted["kind"], posted["external_ref"]) == ("subscription", f"invoice:{invoice['id']}")
    assert (await Ledger(db).check()).ok
    assert [s["id"] for s in await _my_subscriptions(client, fan)] == [sub["id"]]


async def test_a_creators_own_fee_overrides_the_platform_default(
    client: Client, db: Database
) -> None:
    creator, fan, other = await _people(client)
    tier = await _tier(client, creator, price_minor=1000)
    await CreatorSettings(db).put(creator["user"]["id"], 500, None)  # 5%
    assert (await _subscribe(client, fan, tier["id"])).status == 201
    assert await _owed(client, creator) == {"usd": 950}

    await CreatorSettings(db).put(creator["user"]["id"], 0, None)  # no platform share
    assert (await _subscribe(client, other, tier["id"])).status == 201
    assert await _owed(client, creator) == {"usd": 1950}
    entries = await db.pool.fetch(
        "SELECT e.amount_minor FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id ORDER BY t.id, e.id"
    )
    # The second posting has no platform entry: a zero share is not an entry.
    assert [e["amount_minor"] for e in entries] == [1000, -950, -50, 1000, -1000]
    assert (await Ledger(db).check()).ok


async def test_bad_tiers_and_subscriptions_are_refused(client: Client) -> None:
    creator, fan, other = await _people(client)
    tier = await _tier(client, creator)
    viewer_tier = await client.post(
        "/api/v1/me/tiers", json={"name": "X", "price_minor": 500, "currency": "usd"},
        headers=bearer(fan["token"]),
    )  # fmt: skip
    assert viewer_tier.status == 403
    for bad in ({"name": "", "price_minor": 500, "currency": "usd"},
                {"name": "Silver", "price_minor": 0, "currency": "usd"},
                {"name": "Silver", "price_minor": 500, "currency": "xyz"},
                {"name": "Silver", "price_minor": "5", "currency": "usd"}):  # fmt: skip
        resp = await client.post("/api/v1/me/tiers", json=bad, headers=bearer(creator["token"]))
        assert resp.status == 422, bad
    again = await client.post(
        "/api/v1/me/tiers", json={"name": "Gold", "price_minor": 900, "currency": "usd"},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert again.status == 409

    assert (await client.post(f"/api/v1/tiers/{tier['id']}/subscribe")).status == 401
    assert (await _subscribe(client, creator, tier["id"])).status == 422  # own tier
    assert (await _subscribe(client, fan, 999_999)).status == 404
    assert (await _subscribe(client, fan, tier["id"])).status == 201
    assert (await _subscribe(client, fan, tier["id"])).status == 409  # already subscribed
    assert await _owed(client, creator) == {"usd": 400}

    # A retired tier takes no one new; its subscribers keep theirs.
    resp = await client.delete(f"/api/v1/me/tiers/{tier['id']}", headers=bearer(creator["token"]))
    assert resp.status == 200 and (await resp.json())["tier"]["active"] is False
    not_theirs = await client.delete(f"/api/v1/me/tiers/{tier['id']}", headers=bearer(fan["token"]))
    assert not_theirs.status == 404
    assert (await _subscribe(client, other, tier["id"])).status == 409
    listed = await (await client.get(f"/api/v1/users/{creator['user']['id']}/tiers")).json()
    assert listed["tiers"] == []
    assert [s["access"] for s in await _my_subscriptions(client, fan)] == [True]


async def test_cancel_keeps_access_to_the_period_end_and_resume_undoes_it(
    client: Client,
) -> None:
    creator, fan, other = await _people(client)
    tier = await _tier(client, creator)
    sub = (await (await _subscribe(client, fan, tier["id"])).json())["subscription"]
    path = f"/api/v1/me/subscriptions/{sub['id']}"

    assert (await client.post(f"{path}/cancel", headers=bearer(other["token"]))).status == 404
    resp = await client.post(f"{path}/cancel", headers=bearer(fan["token"]))
    assert resp.status == 200
    canceled = (await resp.json())["subscription"]
    assert (canceled["status"], canceled["cancel_at_period_end"], canceled["access"]) == (
        "active", True, True,
    )  # fmt: skip
    resp = await client.post(f"{path}/resume", headers=bearer(fan["token"]))
    assert (await resp.json())["subscription"]["cancel_at_period_end"] is False
    assert (await client.post(f"{path}/resume", headers=bearer(other["token"]))).status == 404


async def test_renew_due_renews_and_ends_test_lane_subscriptions(
    client: Client, db: Database
) -> None:
    creator, fan, other = await _people(client)
    tier = await _tier(client, creator)
    renewing = (await (await _subscribe(client, fan, tier["id"])).json())["subscription"]
    ending = (await (await _subscribe(client, other, tier["id"])).json())["subscription"]
    await client.post(f"/api/v1/me/subscriptions/{ending['id']}/cancel",
                      headers=bearer(other["token"]))  # fmt: skip
    service = _service(client)
    assert await service.renew_due() == Renewals(0, 0)  # nothing due yet
    for sub in (renewing, ending):
        await _set(db, client, sub["id"], "current_period_end = now() - interval '1 second'")
    assert not await service.has_access(other["user"]["id"], creator["user"]["id"])

    done = await service.renew_due()
    assert (done.renewed, done.ended) == (1, 1)
    again = await service.renew_due()
    assert (again.renewed, again.ended) == (0, 0)

    (fans,) = await _my_subscriptions(client, fan)
    assert (fans["status"], fans["access"]) == ("active", True)
    (others,) = await _my_subscriptions(client, other)
    assert (others["status"], others["access"]) == ("canceled", False)
    invoices = await db.pool.fetch(
        "SELECT id FROM subscription_invoices WHERE subscription_id = $1 ORDER BY id",
        renewing["id"],
    )
    assert [i["id"] for i in invoices] == [
        f"test_in_{renewing['id']}_1", f"test_in_{renewing['id']}_2",
    ]  # fmt: skip
    assert await _owed(client, creator) == {"usd": 3 * 400}
    assert (await Ledger(db).check()).ok
    # An ended subscription is over: the viewer may subscribe again.
    assert (await _subscribe(client, other, tier["id"])).status == 201


# -- what a subscription lets its viewer do ---------------------------------------------------


async def _playback(client: Client, who: Account, slug: str) -> int:
    resp = await client.post(f"/api/v1/streams/{slug}/playback", headers=bearer(who["token"]))
    return resp.status


async def test_a_subscriber_only_stream_plays_only_while_subscribed(
    client: Client, db: Database
) -> None:
    creator, fan, _ = await _people(client)
    resp = await client.post(
        "/api/v1/streams", json={"slug": "members", "visibility": "subscribers"},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert resp.status == 201
    tiers = await (await client.get("/api/v1/streams/members/tiers")).json()
    assert tiers["tiers"] == []
    tier = await _tier(client, creator)
    assert await _playback(client, fan, "members") == 403

    sub = (await (await _subscribe(client, fan, tier["id"])).json())["subscription"]
    resp = await client.post("/api/v1/streams/members/playback", headers=bearer(fan["token"]))
    assert resp.status == 200
    assert (await resp.json())["token"]

    # Behind on a renewal: let in during the grace period, not after it.
    await _set(db, client, sub["id"], "status = 'past_due', grace_until = now() + interval '1 day'")
    assert await _playback(client, fan, "members") == 200
    await _set(db, client, sub["id"], "grace_until = now() - interval '1 second'")
    assert await _playback(client, fan, "members") == 403
    # Paid up again, then ended for good.
    await _set(db, client, sub["id"], "status = 'active', grace_until = NULL")
    assert await _playback(client, fan, "members") == 200
    await _set(db, client, sub["id"], "status = 'canceled'")
    assert await _playback(client, fan, "members") == 403


async def test_subscribers_only_chat_lets_subscribers_talk(make_client: MakeClient) -> None:
    client = await make_client(chat=FAST_CHAT)
    creator, fan, other = await _people(client)
    resp = await client.post(
        "/api/v1/streams", json={"slug": "club"}, headers=bearer(creator["token"])
    )
    assert resp.status == 201
    resp = await client.patch(
        "/api/v1/streams/club/chat/settings", json={"subscribers_only": True},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert resp.status == 200
    tier = await _tier(client, creator)
    assert (await _subscribe(client, fan, tier["id"])).status == 201
    member = await connect(client, "club", fan["token"])
    outsider = await connect(client, "club", other["token"])
    try:
        assert (await member.say("hello, members", "m1"))["type"] == "ack"
        assert (await outsider.say("let me in", "o1"))["code"] == "subscribers_only"
    finally:
        await member.close()
        await outsider.close()


# -- the processor's objects --------------------------------------------------------------------


def _meta(fan: Account, tier: dict[str, Any], creator: Account) -> dict[str, str]:
    return {"viewer_id": str(fan["user"]["id"]), "tier_id": str(tier["id"]),
            "creator_id": str(creator["user"]["id"])}  # fmt: skip


def _stripe_subscription(
    ref: str, status: str, meta: dict[str, str] | None, period_end: int, *,
    cancel: bool = False, legacy: bool = False,
) -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {
        "id": ref, "object": "subscription", "status": status, "cancel_at_period_end": cancel,
        "metadata": meta or {},
    }  # fmt: skip
    if legacy:  # API versions before 2025-03-31 keep the period on the subscription
        obj["current_period_end"] = period_end
    else:
        item = {"id": "si_1", "current_period_start": period_end - 30 * DAY_S,
                "current_period_end": period_end}  # fmt: skip
        obj["items"] = {"object": "list", "data": [item]}
    return obj


def _stripe_invoice(
    invoice_id: str, ref: str, meta: dict[str, str] | None, amount: int, period_end: int, *,
    charge: str | None = None, legacy: bool = False,
) -> dict[str, Any]:  # fmt: skip
    line = {"id": "il_1", "period": {"start": period_end - 30 * DAY_S, "end": period_end}}
    obj: dict[str, Any] = {
        "id": invoice_id, "object": "invoice", "amount_paid": amount, "currency": "usd",
        "lines": {"object": "list", "data": [line]},
    }  # fmt: skip
    if charge is not None:
        obj["charge"] = charge
    if legacy:
        obj["subscription"] = ref
        obj["subscription_details"] = {"metadata": meta}
    else:
        details = {"subscription": ref, "metadata": meta}
        obj["parent"] = {"type": "subscription_details", "subscription_details": details}
    return obj


async def _row(db: Database, ref: str) -> Any:
    return await db.pool.fetchrow("SELECT * FROM subscriptions WHERE provider_ref = $1", ref)


async def test_invoice_paid_before_subscription_created_makes_it_active(
    client: Client, db: Database
) -> None:
    creator, fan, meta, service = await _subscriber(client, price_minor=1000)
    now = int(time.time())
    end = now + 30 * DAY_S
    await service.apply_invoice_paid(
        parse_invoice(_stripe_invoice("in_1", "sub_1", meta, 1000, end, charge="ch_1")), now
    )
    row = await _row(db, "sub_1")
    assert (row["status"], int(row["current_period_end"].timestamp())) == ("active", end)
    assert await service.has_access(fan["user"]["id"], creator["user"]["id"])
    # The subscription's creation, stamped the same second, arrives late: still active.
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "incomplete", meta, end)), now
    )
    assert (await _row(db, "sub_1"))["status"] == "active"
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "active", meta, end)), now + 1
    )

    invoice = await db.pool.fetchrow("SELECT * FROM subscription_invoices WHERE id = 'in_1'")
    assert invoice is not None
    assert (invoice["charge_ref"], invoice["amount_minor"], invoice["platform_fee_minor"]) == (
        "ch_1", 1000, 200,
    )  # fmt: skip
    assert await _owed(client, creator) == {"usd": 800}
    assert (await Ledger(db).check()).ok


async def test_a_subscription_and_its_invoice_applied_at_once_agree(
    client: Client, db: Database
) -> None:
    creator, fan, _ = await _people(client)
    tiers = [await _tier(client, creator, name=f"T{i}", price_minor=1000) for i in range(8)]
    service = _service(client)
    now = int(time.time())
    end = now + 30 * DAY_S
    events = []
    for i, tier in enumerate(tiers):
        meta = _meta(fan, tier, creator)
        sub = _stripe_subscription(f"sub_{i}", "active", meta, end, cancel=True)
        invoice = _stripe_invoice(f"in_{i}", f"sub_{i}", meta, 1000, end)
        pair = [
            service.apply_subscription(parse_subscription(sub), now),
            service.apply_invoice_paid(parse_invoice(invoice), now),
        ]
        events += pair if i % 2 else pair[::-1]  # each order, half of the time
    await asyncio.gather(*events)
    rows = await db.pool.fetch("SELECT status, cancel_at_period_end FROM subscriptions")
    # The invoice never overwrites what the subscription's own event said.
    assert sorted((r["status"], r["cancel_at_period_end"]) for r in rows) == [("active", True)] * 8
    assert await db.pool.fetchval("SELECT count(*) FROM subscription_invoices") == 8
    assert await _owed(client, creator) == {"usd": 8 * 800}
    assert (await Ledger(db).check()).ok


async def test_a_second_checkout_for_one_tier_is_recorded_but_ended(
    client: Client, db: Database
) -> None:
    creator, _fan, meta, service = await _subscriber(client, price_minor=1000)
    now = int(time.time())
    end = now + 30 * DAY_S
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "active", meta, end)), now
    )
    await service.apply_invoice_paid(
        parse_invoice(_stripe_invoice("in_2", "sub_2", meta, 1000, end)), now + 1
    )
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_2", "active", meta, end)), now + 2
    )
    assert (await _row(db, "sub_1"))["status"] == "active"
    assert (await _row(db, "sub_2"))["status"] == "canceled"
    # Its payment is in the books (so that refunding it reverses the right amounts).
    assert await _owed(client, creator) == {"usd": 800}
    assert (await Ledger(db).check()).ok


async def test_a_repeated_invoice_is_posted_once(client: Client, db: Database) -> None:
    creator, _fan, meta, service = await _subscriber(client, price_minor=1000)
    now = int(time.time())
    invoice = _stripe_invoice("in_1", "sub_1", meta, 1000, now + 30 * DAY_S, legacy=True)
    await service.apply_subscription(
        parse_subscription(
            _stripe_subscription("sub_1", "active", meta, now + 30 * DAY_S, legacy=True)
        ),
        now,
    )
    for _ in range(3):
        await service.apply_invoice_paid(parse_invoice(invoice), now + 1)
    assert await db.pool.fetchval("SELECT count(*) FROM ledger_transactions") == 1
    assert await _owed(client, creator) == {"usd": 800}
    # The next period's invoice is a new posting, and moves the period end on.
    await service.apply_invoice_paid(
        parse_invoice(_stripe_invoice("in_2", "sub_1", None, 1000, now + 60 * DAY_S, legacy=True)),
        now + 2,
    )
    assert await _owed(client, creator) == {"usd": 1600}
    row = await _row(db, "sub_1")
    assert int(row["current_period_end"].timestamp()) == now + 60 * DAY_S
    # A free period (a coupon) posts nothing.
    await service.apply_invoice_paid(
        parse_invoice(_stripe_invoice("in_3", "sub_1", meta, 0, now + 90 * DAY_S)), now + 3
    )
    assert await db.pool.fetchval("SELECT count(*) FROM subscription_invoices") == 2
    assert (await Ledger(db).check()).ok


async def test_a_deleted_subscription_stays_ended_whatever_arrives_late(
    client: Client, db: Database
) -> None:
    creator, fan, meta, service = await _subscriber(client)
    now = int(time.time())
    end = now + 30 * DAY_S
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "canceled", meta, end)), now
    )
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "active", meta, end)), now - 5
    )
    assert (await _row(db, "sub_1"))["status"] == "canceled"
    # Even a newer event never brings it back.
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "active", meta, end)), now + 5
    )
    assert (await _row(db, "sub_1"))["status"] == "canceled"
    assert not await service.has_access(fan["user"]["id"], creator["user"]["id"])
    # Its viewer can subscribe afresh.
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_2", "active", meta, end)), now + 6
    )
    assert await service.has_access(fan["user"]["id"], creator["user"]["id"])


async def test_an_older_event_changes_nothing(client: Client, db: Database) -> None:
    _creator, _fan, meta, service = await _subscriber(client)
    now = int(time.time())
    end = now + 30 * DAY_S
    newer = _stripe_subscription("sub_1", "active", meta, end, cancel=True)
    await service.apply_subscription(parse_subscription(newer), now)
    older = _stripe_subscription("sub_1", "active", meta, end, cancel=False)
    await service.apply_subscription(parse_subscription(older), now - 10)
    row = await _row(db, "sub_1")
    assert row["cancel_at_period_end"] is True
    assert int(row["state_at"].timestamp()) == now


async def test_subscriptions_livecore_cannot_place_are_ignored(
    client: Client, db: Database
) -> None:
    creator, fan, _ = await _people(client)
    tier = await _tier(client, creator)
    service = _service(client)
    now = int(time.time())
    end = now + 30 * DAY_S
    wrong_creator = _meta(fan, tier, fan)
    unknown_viewer = _meta({"user": {"id": 987_654}}, tier, creator)
    for i, meta in enumerate((None, {"viewer_id": "x"}, wrong_creator, unknown_viewer)):
        await service.apply_subscription(
            parse_subscription(_stripe_subscription(f"sub_{i}", "active", meta, end)), now
        )
        await service.apply_invoice_paid(
            parse_invoice(_stripe_invoice(f"in_{i}", f"sub_{i}", meta, 500, end)), now
        )
    await service.apply_invoice_paid(
        parse_invoice({"id": "in_x", "amount_paid": 500, "currency": "usd"}), now
    )
    assert await db.pool.fetchval("SELECT count(*) FROM subscriptions") == 0
    assert await db.pool.fetchval("SELECT count(*) FROM subscription_invoices") == 0


async def test_a_failed_renewal_keeps_access_through_the_grace_period_only(
    client: Client, db: Database
) -> None:
    creator, fan, meta, service = await _subscriber(client, price_minor=1000)
    viewer_id, creator_id = fan["user"]["id"], creator["user"]["id"]
    now = int(time.time())
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "active", meta, now + 30 * DAY_S)),
        now - 30 * DAY_S,
    )
    await service.apply_invoice_paid(
        parse_invoice(_stripe_invoice("in_1", "sub_1", meta, 1000, now + 5)), now - 30 * DAY_S
    )
    failed = _stripe_invoice("in_2", "sub_1", meta, 0, now + 30 * DAY_S)
    await service.apply_invoice_failed(parse_invoice(failed), now)
    row = await _row(db, "sub_1")
    grace_days = client.app[CONFIG].tips.past_due_grace_days
    assert row["status"] == "past_due"
    assert int(row["grace_until"].timestamp()) == now + int(grace_days * DAY_S)
    assert await service.has_access(viewer_id, creator_id)
    # Stripe retries; another failure does not extend the grace.
    await service.apply_invoice_failed(parse_invoice(failed), now + 3600)
    assert (await _row(db, "sub_1"))["grace_until"] == row["grace_until"]

    await _set(db, client, row["id"], "grace_until = now() - interval '1 second'")
    assert not await service.has_access(viewer_id, creator_id)
    # The retry succeeds at last: paid up, active, no grace.
    await service.apply_invoice_paid(
        parse_invoice(_stripe_invoice("in_2", "sub_1", meta, 1000, now + 30 * DAY_S)), now + 7200
    )
    row = await _row(db, "sub_1")
    assert (row["status"], row["grace_until"]) == ("active", None)
    assert await service.has_access(viewer_id, creator_id)
    assert (await Ledger(db).check()).ok


async def test_an_unpaid_subscription_lets_nobody_in_until_its_invoice_is_paid(
    client: Client, db: Database
) -> None:
    creator, fan, meta, service = await _subscriber(client, price_minor=1000)
    viewer_id, creator_id = fan["user"]["id"], creator["user"]["id"]
    now = int(time.time())
    end = now + 30 * DAY_S
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "active", meta, end)), now - 60
    )
    # Stripe gave up retrying and marked it unpaid: no access, but not ended either.
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "unpaid", meta, end)), now
    )
    assert (await _row(db, "sub_1"))["status"] == "incomplete"
    assert not await service.has_access(viewer_id, creator_id)
    # The viewer pays the open invoice at last: active again, and the payment posted once.
    await service.apply_invoice_paid(
        parse_invoice(_stripe_invoice("in_9", "sub_1", meta, 1000, end)), now + 60
    )
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "active", meta, end)), now + 61
    )
    assert (await _row(db, "sub_1"))["status"] == "active"
    assert await service.has_access(viewer_id, creator_id)
    assert await _owed(client, creator) == {"usd": 800}
    assert (await Ledger(db).check()).ok


async def test_a_failed_first_payment_gives_no_grace(client: Client, db: Database) -> None:
    creator, fan, meta, service = await _subscriber(client)
    now = int(time.time())
    end = now + 30 * DAY_S
    await service.apply_subscription(
        parse_subscription(_stripe_subscription("sub_1", "incomplete", meta, end)), now
    )
    await service.apply_invoice_failed(
        parse_invoice(_stripe_invoice("in_1", "sub_1", meta, 0, end)), now
    )
    assert (await _row(db, "sub_1"))["status"] == "incomplete"
    assert not await service.has_access(fan["user"]["id"], creator["user"]["id"])


# -- through the processor (a fake gateway at the Protocol seam) ------------------------------


class FakeGateway:
    """Answers as Stripe would, remembering what it was asked."""

    def __init__(self) -> None:
        self.down = False
        self.prices: list[tuple[int, str, int, str]] = []
        self.renamed: list[tuple[str, str]] = []
        self.checkouts: list[dict[str, Any]] = []
        self.sessions: dict[str, tuple[str, str]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}

    async def create_price(self, tier_id: int, name: str, amount_minor: int, currency: str) -> str:
        if self.down:
            raise ProviderUnavailable("connection refused")
        self.prices.append((tier_id, name, amount_minor, currency))
        return f"price_{tier_id}"

    async def rename_price(self, price_id: str, name: str) -> None:
        if self.down:
            raise ProviderUnavailable("connection refused")
        self.renamed.append((price_id, name))

    async def checkout(
        self, *, price_id: str, customer_email: str, metadata: dict[str, str],
        application_fee_percent: float | None, destination: str | None, success_url: str,
        cancel_url: str, idempotency_key: str,
    ) -> tuple[str, str]:  # fmt: skip
        if self.down:
            raise ProviderUnavailable("connection refused")
        self.checkouts.append(
            {"price_id": price_id, "customer_email": customer_email, "metadata": metadata,
             "application_fee_percent": application_fee_percent, "destination": destination,
             "success_url": success_url, "cancel_url": cancel_url, "key": idempotency_key}
        )  # fmt: skip
        session = f"cs_test_{len(self.sessions) + 1}"
        return self.sessions.setdefault(
            idempotency_key, (session, f"https://checkout.example/{session}")
        )

    async def set_cancel_at_period_end(
        self, subscription_ref: str, cancel: bool
    ) -> ProcessorSubscription | None:
        if self.down:
            raise ProviderUnavailable("connection refused")
        obj = self.subscriptions[subscription_ref]
        obj["cancel_at_period_end"] = cancel
        return parse_subscription(obj)


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
async def stripe_client(
    aiohttp_client: AiohttpClient, config: Config, dsn: str, mailer: CapturingMailSender,
    gateway: FakeGateway,
) -> Client:  # fmt: skip
    """The app with its subscriptions going through the fake gateway."""
    app = create_app(config, database_url=dsn, mailer=mailer)

    async def through_gateway(app: web.Application) -> AsyncIterator[None]:
        db = app[DB]
        # The subscriber check playback and chat were built with.
        app[SUBSCRIPTIONS] = SubscriptionService(
            db, Subscriptions(db), Ledger(db), CreatorSettings(db), app[CONFIG].tips, gateway,
            access=app[SUBSCRIBER_ACCESS],
        )  # fmt: skip
        yield

    app.cleanup_ctx.append(through_gateway)
    return await aiohttp_client(app)


async def test_a_tier_gets_its_price_at_the_processor_first(
    stripe_client: Client, gateway: FakeGateway, db: Database
) -> None:
    client = stripe_client
    creator, _, _ = await _people(client)
    gateway.down = True
    resp = await client.post(
        "/api/v1/me/tiers", json={"name": "Gold", "price_minor": 700, "currency": "eur"},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert resp.status == 503
    assert "not created" in (await resp.json())["error"]["message"]
    assert await db.pool.fetchval("SELECT count(*) FROM subscription_tiers") == 0

    gateway.down = False
    tier = await _tier(client, creator, price_minor=700, currency="eur")
    assert gateway.prices == [(tier["id"], "Gold", 700, "eur")]
    stored = await db.pool.fetchval(
        "SELECT stripe_price_id FROM subscription_tiers WHERE id = $1", tier["id"]
    )
    assert stored == f"price_{tier['id']}"


async def test_subscribing_through_the_processor_starts_a_checkout(
    stripe_client: Client, gateway: FakeGateway, db: Database
) -> None:
    client = stripe_client
    creator, fan, other = await _people(client)
    tier = await _tier(client, creator)
    await CreatorSettings(db).put(creator["user"]["id"], 1500, "acct_cara")

    assert (await _subscribe(client, fan, tier["id"])).status == 400  # no Idempotency-Key
    resp = await _subscribe(client, fan, tier["id"], **{"Idempotency-Key": "k1"})
    assert resp.status == 201
    body = await resp.json()
    assert body["test_mode"] is False and "notice" not in body
    assert body["checkout_url"] == f"https://checkout.example/{body['session_id']}"
    (asked,) = gateway.checkouts
    assert asked["metadata"] == _meta(fan, tier, creator) | {"fee_bps": "1500"}
    assert (asked["price_id"], asked["customer_email"]) == (
        f"price_{tier['id']}",
        "fan@example.com",
    )
    assert (asked["destination"], asked["application_fee_percent"]) == ("acct_cara", 15.0)
    assert asked["success_url"].startswith("http://127.0.0.1:8080/?checkout=success")
    # A retry with the same key meets the same checkout; another viewer's same key does not.
    again = await (await _subscribe(client, fan, tier["id"], **{"Idempotency-Key": "k1"})).json()
    assert again["session_id"] == body["session_id"]
    theirs = await (await _subscribe(client, other, tier["id"], **{"Idempotency-Key": "k1"})).json()
    assert theirs["session_id"] != body["session_id"]
    assert (
        await _subscribe(client, creator, tier["id"], **{"Idempotency-Key": "k2"})
    ).status == 422

    # The processor's subscription arrives (webhook); subscribing again is refused.
    now = int(time.time())
    obj = _stripe_subscription("sub_1", "active", _meta(fan, tier, creator), now + 30 * DAY_S)
    gateway.subscriptions["sub_1"] = obj
    await _service(client).apply_subscription(parse_subscription(obj), now)
    assert (await _subscribe(client, fan, tier["id"], **{"Idempotency-Key": "k3"})).status == 409

    gateway.down = True
    assert (await _subscribe(client, other, tier["id"], **{"Idempotency-Key": "k4"})).status == 503


async def test_cancel_through_the_processor_applies_its_answer(
    stripe_client: Client, gateway: FakeGateway
) -> None:
    client = stripe_client
    creator, fan, other = await _people(client)
    tier = await _tier(client, creator)
    now = int(time.time())
    obj = _stripe_subscription("sub_1", "active", _meta(fan, tier, creator), now + 30 * DAY_S)
    gateway.subscriptions["sub_1"] = obj
    await _service(client).apply_subscription(parse_subscription(dict(obj)), now - 5)
    (sub,) = await _my_subscriptions(client, fan)
    path = f"/api/v1/me/subscriptions/{sub['id']}"

    assert (await client.post(f"{path}/cancel", headers=bearer(other["token"]))).status == 404
    resp = await client.post(f"{path}/cancel", headers=bearer(fan["token"]))
    assert resp.status == 200
    body = (await resp.json())["subscription"]
    assert (body["cancel_at_period_end"], body["access"]) == (True, True)
    gateway.down = True
    assert (await client.post(f"{path}/resume", headers=bearer(fan["token"]))).status == 503
    gateway.down = False
    resp = await client.post(f"{path}/resume", headers=bearer(fan["token"]))
    assert (await resp.json())["subscription"]["cancel_at_period_end"] is False
