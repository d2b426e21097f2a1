"""A tip whose payment request may have reached Stripe is reconciled with Stripe before
anything else, whatever the circuit breaker says, and is never moved to the fallback lane:
the viewer is never told they were not charged when they were."""

from __future__ import annotations

from typing import Any

from livecore.config import Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.conftest import Client, MakeClient, bearer
from tests.support.stripe_peer import StripePeer
from tests.tips.people import creator_and_fan
from tests.tips.test_stripe_peer import connect
from tests.tips.test_stripe_tips import deliver_all, stripe_config


async def _tip(client: Client, token: str, key: str, **body: Any) -> Any:
    payload = {"amount_minor": 1000, "currency": "usd", **body}
    headers = bearer(token) | {"Idempotency-Key": key}
    return await client.post("/api/v1/streams/tipjar/tips", json=payload, headers=headers)


async def _balances(db: Database, creator_id: int) -> tuple[int, int, int]:
    ledger = Ledger(db)
    return (
        (await ledger.balances("creator", creator_id)).get("usd", 0),
        (await ledger.balances("platform_revenue", None)).get("usd", 0),
        (await ledger.balances("processor_clearing", None)).get("usd", 0),
    )


async def _client(make_client: MakeClient, config: Config, peer: StripePeer) -> Client:
    # Two failures open the circuit, and it stays open for the whole test.
    settings = stripe_config(config, peer, breaker_failures=2, breaker_reset_s=3600.0)
    return await make_client(stripe=settings.stripe)


async def test_an_unknown_outcome_retried_while_the_circuit_is_open_is_reconciled(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await _client(make_client, config, stripe_peer)
    creator, fan = await creator_and_fan(client)
    # Stripe charges the saved card, and neither the answer nor the immediate retry's comes
    # back.
    stripe_peer.fail_next("/v1/payment_intents", "timeout_after_commit", times=2)
    resp = await _tip(client, fan["token"], "k1", payment_method="pm_card_visa")
    assert resp.status == 503, await resp.text()
    error = (await resp.json())["error"]
    assert "same Idempotency-Key" in error["message"]
    # Its own code: the one 503 a client answers by retrying with the same key.
    assert error["code"] == "outcome_unknown"
    (intent,) = stripe_peer.payment_intents.values()
    assert intent["status"] == "succeeded"  # the card was charged
    # Then Stripe is unreachable, and the circuit opens: a new tip goes to the fallback lane.
    await stripe_peer.stop_listening()
    other = await _tip(client, fan["token"], "k2")
    assert other.status == 202, await other.text()

    # The retry cannot find out, and says so; it is not moved to the fallback lane.
    blind = await _tip(client, fan["token"], "k1", payment_method="pm_card_visa")
    assert blind.status == 503, await blind.text()
    assert "same Idempotency-Key" in (await blind.json())["error"]["message"]
    await stripe_peer.start_listening()

    # Reachable again (the circuit still open): the retry finds the payment and records it,
    # asking Stripe nothing before (the same request made again with the same key).
    stripe_peer.requests.clear()
    again = await _tip(client, fan["token"], "k1", payment_method="pm_card_visa")
    assert [(r.method, r.path) for r in stripe_peer.requests] == [("POST", "/v1/payment_intents")]
    assert again.status == 200, await again.text()
    body = await again.json()
    assert (body["lane"], body["tip"]["status"], body["tip"]["provider"]) == (
        "primary", "succeeded", "stripe",
    )  # fmt: skip
    assert "notice" not in body
    assert len(stripe_peer.payment_intents) == 1
    # Stripe's late events change nothing more.
    events = [e for e in stripe_peer.events if e["data"]["object"].get("id") == intent["id"]]
    events += [e for e in stripe_peer.events if e["type"] == "charge.succeeded"]
    await deliver_all(client, events)
    assert await _balances(db, creator["user"]["id"]) == (-800, -200, 1000)
    statuses = await db.pool.fetch("SELECT provider, status FROM tips ORDER BY id")
    assert [tuple(r) for r in statuses] == [("stripe", "succeeded"), ("manual", "pending")]
    assert (await Ledger(db).check()).ok


async def test_a_pending_payment_is_read_by_its_id_while_the_circuit_is_open(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await _client(make_client, config, stripe_peer)
    _, fan = await creator_and_fan(client)
    first = await _tip(client, fan["token"], "k1")  # the browser will confirm it
    assert first.status == 201
    secret = (await first.json())["client_secret"]
    await stripe_peer.stop_listening()
    for n in range(2):  # open the circuit
        assert (await _tip(client, fan["token"], f"down{n}")).status == 202
    await stripe_peer.start_listening()
    stripe_peer.requests.clear()
    again = await _tip(client, fan["token"], "k1")
    assert again.status == 200, await again.text()
    body = await again.json()
    assert (body["lane"], body["client_secret"]) == ("primary", secret)
    # Read by its id, never made again (an idempotency key lives for 24 hours only).
    assert [(r.method, r.path) for r in stripe_peer.requests] == [
        ("GET", f"/v1/payment_intents/{secret.split('_secret_')[0]}")
    ]
    assert (await Ledger(db).check()).ok


async def test_a_stripe_payment_for_a_tip_in_the_fallback_lane_is_posted_as_stripes(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    # A tip moved to the fallback lane while a payment for it was under way (as an earlier
    # version did): Stripe's late payment brings it back, and posts it as a card payment.
    client = await _client(make_client, config, stripe_peer)
    creator, fan = await creator_and_fan(client)
    await stripe_peer.stop_listening()
    moved = await _tip(client, fan["token"], "k1")
    assert moved.status == 202
    tip_id = (await moved.json())["tip"]["id"]
    await stripe_peer.start_listening()
    async with connect(stripe_peer) as api:
        intent = await api.v1.payment_intents.create_async(
            {"amount": 1000, "currency": "usd", "metadata": {"tip_id": str(tip_id)}}
        )
    await deliver_all(client, stripe_peer.succeed_payment_intent(intent.id))
    assert await _balances(db, creator["user"]["id"]) == (-800, -200, 1000)
    row = await db.pool.fetchrow("SELECT provider, status FROM tips WHERE id = $1", tip_id)
    assert row is not None and tuple(row) == ("stripe", "succeeded")
    assert (await Ledger(db).check()).ok


async def test_an_unknown_outcome_retried_after_stripe_dropped_the_key_is_not_paid_twice(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await _client(make_client, config, stripe_peer)
    creator, fan = await creator_and_fan(client)
    stripe_peer.fail_next("/v1/payment_intents", "timeout_after_commit", times=2)
    resp = await _tip(client, fan["token"], "k1", payment_method="pm_card_visa")
    assert resp.status == 503, await resp.text()
    # The viewer retries two days later: Stripe no longer knows the idempotency key.
    await db.pool.execute("UPDATE tips SET created_at = created_at - interval '2 days'")
    stripe_peer.expire_idempotency_keys()
    again = await _tip(client, fan["token"], "k1", payment_method="pm_card_visa")
    assert again.status == 200, await again.text()
    assert (await again.json())["tip"]["status"] == "succeeded"
    assert len(stripe_peer.payment_intents) == 1  # found by its metadata, not made again
    assert await _balances(db, creator["user"]["id"]) == (-800, -200, 1000)
    assert (await Ledger(db).check()).ok
