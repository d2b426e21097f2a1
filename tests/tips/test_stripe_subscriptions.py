"""Subscriptions through Stripe Checkout against the Stripe-shaped server: webhooks drive the
state, each paid period is posted once, and the perks follow the subscription's life."""

from __future__ import annotations

from typing import Any

import pytest

from livecore.config import Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.stripe_peer import StripePeer
from tests.tips.people import admin_headers
from tests.tips.test_stripe_tips import deliver_all, fees_posted, stripe_config


@pytest.fixture
async def client(make_client: MakeClient, config: Config, stripe_peer: StripePeer) -> Client:
    return await make_client(stripe=stripe_config(config, stripe_peer).stripe)


async def _members_stream(client: Client) -> tuple[dict[str, Any], dict[str, Any], int]:
    creator = await register(client, "creator@example.com", creator=True, display_name="Cara")
    headers = bearer(creator["token"])
    resp = await client.post(
        "/api/v1/streams", json={"slug": "members", "visibility": "subscribers"}, headers=headers
    )
    assert resp.status == 201, await resp.text()
    tier = await client.post(
        "/api/v1/me/tiers", json={"name": "Gold", "price_minor": 500, "currency": "usd"},
        headers=headers,
    )  # fmt: skip
    assert tier.status == 201, await tier.text()
    fan = await register(client, "fan@example.com", display_name="Fan")
    client.session.cookie_jar.clear()
    return creator, fan, (await tier.json())["tier"]["id"]


async def _may_watch(client: Client, token: str) -> bool:
    resp = await client.post("/api/v1/streams/members/playback", headers=bearer(token))
    assert resp.status in (200, 403), await resp.text()
    return resp.status == 200


async def test_checkout_to_lapse_drives_access_and_posts_each_period_once(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan, tier_id = await _members_stream(client)
    assert len(stripe_peer.prices) == 1
    resp = await client.post(
        f"/api/v1/tiers/{tier_id}/subscribe",
        headers=bearer(fan["token"]) | {"Idempotency-Key": "sub-1"},
    )
    assert resp.status == 201, await resp.text()
    session_id = (await resp.json())["session_id"]
    assert not await _may_watch(client, fan["token"])  # not paid yet

    events = stripe_peer.complete_checkout(session_id)
    # Delivered out of order: the invoice before the subscription it belongs to, twice.
    invoice = next(e for e in events if e["type"] == "invoice.paid")
    created = next(e for e in events if e["type"] == "customer.subscription.created")
    outcomes = await deliver_all(client, [invoice, invoice, created])
    assert outcomes == ["processed", "duplicate", "processed"]
    assert await _may_watch(client, fan["token"])
    ledger = Ledger(db)
    assert await ledger.balances("creator", creator["user"]["id"]) == {"usd": -400}
    await fees_posted(db, 45)  # 2.9% + 30 of 500

    sub_id = next(iter(stripe_peer.subscriptions))
    await deliver_all(client, stripe_peer.renew(sub_id, paid=True))
    assert await ledger.balances("creator", creator["user"]["id"]) == {"usd": -800}

    # A failed renewal: past due, perks kept through the grace period.
    await deliver_all(client, stripe_peer.renew(sub_id, paid=False))
    mine = await client.get("/api/v1/me/subscriptions", headers=bearer(fan["token"]))
    (sub,) = (await mine.json())["subscriptions"]
    assert sub["status"] == "past_due"
    assert await _may_watch(client, fan["token"])

    ended = stripe_peer.end_subscription(sub_id)
    late_update = dict(
        next(e for e in stripe_peer.events if e["type"] == "customer.subscription.updated"),
        id="evt_late_update",
    )
    await deliver_all(client, [*ended, late_update])  # a late update never resurrects it
    assert not await _may_watch(client, fan["token"])
    assert (await Ledger(db).check()).ok


async def test_a_refunded_subscription_charge_is_reversed(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan, tier_id = await _members_stream(client)
    resp = await client.post(
        f"/api/v1/tiers/{tier_id}/subscribe",
        headers=bearer(fan["token"]) | {"Idempotency-Key": "sub-1"},
    )
    await deliver_all(client, stripe_peer.complete_checkout((await resp.json())["session_id"]))
    (charge_id,) = stripe_peer.charges
    await deliver_all(client, stripe_peer.refund(charge_id))
    ledger = Ledger(db)
    assert await ledger.balances("creator", creator["user"]["id"]) == {"usd": 0}
    assert (await ledger.balances("refunds", None))["usd"] == -500
    assert (await ledger.check()).ok


async def test_each_subscription_keeps_the_share_agreed_at_its_checkout(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan, tier_id = await _members_stream(client)
    creator_id = creator["user"]["id"]
    admin = await admin_headers(client, db)
    url = f"/api/v1/admin/creators/{creator_id}/money"
    account = stripe_peer.add_account()

    async def share(bps: int) -> None:
        body = {"platform_fee_bps": bps, "stripe_account_id": account}
        resp = await client.put(url, json=body, headers=admin)
        assert resp.status == 200, await resp.text()

    async def subscribe(token: str, key: str) -> str:
        resp = await client.post(
            f"/api/v1/tiers/{tier_id}/subscribe", headers=bearer(token) | {"Idempotency-Key": key}
        )
        assert resp.status == 201, await resp.text()
        before = set(stripe_peer.subscriptions)
        await deliver_all(client, stripe_peer.complete_checkout((await resp.json())["session_id"]))
        (sub_id,) = set(stripe_peer.subscriptions) - before
        return sub_id

    ledger = Ledger(db)
    await share(2000)
    first = await subscribe(fan["token"], "sub-a")
    assert stripe_peer.subscriptions[first]["application_fee_percent"] == 20
    assert await ledger.balances("creator", creator_id) == {"usd": -400}

    # The admin raises the platform's share: Stripe keeps taking 20% of the first
    # subscription's invoices, and the ledger keeps posting what Stripe takes.
    await share(5000)
    await deliver_all(client, stripe_peer.renew(first, paid=True))
    assert await ledger.balances("creator", creator_id) == {"usd": -800}

    # A subscription made after the change has the new share.
    other = await register(client, "other@example.com", display_name="Other")
    client.session.cookie_jar.clear()
    second = await subscribe(other["token"], "sub-b")
    assert stripe_peer.subscriptions[second]["application_fee_percent"] == 50
    assert await ledger.balances("creator", creator_id) == {"usd": -1050}
    assert (await ledger.check()).ok
