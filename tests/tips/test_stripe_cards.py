"""Saved cards are charged the way Stripe takes them: with the viewer's own Stripe Customer
(made once, kept in PostgreSQL), confirmed server-side without redirects, and a card saved to
someone else is refused before Stripe is asked."""

from __future__ import annotations

from typing import Any

from livecore.config import Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.stripe_peer import StripePeer
from tests.tips.people import creator_and_fan
from tests.tips.test_stripe_tips import stripe_config


async def _tip(client: Client, token: str, key: str, **body: Any) -> Any:
    payload = {"amount_minor": 1000, "currency": "usd", **body}
    headers = bearer(token) | {"Idempotency-Key": key}
    return await client.post("/api/v1/streams/tipjar/tips", json=payload, headers=headers)


async def _client(make_client: MakeClient, config: Config, peer: StripePeer) -> Client:
    return await make_client(stripe=stripe_config(config, peer).stripe)


def _posts(peer: StripePeer, path: str) -> list[Any]:
    return [r for r in peer.requests if r.method == "POST" and r.path == path]


async def test_a_card_is_saved_to_the_viewers_customer_and_charged_with_it_again(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await _client(make_client, config, stripe_peer)
    creator, fan = await creator_and_fan(client)
    first = await _tip(client, fan["token"], "k1", payment_method="pm_card_visa")
    assert first.status == 201, await first.text()
    assert (await first.json())["tip"]["status"] == "succeeded"
    (made,) = _posts(stripe_peer, "/v1/customers")
    assert made.idempotency_key == f"livecore-customer-{fan['user']['id']}"
    (customer,) = stripe_peer.customers
    stored = await db.pool.fetchval(
        "SELECT customer_ref FROM stripe_customers WHERE user_id = $1", fan["user"]["id"]
    )
    assert stored == customer
    (call,) = _posts(stripe_peer, "/v1/payment_intents")
    assert call.params["customer"] == customer
    assert call.params["automatic_payment_methods"] == {
        "enabled": "true", "allow_redirects": "never",
    }  # fmt: skip
    assert "return_url" not in call.params and "off_session" not in call.params
    # The card is now saved to the viewer: its PaymentMethod pays the next tip, with the
    # same customer (Stripe refuses it without), and no second customer is made.
    (intent,) = stripe_peer.payment_intents.values()
    saved = intent["payment_method"]
    assert stripe_peer.payment_methods[saved]["customer"] == customer
    again = await _tip(client, fan["token"], "k2", payment_method=saved)
    assert again.status == 201, await again.text()
    assert (await again.json())["tip"]["status"] == "succeeded"
    assert len(_posts(stripe_peer, "/v1/customers")) == 1
    assert _posts(stripe_peer, "/v1/payment_intents")[-1].params["customer"] == customer
    assert (await Ledger(db).balances("creator", creator["user"]["id"])) == {"usd": -1600}
    assert (await Ledger(db).check()).ok


async def test_a_card_saved_to_someone_else_is_refused_before_stripe_is_asked(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await _client(make_client, config, stripe_peer)
    _, fan = await creator_and_fan(client)
    other = await register(client, "other@example.com", display_name="Other")
    client.session.cookie_jar.clear()
    # The other viewer's card, saved to their customer by their own tip.
    paid = await _tip(client, other["token"], "theirs", payment_method="pm_card_visa")
    assert paid.status == 201, await paid.text()
    (intent,) = stripe_peer.payment_intents.values()
    theirs = intent["payment_method"]
    resp = await _tip(client, fan["token"], "k1", payment_method=theirs)
    assert resp.status == 422, await resp.text()
    assert "saved cards" in (await resp.json())["error"]["fields"]["payment_method"]
    assert len(stripe_peer.payment_intents) == 1
    assert await db.pool.fetchval("SELECT count(*) FROM tips") == 1


async def test_a_card_whose_bank_asks_for_a_check_leaves_the_tip_to_the_browser(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    # The viewer is there (they just asked to tip): the payment waits for their bank's
    # check in the browser, rather than being declined as an off-session payment would be.
    client = await _client(make_client, config, stripe_peer)
    _, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1", payment_method="pm_card_authenticationRequired")
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["tip"]["status"] == "pending" and body["client_secret"]
    (intent,) = stripe_peer.payment_intents.values()
    assert intent["status"] == "requires_action"
    assert (await Ledger(db).check()).ok


async def test_a_browser_confirmed_tip_needs_no_customer(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer
) -> None:
    client = await _client(make_client, config, stripe_peer)
    _, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1")
    assert resp.status == 201 and (await resp.json())["client_secret"]
    (call,) = _posts(stripe_peer, "/v1/payment_intents")
    assert "customer" not in call.params and "confirm" not in call.params
    assert call.params["automatic_payment_methods"] == {"enabled": "true"}
    assert stripe_peer.customers == {}
