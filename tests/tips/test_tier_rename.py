"""Renaming a subscription tier (PATCH /api/v1/me/tiers/{id}): in test mode, and with Stripe,
where the price's product is renamed first and nothing changes when Stripe cannot be reached."""

from __future__ import annotations

from typing import Any

from livecore.config import Config
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.stripe_peer import StripePeer
from tests.tips.test_stripe_tips import stripe_config


async def _creator(client: Client, email: str = "creator@example.com") -> dict[str, Any]:
    name = email.split("@", 1)[0].capitalize()
    creator = await register(client, email, creator=True, display_name=name)
    client.session.cookie_jar.clear()
    return creator


async def _tier(client: Client, who: dict[str, Any], name: str) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/me/tiers", json={"name": name, "price_minor": 500, "currency": "usd"},
        headers=bearer(who["token"]),
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    tier: dict[str, Any] = (await resp.json())["tier"]
    return tier


async def _rename(client: Client, who: dict[str, Any], tier_id: int, name: Any) -> Any:
    return await client.patch(
        f"/api/v1/me/tiers/{tier_id}", json={"name": name}, headers=bearer(who["token"])
    )


async def test_a_tier_is_renamed_and_keeps_its_price(client: Client) -> None:
    creator = await _creator(client)
    gold = await _tier(client, creator, "Gold")
    silver = await _tier(client, creator, "Silver")
    resp = await _rename(client, creator, gold["id"], "  Gold fans ")
    assert resp.status == 200, await resp.text()
    renamed = (await resp.json())["tier"]
    assert (renamed["id"], renamed["name"], renamed["price_minor"]) == (
        gold["id"],
        "Gold fans",
        500,
    )
    listed = await client.get(f"/api/v1/users/{creator['user']['id']}/tiers")
    assert sorted(t["name"] for t in (await listed.json())["tiers"]) == ["Gold fans", "Silver"]
    # The same name again changes nothing; another tier's name is taken.
    assert (await _rename(client, creator, gold["id"], "Gold fans")).status == 200
    assert (await _rename(client, creator, silver["id"], "Gold fans")).status == 409
    # A retired tier can be renamed too (its subscriptions go on under its name).
    retired = await client.delete(
        f"/api/v1/me/tiers/{silver['id']}", headers=bearer(creator["token"])
    )
    assert retired.status == 200
    assert (await _rename(client, creator, silver["id"], "Old silver")).status == 200


async def test_bad_names_and_other_creators_tiers_are_refused(client: Client) -> None:
    creator = await _creator(client)
    other = await _creator(client, "other@example.com")
    gold = await _tier(client, creator, "Gold")
    for bad in ("", "   ", "x" * 61, 5, None):
        resp = await _rename(client, creator, gold["id"], bad)
        assert resp.status == 422, bad
        assert "name" in (await resp.json())["error"]["fields"]
    assert (await _rename(client, other, gold["id"], "Mine now")).status == 404
    assert (await _rename(client, creator, 999_999, "Nope")).status == 404
    resp = await client.patch(f"/api/v1/me/tiers/{gold['id']}", json={"name": "Anon"})
    assert resp.status == 401
    tiers = await client.get("/api/v1/me/tiers", headers=bearer(creator["token"]))
    assert [t["name"] for t in (await tiers.json())["tiers"]] == ["Gold"]


async def test_with_stripe_the_product_is_renamed_first_and_an_outage_changes_nothing(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer
) -> None:
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    creator = await _creator(client)
    gold = await _tier(client, creator, "Gold")
    (price,) = stripe_peer.prices.values()
    product = stripe_peer.products[price["product"]]
    assert product["name"] == "Gold"
    resp = await _rename(client, creator, gold["id"], "Gold fans")
    assert resp.status == 200, await resp.text()
    assert product["name"] == "Gold fans"  # what Stripe's checkout page shows
    await stripe_peer.stop_listening()
    resp = await _rename(client, creator, gold["id"], "Platinum")
    assert resp.status == 503
    assert "not renamed" in (await resp.json())["error"]["message"]
    await stripe_peer.start_listening()
    tiers = await client.get("/api/v1/me/tiers", headers=bearer(creator["token"]))
    assert [t["name"] for t in (await tiers.json())["tiers"]] == ["Gold fans"]
    assert product["name"] == "Gold fans"
