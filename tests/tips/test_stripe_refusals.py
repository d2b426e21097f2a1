"""Stripe's refusals while making a tip: each error class gets a clear answer and leaves the
tip in a final state, and only outages (transport failures, 5xx) count against the circuit
breaker, whose half-open trial always resolves."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from livecore.config import Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.conftest import Client, MakeClient, bearer
from tests.support.stripe_peer import StripePeer
from tests.tips.people import admin_headers, creator_and_fan
from tests.tips.test_stripe_tips import stripe_config


async def _tip(client: Client, token: str, key: str, **body: Any) -> Any:
    payload = {"amount_minor": 1000, "currency": "usd", **body}
    headers = bearer(token) | {"Idempotency-Key": key}
    return await client.post("/api/v1/streams/tipjar/tips", json=payload, headers=headers)


async def _tip_statuses(db: Database) -> list[tuple[str, str]]:
    rows = await db.pool.fetch("SELECT status, provider FROM tips ORDER BY id")
    return [(r["status"], r["provider"]) for r in rows]


async def _set_account(
    client: Client, admin: dict[str, str], creator: dict[str, Any], account: str | None
) -> None:
    """Set the creator's connected account. "acct_unknown" is one Stripe does not know: every
    tip's request is then refused (an invalid request about `transfer_data[destination]`)."""
    resp = await client.put(
        f"/api/v1/admin/creators/{creator['user']['id']}/money",
        json={"platform_fee_bps": None, "stripe_account_id": account},
        headers=admin,
    )
    assert resp.status == 200, await resp.text()


async def test_an_unknown_payment_method_is_a_422_and_charges_nothing(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    _, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1", payment_method="pm_doesnotexist")
    assert resp.status == 422, await resp.text()
    assert "payment_method" in (await resp.json())["error"]["fields"]
    assert stripe_peer.payment_intents == {}
    assert await _tip_statuses(db) == []  # refused before a tip was made
    assert (await Ledger(db).check()).ok


async def test_a_refused_payment_request_fails_the_tip_with_a_502(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    creator, fan = await creator_and_fan(client)
    await _set_account(client, await admin_headers(client, db), creator, "acct_unknown")
    resp = await _tip(client, fan["token"], "k1")
    assert resp.status == 502, await resp.text()
    assert "not been charged" in (await resp.json())["error"]["message"]
    assert await _tip_statuses(db) == [("failed", "stripe")]
    # Final: the same key answers the failed tip, and asks Stripe nothing more.
    asked = len(stripe_peer.requests)
    again = await _tip(client, fan["token"], "k1")
    assert again.status == 200 and (await again.json())["tip"]["status"] == "failed"
    assert len(stripe_peer.requests) == asked
    assert (await Ledger(db).check()).ok


async def test_bad_keys_fail_the_tip_with_a_502_not_a_500(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    # The peer takes only sk_test_ keys: a live key is an AuthenticationError.
    settings = stripe_config(config, stripe_peer).stripe
    client = await make_client(stripe=replace(settings, secret_key="sk_live_wrong"))
    _, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1")
    assert resp.status == 502, await resp.text()
    assert await _tip_statuses(db) == [("failed", "stripe")]


async def test_a_key_without_permission_fails_the_tip_with_a_502(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    # A restricted key that may only read: Stripe answers a PermissionError (403).
    settings = stripe_config(config, stripe_peer).stripe
    client = await make_client(stripe=replace(settings, secret_key="rk_test_readonly"))
    _, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1")
    assert resp.status == 502, await resp.text()
    assert await _tip_statuses(db) == [("failed", "stripe")]
    assert stripe_peer.payment_intents == {}


async def test_a_rate_limited_tip_fails_and_is_not_sent_to_the_fallback_lane(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    _, fan = await creator_and_fan(client)
    stripe_peer.fail_next("/v1/payment_intents", "429")
    resp = await _tip(client, fan["token"], "k1")
    assert resp.status == 503 and resp.headers["Retry-After"], await resp.text()
    error = (await resp.json())["error"]
    assert "not been charged" in error["message"]
    # Its own code, so a client knows to send a new tip (with a new key), not retry this one.
    assert error["code"] == "processor_busy"
    assert await _tip_statuses(db) == [("failed", "stripe")]
    fresh = await _tip(client, fan["token"], "k2")
    assert fresh.status == 201 and (await fresh.json())["lane"] == "primary"


async def test_a_half_open_trial_met_by_a_refusal_closes_the_circuit(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    # One failure opens the circuit, and it is half-open at once: the next tip is the trial.
    settings = stripe_config(config, stripe_peer, breaker_failures=1, breaker_reset_s=0.0)
    client = await make_client(stripe=settings.stripe)
    creator, fan = await creator_and_fan(client)
    admin = await admin_headers(client, db)
    await stripe_peer.stop_listening()
    down = await _tip(client, fan["token"], "down")
    assert down.status == 202 and (await down.json())["lane"] == "fallback"
    await stripe_peer.start_listening()
    await _set_account(client, admin, creator, "acct_unknown")
    trial = await _tip(client, fan["token"], "trial")
    assert trial.status == 502, await trial.text()
    # Stripe answered the trial: it is up, and the circuit closed.
    await _set_account(client, admin, creator, None)
    for n in range(2):
        after = await _tip(client, fan["token"], f"after{n}")
        assert after.status == 201, await after.text()
        assert (await after.json())["lane"] == "primary"
    assert len(stripe_peer.payment_intents) == 2
    assert (await Ledger(db).check()).ok
