"""Tips through Stripe, against a Stripe-shaped server on 127.0.0.1, with webhooks signed as
Stripe signs them: exactly once, in any order, through outages, and never charged twice."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from livecore.appkeys import TIPS
from livecore.config import Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.chat.conftest import connect
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.stripe_peer import DISPUTE_FEE, StripePeer, event_body, sign_payload
from tests.tips.people import admin_headers, creator_and_fan

SECRET = "whsec_livecore_test"


def stripe_config(config: Config, peer: StripePeer, **changes: Any) -> Config:
    settings: dict[str, Any] = {"timeout_s": 1.0, "breaker_failures": 2, "breaker_reset_s": 0.5}
    stripe = replace(
        config.stripe, secret_key="sk_test_livecore", webhook_secret=SECRET, api_base=peer.url,
        publishable_key="pk_test_livecore", **(settings | changes),
    )  # fmt: skip
    return replace(config, stripe=stripe)


@pytest.fixture
async def client(make_client: MakeClient, config: Config, stripe_peer: StripePeer) -> Client:
    return await make_client(stripe=stripe_config(config, stripe_peer).stripe)


async def _tip(client: Client, token: str, key: str, **body: Any) -> Any:
    payload = {"amount_minor": 1000, "currency": "usd", **body}
    headers = bearer(token) | {"Idempotency-Key": key}
    return await client.post("/api/v1/streams/tipjar/tips", json=payload, headers=headers)


async def deliver(
    client: Client, event: dict[str, Any], *, secret: str = SECRET, at: int | None = None
) -> Any:
    body = event_body(event)
    headers = {
        "Stripe-Signature": sign_payload(body, secret, at),
        "Content-Type": "application/json",
    }
    return await client.post("/webhooks/stripe", data=body, headers=headers)


async def deliver_all(client: Client, events: list[dict[str, Any]]) -> list[str]:
    outcomes = []
    for event in events:
        resp = await deliver(client, event)
        assert resp.status == 200, await resp.text()
        outcomes.append((await resp.json())["outcome"])
    return outcomes


async def fees_posted(db: Database, want: int, timeout_s: float = 10.0) -> None:
    """Processing fees are read and posted shortly after each payment, off the webhook."""
    deadline = time.monotonic() + timeout_s
    while (await Ledger(db).balances("processor_fees", None)).get("usd", 0) != want:
        assert time.monotonic() < deadline, "fees not posted in time"
        await asyncio.sleep(0.05)


def _of(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in events if e["type"] == kind)


def _intents(peer: StripePeer) -> list[Any]:
    return [r for r in peer.requests if r.method == "POST" and r.path == "/v1/payment_intents"]


async def _balances(db: Database, creator_id: int) -> dict[str, int]:
    ledger = Ledger(db)
    return {
        "creator": (await ledger.balances("creator", creator_id)).get("usd", 0),
        "revenue": (await ledger.balances("platform_revenue", None)).get("usd", 0),
        "clearing": (await ledger.balances("processor_clearing", None)).get("usd", 0),
        "fees": (await ledger.balances("processor_fees", None)).get("usd", 0),
        "refunds": (await ledger.balances("refunds", None)).get("usd", 0),
        "disputes": (await ledger.balances("disputes", None)).get("usd", 0),
    }


async def _paid_tip(
    client: Client, peer: StripePeer, token: str, key: str = "k1", **body: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    resp = await _tip(client, token, key, **body)
    assert resp.status == 201, await resp.text()
    answer = await resp.json()
    pi_id = answer["client_secret"].split("_secret_")[0]
    events = peer.succeed_payment_intent(pi_id)
    assert await deliver_all(client, events) == ["processed", "processed"]  # charge, payment
    return answer, events


async def test_a_tip_is_a_payment_intent_settled_once_by_its_webhook(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    viewer = await connect(client, "tipjar")
    try:
        resp = await _tip(client, fan["token"], "k1", message="hello")
        assert resp.status == 201
        answer = await resp.json()
        assert answer["test_mode"] is False and answer["tip"]["status"] == "pending"
        assert answer["publishable_key"] == "pk_test_livecore"
        (call,) = _intents(stripe_peer)
        assert call.params["amount"] == "1000" and call.params["currency"] == "usd"
        assert call.params["metadata"]["tip_id"] == str(answer["tip"]["id"])
        assert call.idempotency_key == f"livecore-tip-{answer['tip']['id']}"
        assert await _balances(db, creator["user"]["id"]) == dict.fromkeys(
            ["creator", "revenue", "clearing", "fees", "refunds", "disputes"], 0
        )
        pi_id = answer["client_secret"].split("_secret_")[0]
        events = stripe_peer.succeed_payment_intent(pi_id)
        succeeded = _of(events, "payment_intent.succeeded")
        assert await deliver_all(client, [succeeded]) == ["processed"]
        event = await viewer.wait_for(lambda e: e["type"] == "tip")
        assert (event["amount_minor"], event["message"]) == (1000, "hello")
        # A duplicate delivery changes nothing and tells no one.
        assert await deliver_all(client, [succeeded]) == ["duplicate"]
    finally:
        await viewer.close()
    fee = round(1000 * 0.029) + 30
    await fees_posted(db, fee)
    assert await _balances(db, creator["user"]["id"]) == {
        "creator": -800, "revenue": -200, "clearing": 1000 - fee, "fees": fee,
        "refunds": 0, "disputes": 0,
    }  # fmt: skip
    assert (await Ledger(db).check()).ok


async def test_racing_requests_with_one_key_make_one_payment(
    client: Client, stripe_peer: StripePeer
) -> None:
    _, fan = await creator_and_fan(client)
    answers = await asyncio.gather(*(_tip(client, fan["token"], "race") for _ in range(6)))
    bodies = [await a.json() for a in answers]
    assert all(a.status in (200, 201) for a in answers), bodies
    assert len({b["tip"]["id"] for b in bodies}) == 1
    payments = {r.idempotency_key for r in _intents(stripe_peer)}
    assert len(payments) == 1
    assert len(stripe_peer.payment_intents) == 1


async def test_forged_stale_and_future_webhooks_are_refused(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1")
    pi_id = (await resp.json())["client_secret"].split("_secret_")[0]
    succeeded = _of(stripe_peer.succeed_payment_intent(pi_id), "payment_intent.succeeded")
    now = int(time.time())
    for refused in (
        await deliver(client, succeeded, secret="whsec_forged"),
        await deliver(client, succeeded, at=now - 3600),
        await deliver(client, succeeded, at=now + 3600),
    ):
        assert refused.status == 400
        assert "webhook refused" in (await refused.json())["error"]["message"]
    body = event_body(succeeded)
    tampered = body.replace(b'"amount": 1000', b'"amount": 9000')
    assert tampered != body
    resp = await client.post(
        "/webhooks/stripe", data=tampered,
        headers={"Stripe-Signature": sign_payload(body, SECRET)},
    )  # fmt: skip
    assert resp.status == 400
    unsigned = await client.post("/webhooks/stripe", data=body)
    assert unsigned.status == 400
    assert await _balances(db, creator["user"]["id"]) == dict.fromkeys(
        ["creator", "revenue", "clearing", "fees", "refunds", "disputes"], 0
    )
    unknown = dict(succeeded, id="evt_unknown_type", type="customer.tax_id.created")
    assert await deliver_all(client, [unknown]) == ["ignored"]


async def test_a_late_failure_never_undoes_a_success(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1")
    tip_id = (await resp.json())["tip"]["id"]
    pi_id = (await resp.json())["client_secret"].split("_secret_")[0]
    failed = _of(stripe_peer.fail_payment_intent(pi_id), "payment_intent.payment_failed")
    succeeded = _of(stripe_peer.succeed_payment_intent(pi_id), "payment_intent.succeeded")
    # Delivered the other way round: success first, then the older failure.
    assert await deliver_all(client, [succeeded, failed]) == ["processed", "ignored"]
    tips = await client.get("/api/v1/me/tips", headers=bearer(creator["token"]))
    (tip,) = (await tips.json())["tips"]
    assert (tip["id"], tip["status"]) == (tip_id, "succeeded")
    assert (await _balances(db, creator["user"]["id"]))["creator"] == -800


async def test_a_declined_card_fails_the_tip_and_never_falls_back(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1", payment_method="pm_card_chargeDeclined")
    assert resp.status == 402
    assert "declined" in (await resp.json())["error"]["message"]
    again = await _tip(client, fan["token"], "k1", payment_method="pm_card_chargeDeclined")
    assert again.status == 200 and (await again.json())["tip"]["status"] == "failed"
    assert (await _balances(db, creator["user"]["id"]))["creator"] == 0
    saved = await _tip(client, fan["token"], "k2", payment_method="pm_card_visa")
    assert saved.status == 201 and (await saved.json())["tip"]["status"] == "succeeded"
    assert (await _balances(db, creator["user"]["id"]))["creator"] == -800


async def test_a_timeout_is_reconciled_with_the_same_key(
    client: Client, stripe_peer: StripePeer
) -> None:
    _, fan = await creator_and_fan(client)
    # The request reached Stripe but the answer never came: the retry finds that payment.
    stripe_peer.fail_next("/v1/payment_intents", "timeout_after_commit")
    resp = await _tip(client, fan["token"], "k1")
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["client_secret"]
    assert len(stripe_peer.payment_intents) == 1


async def test_an_unknown_outcome_is_never_moved_and_a_retry_finds_out(
    client: Client, stripe_peer: StripePeer
) -> None:
    _, fan = await creator_and_fan(client)
    stripe_peer.fail_next("/v1/payment_intents", "timeout", times=2)
    resp = await _tip(client, fan["token"], "k1")
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert "Idempotency-Key" in (await resp.json())["error"]["message"]
    again = await _tip(client, fan["token"], "k1")
    assert again.status == 200, await again.text()  # the same tip, now with its payment
    body = await again.json()
    assert body["lane"] == "primary" and body["tip"]["status"] == "pending"
    assert len(stripe_peer.payment_intents) == 1


async def test_stripe_down_sends_tips_to_the_fallback_lane_and_back(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    await stripe_peer.stop_listening()
    lane = []
    for n in range(3):
        resp = await _tip(client, fan["token"], f"down{n}")
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        assert body["lane"] == "fallback" and "not been charged" in body["notice"]
        lane.append(body["tip"]["id"])
    # The breaker opened after two refused connections: the third never tried Stripe.
    await stripe_peer.start_listening()
    await asyncio.sleep(0.6)  # stripe.breaker_reset_s: one trial call goes through
    back = await _tip(client, fan["token"], "back")
    assert back.status == 201 and (await back.json())["lane"] == "primary"
    assert len(stripe_peer.payment_intents) == 1
    # A retry of a fallback tip answers the same, and charges nothing.
    retry = await _tip(client, fan["token"], "down0")
    assert retry.status == 200 and (await retry.json())["tip"]["id"] == lane[0]
    # The creator settles one invoice and gives up on another.
    headers = bearer(creator["token"])
    pending = await client.get("/api/v1/me/tips?status=pending&lane=fallback", headers=headers)
    assert sorted(t["id"] for t in (await pending.json())["tips"]) == sorted(lane)
    paid = await client.post(f"/api/v1/me/tips/{lane[0]}/paid", headers=headers)
    assert (await paid.json())["tip"]["status"] == "succeeded"
    unpaid = await client.post(f"/api/v1/me/tips/{lane[1]}/unpaid", headers=headers)
    assert (await unpaid.json())["tip"]["status"] == "failed"
    # The viewer paid the creator directly: the creator owes the platform its share.
    balances = await _balances(db, creator["user"]["id"])
    assert (balances["creator"], balances["revenue"], balances["clearing"]) == (200, -200, 0)
    other = await client.post(f"/api/v1/me/tips/{lane[2]}/paid", headers=bearer(fan["token"]))
    assert other.status == 404
    assert (await Ledger(db).check()).ok


async def test_refunds_post_only_what_the_refunded_total_adds(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"])
    charge = _of(events, "charge.succeeded")["data"]["object"]["id"]
    first = _of(stripe_peer.refund(charge, 300), "charge.refunded")
    second = _of(stripe_peer.refund(charge, 700), "charge.refunded")
    # The later total first: the earlier, smaller total then adds nothing.
    assert await deliver_all(client, [second, first]) == ["processed", "ignored"]
    balances = await _balances(db, creator["user"]["id"])
    assert (balances["creator"], balances["revenue"], balances["refunds"]) == (0, 0, -1000)
    tips = await client.get("/api/v1/me/tips", headers=bearer(creator["token"]))
    (tip,) = (await tips.json())["tips"]
    assert (tip["status"], tip["refunded_minor"]) == ("refunded", 1000)
    assert (await Ledger(db).check()).ok


async def test_disputes_withdraw_once_and_return_when_won_in_any_order(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"], "k1")
    charge1 = _of(events, "charge.succeeded")["data"]["object"]["id"]
    _, events = await _paid_tip(client, stripe_peer, fan["token"], "k2")
    charge2 = _of(events, "charge.succeeded")["data"]["object"]["id"]
    assert (await _balances(db, creator["user"]["id"]))["creator"] == -1600
    won = stripe_peer.dispute(charge1)
    dispute1 = _of(won, "charge.dispute.created")["data"]["object"]["id"]
    won += stripe_peer.close_dispute(dispute1, won=True)
    lost = stripe_peer.dispute(charge2)
    dispute2 = _of(lost, "charge.dispute.created")["data"]["object"]["id"]
    lost += stripe_peer.close_dispute(dispute2, won=False)
    # The lost dispute's closing arrives before its opening; the won one in order.
    await deliver_all(client, [won[0], lost[1], won[1], lost[0]])
    balances = await _balances(db, creator["user"]["id"])
    assert (balances["creator"], balances["disputes"]) == (-800, -1000)
    tips = await client.get("/api/v1/me/tips", headers=bearer(creator["token"]))
    statuses = sorted(t["status"] for t in (await tips.json())["tips"])
    assert statuses == ["disputed", "succeeded"]
    # Stripe's dispute fee is the platform's expense: charged on both, returned on the won
    # one, each posted once, even when an event about the same dispute comes again.
    assert await _dispute_fees(db) == (3, DISPUTE_FEE)
    again = dict(lost[1], id="evt_closed_again")
    assert await deliver_all(client, [again]) == ["processed"]
    assert await _dispute_fees(db) == (3, DISPUTE_FEE)
    assert (await Ledger(db).check()).ok


async def _dispute_fees(db: Database) -> tuple[int, int]:
    """How many dispute-fee postings there are, and what they add to the processor's fees."""
    row = await db.pool.fetchrow(
        "SELECT count(DISTINCT t.id) AS n, coalesce(sum(e.amount_minor), 0) AS total"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " JOIN ledger_accounts a ON a.id = e.account_id"
        " WHERE t.external_ref LIKE 'dispute-fee:%' AND a.kind = 'processor_fees'"
    )
    assert row is not None
    return int(row["n"]), int(row["total"])


async def test_a_tip_to_a_stream_that_ended_is_still_credited(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    # The tip's stream is offline by the time its payment succeeds (nobody publishes here).
    creator, fan = await creator_and_fan(client)
    await _paid_tip(client, stripe_peer, fan["token"])
    assert (await _balances(db, creator["user"]["id"]))["creator"] == -800


@pytest.fixture
async def paying_client(make_client: MakeClient, config: Config, stripe_peer: StripePeer) -> Client:
    """Earnings are available at once (no holding period) for the payout tests."""
    tips = replace(config.tips, payout_hold_days=0.0)
    return await make_client(stripe=stripe_config(config, stripe_peer).stripe, tips=tips)


async def test_payout_is_a_connect_transfer_and_a_later_refund_leaves_a_debt(
    paying_client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    client = paying_client
    creator, fan = await creator_and_fan(client)
    account = stripe_peer.add_account()
    admin = await admin_headers(client, db)
    resp = await client.put(
        f"/api/v1/admin/creators/{creator['user']['id']}/money",
        json={"platform_fee_bps": None, "stripe_account_id": account}, headers=admin,
    )  # fmt: skip
    assert resp.status == 200, await resp.text()
    _, events = await _paid_tip(client, stripe_peer, fan["token"])
    # With a connected account the tip was a destination charge, the platform's share its fee.
    (call,) = _intents(stripe_peer)
    assert call.params["transfer_data"] == {"destination": account}
    assert call.params["application_fee_amount"] == "200"
    payout = await client.post(
        "/api/v1/me/payouts", json={"currency": "usd"}, headers=bearer(creator["token"])
    )
    assert payout.status == 201, await payout.text()
    assert (await payout.json())["payout"]["status"] == "paid"
    (transfer,) = stripe_peer.transfers.values()
    assert (transfer["amount"], transfer["destination"]) == (800, account)
    assert (await _balances(db, creator["user"]["id"]))["creator"] == 0

    # The viewer is refunded after the creator was paid: the creator now owes their share.
    charge = _of(events, "charge.succeeded")["data"]["object"]["id"]
    await deliver_all(client, stripe_peer.refund(charge))
    assert (await _balances(db, creator["user"]["id"]))["creator"] == 800
    held = await client.post(
        "/api/v1/me/payouts", json={"currency": "usd"}, headers=bearer(creator["token"])
    )
    assert held.status == 409 and "owe" in (await held.json())["error"]["message"]
    mine = await client.get("/api/v1/me/payouts", headers=bearer(creator["token"]))
    assert (await mine.json())["summary"]["usd"]["debt_minor"] == 800
    assert (await Ledger(db).check()).ok


async def test_a_lost_dispute_after_a_payout_drives_the_balance_negative(
    paying_client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    client = paying_client
    creator, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"])
    payout = await client.post(
        "/api/v1/me/payouts", json={"currency": "usd"}, headers=bearer(creator["token"])
    )
    assert payout.status == 201  # a manual payout: no connected account
    charge = _of(events, "charge.succeeded")["data"]["object"]["id"]
    opened = stripe_peer.dispute(charge)
    dispute_id = opened[0]["data"]["object"]["id"]
    await deliver_all(client, [*opened, *stripe_peer.close_dispute(dispute_id, won=False)])
    balances = await _balances(db, creator["user"]["id"])
    assert (balances["creator"], balances["disputes"]) == (800, -1000)
    held = await client.post(
        "/api/v1/me/payouts", json={"currency": "usd"}, headers=bearer(creator["token"])
    )
    assert held.status == 409
    assert (await Ledger(db).check()).ok


async def test_one_card_is_limited_across_accounts(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer
) -> None:
    tips = replace(config.tips, card_tips_per_hour=2)
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe, tips=tips)
    _, fan = await creator_and_fan(client)
    other = await register(client, "other@example.com", display_name="Other")
    client.session.cookie_jar.clear()
    for n, who in enumerate((fan, other)):
        resp = await _tip(client, who["token"], f"card{n}", payment_method="pm_card_visa")
        assert resp.status == 201, await resp.text()
    # The same card from a third request, whichever account sends it, waits an hour.
    limited = await _tip(client, fan["token"], "card2", payment_method="pm_card_visa")
    assert limited.status == 429 and limited.headers["Retry-After"] == "3600"
    assert "card" in (await limited.json())["error"]["message"]
    # Another card, or the browser flow, is not held by it.
    fresh = await _tip(client, fan["token"], "card3", payment_method="pm_card_mastercard")
    assert fresh.status == 201, await fresh.text()


async def test_an_event_whose_handling_failed_is_applied_when_redelivered(
    client: Client, stripe_peer: StripePeer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1")
    pi_id = (await resp.json())["client_secret"].split("_secret_")[0]
    succeeded = _of(stripe_peer.succeed_payment_intent(pi_id), "payment_intent.succeeded")
    app = client.app
    assert app is not None
    tips = app[TIPS]

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("the database went away mid-event")

    with monkeypatch.context() as patch:
        patch.setattr(tips, "settle", broken)
        patch.setattr(tips, "settle_event", broken)
        failed = await deliver(client, succeeded)
    assert failed.status == 500  # Stripe retries it
    assert (await _balances(db, creator["user"]["id"]))["creator"] == 0
    assert await deliver_all(client, [succeeded]) == ["processed"]
    assert (await _balances(db, creator["user"]["id"]))["creator"] == -800
    assert await deliver_all(client, [succeeded]) == ["duplicate"]


async def test_signed_but_malformed_events_are_400_and_change_nothing(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"], "k1")
    charge = _of(events, "charge.succeeded")["data"]["object"]["id"]
    before = await _balances(db, creator["user"]["id"])
    disputed = stripe_peer.dispute(charge)[0]
    refunded = stripe_peer.refund(charge)[0]
    succeeded = _of(events, "payment_intent.succeeded")
    object_id = {**refunded["data"]["object"]}
    del object_id["id"]
    malformed = [
        dict(succeeded, id="evt_bad_created", created="abc"),
        dict(disputed, data={"object": {**disputed["data"]["object"], "amount": "lots"}}),
        dict(disputed, id="evt_bad_currency",
             data={"object": {**disputed["data"]["object"], "currency": 840}}),
        dict(refunded, data={"object": {**refunded["data"]["object"], "amount_refunded": 1.5}}),
        dict(refunded, id="evt_no_id", data={"object": object_id}),
    ]  # fmt: skip
    for event in malformed:
        resp = await deliver(client, event)
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["message"].startswith("webhook refused: ")
    assert await _balances(db, creator["user"]["id"]) == before
    # Refused, not consumed: the same events, well-formed (a fixed release, a resend from
    # Stripe's dashboard), are still applied.
    assert await deliver_all(client, [disputed, refunded]) == ["processed", "processed"]
    assert (await _balances(db, creator["user"]["id"]))["disputes"] == -1000
    assert (await Ledger(db).check()).ok


async def test_events_that_are_not_a_tip_of_ours_are_acknowledged_and_ignored(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    resp = await _tip(client, fan["token"], "k1")
    pi_id = (await resp.json())["client_secret"].split("_secret_")[0]
    succeeded = _of(stripe_peer.succeed_payment_intent(pi_id), "payment_intent.succeeded")
    intent = succeeded["data"]["object"]
    ignored = [
        # '²' passes str.isdigit(), and int() refuses it.
        dict(succeeded, id="evt_sup", data={"object": {**intent, "metadata": {"tip_id": "²"}}}),
        dict(succeeded, id="evt_huge",
             data={"object": {**intent, "metadata": {"tip_id": "9" * 30}}}),
        dict(succeeded, id="evt_list", data={"object": {**intent, "metadata": ["tip_id"]}}),
        dict(succeeded, id="evt_failed", type="payment_intent.payment_failed",
             data={"object": {**intent, "metadata": {}, "last_payment_error": "no"}}),
    ]  # fmt: skip
    assert await deliver_all(client, ignored) == ["ignored"] * 4
    assert (await _balances(db, creator["user"]["id"]))["creator"] == 0


async def test_a_signed_payload_nested_too_deep_is_400(client: Client) -> None:
    body = b'{"id": "evt_deep", "type": "x", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    headers = {"Stripe-Signature": sign_payload(body, SECRET), "Content-Type": "application/json"}
    resp = await client.post("/webhooks/stripe", data=body, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == "webhook refused: payload is not JSON"


@pytest.mark.parametrize(
    "header", ["t=²,v1=00", "t=٣,v1=00", "t=99999999999999999999999,v1=00", "t=,v1=", "x", ""]
)
async def test_a_malformed_signature_header_is_400(client: Client, header: str) -> None:
    resp = await client.post(
        "/webhooks/stripe", data=b"{}",
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )  # fmt: skip
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"
