"""The Stripe-shaped peer, exercised through the real `stripe` async client as livecore uses
it (StripeClient, AIOHTTPClient, no retries), so the peer answers what the client expects."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import stripe

from tests.support.stripe_peer import (
    API_VERSION,
    Obj,
    StripePeer,
    _next_period_end,
    event_body,
    parse_form,
    sign_payload,
    stripe_fee,
)

SECRET = "whsec_peer_test"


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    # stripe 16 reads (or creates) ~/.config/stripe/telemetry_id on the event loop at its
    # first request, which blockbuster rightly refuses.
    monkeypatch.setattr(stripe, "enable_telemetry", False)


@asynccontextmanager
async def connect(
    peer: StripePeer, key: str = "sk_test_peer", timeout_s: float = 2.0
) -> AsyncIterator[stripe.StripeClient]:
    """A StripeClient as livecore builds one, pointed at the peer; its session is closed."""
    # The client passes its timeout to every aiohttp request as `timeout=` (a float would
    # also do: aiohttp 3.14 makes it ClientTimeout(total=...)), overriding the session's.
    # Our own session, as livecore's: the library's would load a CA bundle on the loop.
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    session = aiohttp.ClientSession(timeout=timeout)
    http = stripe.AIOHTTPClient(timeout=timeout, session=session)
    try:
        yield stripe.StripeClient(
            key, base_addresses={"api": peer.url}, http_client=http, max_network_retries=0
        )
    finally:
        await session.close()  # http.close_async() closes only a session the library made


@pytest.fixture
async def api(stripe_peer: StripePeer) -> AsyncIterator[stripe.StripeClient]:
    async with connect(stripe_peer) as client:
        yield client


def _of(events: list[Obj], kind: str) -> Obj:
    (event,) = (e for e in events if e["type"] == kind)
    assert event["object"] == "event" and event["id"].startswith("evt_")
    assert event["api_version"] == API_VERSION and event["livemode"] is False
    assert isinstance(event["created"], int) and event["pending_webhooks"] == 1
    assert set(event["request"]) == {"id", "idempotency_key"}
    obj: Obj = event["data"]["object"]
    return obj


async def _paid_charge(peer: StripePeer, api: stripe.StripeClient, amount: int = 1000) -> str:
    intent = await api.v1.payment_intents.create_async({"amount": amount, "currency": "usd"})
    charge: str = _of(peer.succeed_payment_intent(intent.id), "charge.succeeded")["id"]
    return charge


def test_api_version_is_the_clients() -> None:
    # The peer's shapes follow this version: review them when stripe is upgraded.
    assert stripe.api_version == API_VERSION


def test_form_parsing_nests_hashes_and_lists() -> None:
    parsed = parse_form(
        "amount=1000&metadata[tip_id]=7&line_items[0][price]=price_1&line_items[0][quantity]=1"
        "&subscription_data[transfer_data][destination]=acct_1&expand[]=a&expand[]=b.c"
    )
    assert parsed == {
        "amount": "1000",
        "metadata": {"tip_id": "7"},
        "line_items": [{"price": "price_1", "quantity": "1"}],
        "subscription_data": {"transfer_data": {"destination": "acct_1"}},
        "expand": ["a", "b.c"],
    }


async def test_a_payment_intent_is_created_recorded_and_retrieved(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    intent = await api.v1.payment_intents.create_async(
        {"amount": 1000, "currency": "usd", "metadata": {"tip_id": "7"},
         "automatic_payment_methods": {"enabled": True}, "application_fee_amount": 200,
         "transfer_data": {"destination": stripe_peer.add_account()}},
        {"idempotency_key": "tip-7"},
    )  # fmt: skip
    assert intent.id.startswith("pi_") and intent.object == "payment_intent"
    assert intent.status == "requires_payment_method" and intent.latest_charge is None
    assert intent.client_secret is not None
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.metadata.to_dict() == {"tip_id": "7"} and intent.livemode is False
    (call,) = stripe_peer.requests
    assert (call.method, call.path, call.idempotency_key) == (
        "POST",
        "/v1/payment_intents",
        "tip-7",
    )
    assert call.params["amount"] == "1000" and call.params["metadata"] == {"tip_id": "7"}
    again = await api.v1.payment_intents.retrieve_async(intent.id)
    assert again.to_dict() == intent.to_dict()


async def test_a_repeated_idempotency_key_replays_the_first_answer(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    params: Any = {"amount": 1000, "currency": "usd"}
    first = await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    second = await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert second.to_dict() == first.to_dict()
    assert second.last_response is not None
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(stripe_peer.payment_intents) == 1 and len(stripe_peer.requests) == 2


async def test_a_key_reused_with_other_params_is_an_idempotency_error(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    await api.v1.payment_intents.create_async(
        {"amount": 1000, "currency": "usd"}, {"idempotency_key": "k"}
    )
    with pytest.raises(stripe.IdempotencyError) as caught:
        await api.v1.payment_intents.create_async(
            {"amount": 2000, "currency": "usd"}, {"idempotency_key": "k"}
        )
    assert caught.value.http_status == 400
    assert len(stripe_peer.payment_intents) == 1


async def test_a_declined_card_is_a_card_error_carrying_its_payment_intent(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    params: Any = {"amount": 1000, "currency": "usd", "confirm": True, "off_session": True,
                   "payment_method": "pm_card_chargeDeclined",
                   "payment_method_types": ["card"]}  # fmt: skip
    with pytest.raises(stripe.CardError) as caught:
        await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    exc = caught.value
    assert (exc.http_status, exc.code) == (402, "card_declined")
    assert exc.user_message == "Your card was declined."
    assert exc.error is not None and exc.error.decline_code == "generic_decline"
    assert exc.error.payment_intent is not None
    intent = exc.error.payment_intent
    assert intent.status == "requires_payment_method" and intent.latest_charge is None
    assert intent.last_payment_error is not None
    assert intent.id in stripe_peer.payment_intents
    _of(stripe_peer.events, "payment_intent.payment_failed")
    # A decline is the endpoint's answer: Stripe stores it under the key like a success.
    with pytest.raises(stripe.CardError) as replayed:
        await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert replayed.value.json_body == exc.json_body
    assert len(stripe_peer.payment_intents) == 1


async def test_a_test_visa_card_confirms_and_the_charge_shows_stripes_fee(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    intent = await api.v1.payment_intents.create_async(
        {"amount": 1000, "currency": "usd", "confirm": True, "payment_method": "pm_card_visa",
         "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}}
    )  # fmt: skip
    assert intent.status == "succeeded" and intent.amount_received == 1000
    assert isinstance(intent.latest_charge, str)
    plain = await api.v1.charges.retrieve_async(intent.latest_charge)
    assert isinstance(plain.balance_transaction, str)
    assert plain.balance_transaction.startswith("txn_")
    charge = await api.v1.charges.retrieve_async(
        intent.latest_charge, {"expand": ["balance_transaction"]}
    )
    txn = charge.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.amount, txn.fee, txn.net, txn.currency) == (1000, 59, 941, "usd")
    assert charge.payment_intent == intent.id
    assert [e["type"] for e in stripe_peer.events] == [
        "charge.succeeded",
        "payment_intent.succeeded",
    ]


async def test_confirming_needs_a_return_url_unless_redirects_are_refused(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    base: Any = {"amount": 1000, "currency": "usd", "confirm": True,
                 "payment_method": "pm_card_visa"}  # fmt: skip
    for params in (base, base | {"automatic_payment_methods": {"enabled": True}}):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            await api.v1.payment_intents.create_async(params)
        assert caught.value.param == "return_url"
    assert stripe_peer.payment_intents == {}
    for params in (
        base | {"return_url": "https://example.com/back"},
        base | {"automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}},
        base | {"payment_method_types": ["card"]},
    ):
        assert (await api.v1.payment_intents.create_async(params)).status == "succeeded"


async def test_a_card_that_needs_authentication_waits_on_session_and_declines_off_it(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    base: Any = {"amount": 1000, "currency": "usd", "confirm": True,
                 "payment_method": "pm_card_authenticationRequired",
                 "payment_method_types": ["card"]}  # fmt: skip
    waiting = await api.v1.payment_intents.create_async(base)
    assert waiting.status == "requires_action" and waiting.client_secret
    with pytest.raises(stripe.CardError) as caught:
        await api.v1.payment_intents.create_async(base | {"off_session": True})
    assert caught.value.code == "authentication_required"


async def test_a_saved_card_is_used_only_with_its_customer(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    ann = (await api.v1.customers.create_async({"email": "ann@example.com"})).id
    bob = (await api.v1.customers.create_async({"email": "bob@example.com"})).id
    card = stripe_peer.save_card(ann)
    assert (await api.v1.payment_methods.retrieve_async(card)).customer == ann
    base: Any = {"amount": 1000, "currency": "usd", "confirm": True, "payment_method": card,
                 "payment_method_types": ["card"]}  # fmt: skip
    for params, param in ((base, "customer"), (base | {"customer": bob}, "payment_method")):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            await api.v1.payment_intents.create_async(params)
        assert caught.value.param == param
    paid = await api.v1.payment_intents.create_async(base | {"customer": ann})
    assert paid.status == "succeeded" and paid.payment_method == card


async def test_a_card_not_saved_is_used_once_unless_saved_by_the_payment(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    ann = (await api.v1.customers.create_async({"email": "ann@example.com"})).id
    base: Any = {"amount": 1000, "currency": "usd", "confirm": True,
                 "payment_method_types": ["card"]}  # fmt: skip
    once = await api.v1.payment_intents.create_async(base | {"payment_method": "pm_card_visa"})
    assert isinstance(once.payment_method, str) and once.payment_method != "pm_card_visa"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await api.v1.payment_intents.create_async(base | {"payment_method": once.payment_method})
    assert caught.value.param == "payment_method"
    saved = await api.v1.payment_intents.create_async(
        base | {"payment_method": "pm_card_visa", "customer": ann,
                "setup_future_usage": "off_session"}
    )  # fmt: skip
    assert isinstance(saved.payment_method, str)
    assert stripe_peer.payment_methods[saved.payment_method]["customer"] == ann
    again = await api.v1.payment_intents.create_async(
        base | {"payment_method": saved.payment_method, "customer": ann}
    )
    assert again.status == "succeeded"


def test_the_fee_is_2_9_percent_plus_30_rounded_half_up() -> None:
    assert [stripe_fee(a) for a in (1000, 500, 50, 12345)] == [59, 45, 31, 388]


async def test_rate_limits_and_server_errors_are_raised_and_not_stored(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    params: Any = {"amount": 1000, "currency": "usd"}
    stripe_peer.fail_next("/v1/payment_intents", "429")
    with pytest.raises(stripe.RateLimitError) as limited:
        await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert limited.value.http_status == 429
    stripe_peer.fail_next("/v1/payment_intents", "500")
    with pytest.raises(stripe.APIError) as failed:
        await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert failed.value.http_status == 500
    assert not stripe_peer.payment_intents
    # Neither answer was stored under the key: this retry really runs.
    intent = await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert list(stripe_peer.payment_intents) == [intent.id]
    assert [r.fault for r in stripe_peer.requests] == ["429", "500", None]


async def test_a_timeout_is_a_connection_error_and_a_retry_runs(stripe_peer: StripePeer) -> None:
    params: Any = {"amount": 1000, "currency": "usd"}
    stripe_peer.fail_next("/v1/payment_intents", "timeout")
    async with connect(stripe_peer, timeout_s=0.3) as api:
        with pytest.raises(stripe.APIConnectionError) as caught:
            await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert not stripe_peer.payment_intents
        await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert len(stripe_peer.payment_intents) == 1


async def test_a_timeout_after_commit_is_found_by_a_retry_with_the_same_key(
    stripe_peer: StripePeer,
) -> None:
    params: Any = {"amount": 1000, "currency": "usd"}
    stripe_peer.fail_next("/v1/payment_intents", "timeout_after_commit")
    async with connect(stripe_peer, timeout_s=0.3) as api:
        with pytest.raises(stripe.APIConnectionError):
            await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
        (created,) = stripe_peer.payment_intents
        intent = await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert intent.id == created and len(stripe_peer.payment_intents) == 1


async def test_a_stalled_body_escapes_the_client_as_a_bare_timeout(
    stripe_peer: StripePeer,
) -> None:
    # stripe's AIOHTTPClient wraps only the request; reading the body is outside its except.
    stripe_peer.fail_next("/v1/payment_intents", "stall_body")
    async with connect(stripe_peer, timeout_s=0.3) as api:
        with pytest.raises(TimeoutError) as caught:
            await api.v1.payment_intents.create_async({"amount": 1000, "currency": "usd"})
    assert not isinstance(caught.value, stripe.StripeError)
    assert len(stripe_peer.payment_intents) == 1
    # Nor does it release the response: its connection is reported unclosed once collected.
    with pytest.warns(ResourceWarning, match="Unclosed connection"):
        del caught
        gc.collect()


async def test_a_dropped_connection_is_a_connection_error_and_a_retry_runs(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    params: Any = {"amount": 1000, "currency": "usd"}
    stripe_peer.fail_next("/v1/payment_intents", "reset")
    with pytest.raises(stripe.APIConnectionError) as caught:
        await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert isinstance(caught.value.__cause__, aiohttp.ServerDisconnectedError)
    await api.v1.payment_intents.create_async(params, {"idempotency_key": "k"})
    assert len(stripe_peer.payment_intents) == 1


async def test_refused_connections_are_connection_errors_until_it_listens_again(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    params: Any = {"amount": 1000, "currency": "usd"}
    await api.v1.payment_intents.create_async(params)  # leaves a pooled keep-alive connection
    url = stripe_peer.url
    await stripe_peer.stop_listening()
    with pytest.raises(stripe.APIConnectionError) as caught:
        await api.v1.payment_intents.create_async(params)
    # A refusal means the request never reached Stripe (unlike a timeout or a drop).
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    await stripe_peer.start_listening()
    assert stripe_peer.url == url
    await api.v1.payment_intents.create_async(params)
    assert len(stripe_peer.payment_intents) == 2


async def test_close_cuts_a_hanging_request_instead_of_waiting() -> None:
    peer = StripePeer()
    await peer.start()
    peer.fail_next("/v1/", "timeout")
    try:
        async with connect(peer, timeout_s=30) as api:
            call = asyncio.create_task(api.v1.customers.create_async({"email": "a@example.com"}))
            async with asyncio.timeout(5):
                while not peer.requests:  # noqa: ASYNC110  (nothing to wait on but the list)
                    await asyncio.sleep(0.01)
                await peer.close()
                with pytest.raises(stripe.APIConnectionError):
                    await call
    finally:
        await peer.close()  # idempotent


def test_monthly_periods_keep_the_anchor_day() -> None:
    jan31 = int(datetime(2025, 1, 31, 12, tzinfo=UTC).timestamp())
    feb = _next_period_end(jan31, jan31)
    mar = _next_period_end(jan31, feb)
    days = [datetime.fromtimestamp(t, UTC).date().isoformat() for t in (feb, mar)]
    assert days == ["2025-02-28", "2025-03-31"]


async def test_a_key_that_is_not_a_test_secret_key_is_refused(stripe_peer: StripePeer) -> None:
    async with connect(stripe_peer, key="sk_live_nope") as api:
        with pytest.raises(stripe.AuthenticationError) as caught:
            await api.v1.customers.create_async({"email": "a@example.com"})
    assert caught.value.http_status == 401
    assert not stripe_peer.customers


async def test_unknown_objects_urls_and_params_are_invalid_requests(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await api.v1.payment_intents.retrieve_async("pi_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as url:
        await api.v1.payouts.retrieve_async("po_1")
    assert url.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await api.v1.customers.create_async({"email": "a@example.com", "nmae": "x"})  # type: ignore[arg-type]  # a typo on purpose
    assert (unknown.value.http_status, unknown.value.param) == (400, "nmae")
    with pytest.raises(stripe.InvalidRequestError) as absent:
        await api.v1.payment_intents.create_async({"currency": "usd"})  # type: ignore[typeddict-item]  # amount left out on purpose
    assert (absent.value.code, absent.value.param) == ("parameter_missing", "amount")


async def _subscribe(peer: StripePeer, api: stripe.StripeClient) -> tuple[str, list[Obj]]:
    price = await api.v1.prices.create_async(
        {"unit_amount": 500, "currency": "usd", "recurring": {"interval": "month"},
         "product_data": {"name": "Gold"}, "metadata": {"tier_id": "3"}},
    )  # fmt: skip
    session = await api.v1.checkout.sessions.create_async(
        {"mode": "subscription", "line_items": [{"price": price.id, "quantity": 1}],
         "customer_email": "fan@example.com", "success_url": "http://127.0.0.1/ok",
         "cancel_url": "http://127.0.0.1/no", "client_reference_id": "fan-9",
         "metadata": {"tier_id": "3"},
         "subscription_data": {"metadata": {"tier_id": "3", "fan_id": "9"},
                               "application_fee_percent": 20,
                               "transfer_data": {"destination": peer.add_account()}}},
        {"idempotency_key": "checkout-1"},
    )  # fmt: skip
    assert session.status == "open" and session.url is not None
    assert session.url.startswith(f"{peer.url}/checkout/cs_test_")
    events = peer.complete_checkout(session.id)
    return _of(events, "customer.subscription.created")["id"], events


async def test_completing_checkout_makes_a_subscription_and_a_paid_invoice(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    sub_id, events = await _subscribe(stripe_peer, api)
    assert [e["type"] for e in events] == [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
    ]
    session = _of(events, "checkout.session.completed")
    assert (session["status"], session["subscription"]) == ("complete", sub_id)
    assert session["client_reference_id"] == "fan-9"
    sub = await api.v1.subscriptions.retrieve_async(sub_id)
    assert sub.status == "active" and sub.cancel_at_period_end is False
    assert sub.metadata.to_dict() == {"tier_id": "3", "fan_id": "9"}
    assert sub.customer in stripe_peer.customers
    item = sub["items"].data[0]  # `sub.items` is the field, not dict.items
    assert item.price.unit_amount == 500
    start = datetime.fromtimestamp(item.current_period_start, UTC)
    end = datetime.fromtimestamp(item.current_period_end, UTC)
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == 1
    invoice = _of(events, "invoice.paid")
    assert (invoice["status"], invoice["amount_paid"], invoice["currency"]) == ("paid", 500, "usd")
    assert invoice["parent"]["subscription_details"] == {
        "subscription": sub_id,
        "metadata": {"tier_id": "3", "fan_id": "9"},
    }
    assert invoice["lines"]["data"][0]["period"] == {
        "start": item.current_period_start,
        "end": item.current_period_end,
    }
    # The charge: the invoice's payment names its PaymentIntent, whose latest_charge it is.
    payment = invoice["payments"]["data"][0]["payment"]
    paid = await api.v1.payment_intents.retrieve_async(
        payment["payment_intent"], {"expand": ["latest_charge.balance_transaction"]}
    )
    assert isinstance(paid.latest_charge, stripe.Charge)
    assert paid.application_fee_amount == 100
    txn = paid.latest_charge.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction) and txn.fee == stripe_fee(500)


async def test_subscription_updates_and_cancellation_emit_events(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    sub_id, _ = await _subscribe(stripe_peer, api)
    updated = await api.v1.subscriptions.update_async(sub_id, {"cancel_at_period_end": True})
    assert updated.cancel_at_period_end is True
    assert updated.cancel_at == updated["items"].data[0].current_period_end
    event = stripe_peer.events[-1]
    assert event["type"] == "customer.subscription.updated"
    assert event["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert event["request"]["id"] is not None
    # An update that changes nothing sends nothing.
    await api.v1.subscriptions.update_async(sub_id, {"cancel_at_period_end": True})
    assert stripe_peer.events[-1] is event
    canceled = await api.v1.subscriptions.cancel_async(sub_id)
    assert canceled.status == "canceled"
    deleted = _of(stripe_peer.events[-1:], "customer.subscription.deleted")
    assert (deleted["id"], deleted["status"]) == (sub_id, "canceled")


async def test_renewals_advance_the_period_and_a_failed_one_is_past_due(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    sub_id, _ = await _subscribe(stripe_peer, api)
    first_end = stripe_peer.subscriptions[sub_id]["items"]["data"][0]["current_period_end"]
    renewed = stripe_peer.renew(sub_id)
    assert [e["type"] for e in renewed] == ["invoice.paid", "customer.subscription.updated"]
    invoice = _of(renewed, "invoice.paid")
    assert invoice["billing_reason"] == "subscription_cycle"
    assert invoice["lines"]["data"][0]["period"]["start"] == first_end
    failed = stripe_peer.renew(sub_id, paid=False)
    assert [e["type"] for e in failed] == [
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert _of(failed, "invoice.payment_failed")["amount_paid"] == 0
    update = next(e for e in failed if e["type"] == "customer.subscription.updated")
    assert update["data"]["object"]["status"] == "past_due"
    assert update["data"]["previous_attributes"]["status"] == "active"
    assert (await api.v1.subscriptions.retrieve_async(sub_id)).status == "past_due"


async def test_a_subscription_set_to_cancel_ends_instead_of_renewing(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    sub_id, _ = await _subscribe(stripe_peer, api)
    await api.v1.subscriptions.update_async(sub_id, {"cancel_at_period_end": True})
    (ended,) = stripe_peer.renew(sub_id)
    assert ended["type"] == "customer.subscription.deleted"
    assert ended["data"]["object"]["status"] == "canceled"
    with pytest.raises(ValueError, match="canceled"):
        stripe_peer.end_subscription(sub_id)


async def test_transfers_go_only_to_known_connected_accounts(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    account = stripe_peer.add_account()
    transfer = await api.v1.transfers.create_async(
        {"amount": 800, "currency": "usd", "destination": account,
         "metadata": {"payout_id": "4"}, "transfer_group": "payout-4"},
        {"idempotency_key": "livecore-payout-4"},
    )  # fmt: skip
    assert transfer.id.startswith("tr_") and transfer.destination == account
    assert (transfer.amount, transfer.transfer_group) == (800, "payout-4")
    for destination in ("acct_invalid", "acct_unknown"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            await api.v1.transfers.create_async(
                {"amount": 800, "currency": "usd", "destination": destination}
            )
        assert (caught.value.http_status, caught.value.code) == (400, "account_invalid")
    assert list(stripe_peer.transfers) == [transfer.id]


async def test_refunds_accumulate_on_the_charge(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    charge_id = await _paid_charge(stripe_peer, api)
    first = stripe_peer.refund(charge_id, 300)
    assert [e["type"] for e in first] == ["charge.refunded", "refund.created"]
    second = stripe_peer.refund(charge_id)  # the rest
    charge = _of(second, "charge.refunded")
    assert (charge["amount_refunded"], charge["refunded"]) == (1000, True)
    assert [r["amount"] for r in charge["refunds"]["data"]] == [700, 300]
    assert _of(second, "refund.created")["charge"] == charge_id
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await api.v1.refunds.create_async({"charge": charge_id})
    assert caught.value.code == "charge_already_refunded"


async def test_a_refund_through_the_api_names_the_payment_intent(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    charge_id = await _paid_charge(stripe_peer, api)
    intent = stripe_peer.charges[charge_id]["payment_intent"]
    refund = await api.v1.refunds.create_async({"payment_intent": intent, "amount": 250})
    assert (refund.amount, refund.charge, refund.status) == (250, charge_id, "succeeded")
    charge = await api.v1.charges.retrieve_async(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (250, False)
    assert _of(stripe_peer.events[-2:], "charge.refunded")["amount_refunded"] == 250


async def test_disputes_open_and_close_won_or_lost(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    charge_id = await _paid_charge(stripe_peer, api)
    dispute = _of(stripe_peer.dispute(charge_id), "charge.dispute.created")
    assert dispute["id"].startswith("dp_") and dispute["status"] == "needs_response"
    assert (dispute["amount"], dispute["currency"], dispute["charge"]) == (1000, "usd", charge_id)
    assert dispute["payment_intent"] == stripe_peer.charges[charge_id]["payment_intent"]
    (closed,) = stripe_peer.close_dispute(dispute["id"], won=False)
    assert closed["type"] == "charge.dispute.closed"
    assert closed["data"]["object"]["status"] == "lost"
    assert closed["data"]["previous_attributes"] == {"status": "needs_response"}


async def test_succeeding_and_failing_payment_intents_emit_their_events(
    stripe_peer: StripePeer, api: stripe.StripeClient
) -> None:
    intent = await api.v1.payment_intents.create_async(
        {"amount": 1000, "currency": "usd", "metadata": {"tip_id": "1"}}
    )
    failed = _of(stripe_peer.fail_payment_intent(intent.id), "payment_intent.payment_failed")
    assert failed["last_payment_error"]["code"] == "card_declined"
    events = stripe_peer.succeed_payment_intent(intent.id)
    charge = _of(events, "charge.succeeded")
    succeeded = _of(events, "payment_intent.succeeded")
    assert (succeeded["status"], succeeded["latest_charge"]) == ("succeeded", charge["id"])
    assert succeeded["metadata"] == {"tip_id": "1"}
    assert charge["payment_intent"] == intent.id and charge["amount_refunded"] == 0
    assert charge["payment_method_details"]["card"]["fingerprint"]
    with pytest.raises(ValueError, match="succeeded"):
        stripe_peer.fail_payment_intent(intent.id)


def test_signatures_verify_with_stripes_library_and_tampering_fails() -> None:
    event = {"id": "evt_1", "object": "event", "type": "charge.refunded",
             "data": {"object": {"id": "ch_1", "amount": 1000}}}  # fmt: skip
    body = event_body(event)
    header = sign_payload(body, SECRET)
    verified = stripe.Webhook.construct_event(body, header, SECRET)
    assert verified.id == "evt_1" and verified.type == "charge.refunded"
    tampered = body.replace(b'"amount": 1000', b'"amount": 9000')
    assert tampered != body
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, header, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, sign_payload(body, "whsec_other"), SECRET)
    stale = sign_payload(body, SECRET, int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, stale, SECRET)
