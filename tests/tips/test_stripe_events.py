"""A verified Stripe event is read into one value per kind livecore applies (Ignored for the
rest); a field it cannot read is kept as Unreadable and refused, with the reason the webhook
answers, only when the handler needs it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from livecore.tips.stripe.events import (
    APPLIED_TYPES,
    CardCharged,
    ChargeRefunded,
    DisputeChanged,
    Event,
    Ignored,
    InvoiceFailed,
    InvoicePaid,
    MalformedEvent,
    PaymentFailed,
    PaymentSucceeded,
    SubscriptionChanged,
    Unreadable,
    WebhookRefused,
    need,
    verify,
)
from livecore.tips.stripe.objects import DisputeFee, parse_invoice, parse_subscription
from tests.support.stripe_peer import event_body, sign_payload

SECRET = "whsec_events_test"
_OWNER = {"viewer_id": "2", "tier_id": "1", "creator_id": "1"}


def _read(kind: str, obj: Any, **envelope: Any) -> Event:
    event = {
        "id": "evt_1",
        "object": "event",
        "type": kind,
        "created": 1_700_000_000,
        "data": {"object": obj},
        **envelope,
    }
    body = event_body(event)
    return verify(body, sign_payload(body, SECRET), SECRET, 300)


def _refused(value: object) -> str:
    """The reason `need` refuses a field with (the webhook's 400 says it)."""
    assert isinstance(value, Unreadable), value
    with pytest.raises(MalformedEvent) as refused:
        need(value)
    return str(refused.value)


def test_the_envelope_is_read() -> None:
    event = _read("charge.succeeded", {})
    assert (event.id, event.type, event.created) == ("evt_1", "charge.succeeded", 1_700_000_000)
    assert _read("charge.succeeded", {}, created=None).created == 0


@pytest.mark.parametrize("created", ["abc", -1, 1.5, True, 2**63])
def test_an_unreadable_created_is_refused_when_needed(created: object) -> None:
    event = _read("charge.succeeded", {}, created=created)
    assert _refused(event.created) == "event created is not a Unix time"


def test_a_kind_livecore_does_not_apply_is_ignored_whatever_its_fields() -> None:
    event = _read("customer.created", {"id": 7}, created="abc")
    assert event.body == Ignored()
    assert "customer.created" not in APPLIED_TYPES


def test_a_succeeded_payment_is_read() -> None:
    intent = {
        "id": "pi_1",
        "amount": 1000,
        "currency": "usd",
        "metadata": {"tip_id": "5"},
        "latest_charge": {"id": "ch_1", "object": "charge"},
    }
    assert _read("payment_intent.succeeded", intent).body == PaymentSucceeded(
        "pi_1", 5, 1000, "usd", "ch_1"
    )


def test_a_succeeded_payment_keeps_what_is_compared_with_the_tip_as_sent() -> None:
    # Compared with the tip's amount and currency as JSON values are: 1000.0 equals 1000,
    # "USD" does not equal "usd", and a string amount equals no amount.
    read = _read("payment_intent.succeeded", {"id": "pi_1", "amount": 1000.0, "currency": "USD"})
    assert read.body == PaymentSucceeded("pi_1", None, 1000, "USD", None)
    read = _read("payment_intent.succeeded", {"id": "pi_1", "amount": "1000", "currency": 840})
    assert read.body == PaymentSucceeded("pi_1", None, None, None, None)


@pytest.mark.parametrize("metadata", [{"tip_id": "²"}, {"tip_id": "9" * 30}, ["tip_id"], None])
def test_a_payment_naming_no_tip_of_ours_has_no_tip_id(metadata: object) -> None:
    body = _read("payment_intent.succeeded", {"id": "pi_1", "metadata": metadata}).body
    assert isinstance(body, PaymentSucceeded) and body.tip_id is None


def test_a_succeeded_payment_without_a_usable_id_is_refused_when_needed() -> None:
    body = _read("payment_intent.succeeded", {"id": "\x00", "metadata": {"tip_id": "5"}}).body
    assert isinstance(body, PaymentSucceeded) and body.tip_id == 5
    assert _refused(body.payment_ref) == "object id is not a Stripe id"
    assert str(body.payment_ref) == "\x00"  # logged as it came


def test_a_charge_names_the_card_that_paid() -> None:
    charge = {
        "id": "ch_1",
        "payment_intent": "pi_1",
        "payment_method_details": {"card": {"fingerprint": "fp_1"}},
    }
    assert _read("charge.succeeded", charge).body == CardCharged("pi_1", "fp_1")
    charge["payment_method_details"] = {"card": "fp_1"}
    assert _read("charge.succeeded", charge).body == CardCharged("pi_1", None)


@pytest.mark.parametrize("kind", ["payment_intent.payment_failed", "payment_intent.canceled"])
def test_a_failed_payment_is_read_with_its_reason(kind: str) -> None:
    intent: dict[str, Any] = {
        "id": "pi_1",
        "metadata": {"tip_id": "5"},
        "last_payment_error": {"message": "Your card was declined."},
    }
    assert _read(kind, intent).body == PaymentFailed(5, "Your card was declined.")
    intent["last_payment_error"] = "no"
    intent["cancellation_reason"] = "abandoned"
    assert _read(kind, intent).body == PaymentFailed(5, "abandoned")
    del intent["cancellation_reason"]
    assert _read(kind, intent).body == PaymentFailed(5, "failed")
    # Text PostgreSQL can store: no NUL, no lone surrogate, at most 500 characters.
    intent["cancellation_reason"] = "a\x00b\ud800" + "x" * 600
    body = _read(kind, intent).body
    assert isinstance(body, PaymentFailed) and body.reason == "ab?" + "x" * 497


def test_a_refund_is_read_and_its_unreadable_fields_refused_when_needed() -> None:
    charge = {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 400}
    assert _read("charge.refunded", charge).body == ChargeRefunded("ch_1", "pi_1", 400)
    assert _read("charge.refunded", {"id": "ch_1"}).body == ChargeRefunded("ch_1", None, 0)
    body = _read("charge.refunded", {"id": 1, "amount_refunded": 1.5}).body
    assert isinstance(body, ChargeRefunded)
    assert _refused(body.charge_ref) == "object id is not a Stripe id"
    assert _refused(body.refunded_total_minor) == (
        "object amount_refunded is not an amount in minor units"
    )


@pytest.mark.parametrize(
    "kind", ["charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"]
)
def test_a_dispute_is_read_with_its_fees(kind: str) -> None:
    dispute = {
        "id": "dp_1",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "amount": 1000,
        "currency": "USD",
        "status": "needs_response",
        "balance_transactions": [{"id": "txn_1", "fee": 1500, "currency": "usd"}, "txn_2"],
    }
    assert _read(kind, dispute).body == DisputeChanged(
        "dp_1", "ch_1", "pi_1", 1000, "usd", "needs_response", (DisputeFee("txn_1", 1500, "usd"),)
    )


def test_a_dispute_of_no_charge_has_no_charge_ref_and_its_bad_fields_are_unreadable() -> None:
    body = _read("charge.dispute.created", {"amount": "lots", "currency": 840}).body
    assert isinstance(body, DisputeChanged)
    assert (body.charge_ref, body.payment_ref, body.status, body.fees) == (None, None, "", ())
    assert _refused(body.dispute_ref) == "object id is not a Stripe id"
    assert _refused(body.amount_minor) == "object amount is not an amount in minor units"
    assert _refused(body.currency) == "object currency is not a currency code"
    body = _read("charge.dispute.created", {"id": "dp_1", "amount": None}).body
    assert isinstance(body, DisputeChanged)  # a dispute's amount has no default
    assert _refused(body.amount_minor) == "object amount is not an amount in minor units"


@pytest.mark.parametrize(
    "kind",
    ["customer.subscription.created", "customer.subscription.updated",
     "customer.subscription.deleted"],
)  # fmt: skip
def test_a_subscription_is_read_into_objects_value(kind: str) -> None:
    sub = {
        "id": "sub_1",
        "status": "trialing",
        "cancel_at_period_end": True,
        "items": {"data": [{"current_period_end": 2_000_000_000}]},
        "metadata": _OWNER,
    }
    assert _read(kind, sub).body == SubscriptionChanged(parse_subscription(sub))
    assert _read(kind, {"status": "active"}).body == SubscriptionChanged(None)


def test_invoices_are_read_into_objects_value() -> None:
    invoice = {
        "id": "in_1",
        "amount_paid": 500,
        "currency": "usd",
        "parent": {"subscription_details": {"subscription": "sub_1", "metadata": _OWNER}},
    }
    read = parse_invoice(invoice)
    assert read is not None and read.subscription_ref == "sub_1"
    assert _read("invoice.paid", invoice).body == InvoicePaid(read)
    assert _read("invoice.payment_failed", invoice).body == InvoiceFailed(read)
    unusable = {**invoice, "amount_paid": -1}
    assert _read("invoice.paid", unusable).body == InvoicePaid(None)
    assert _read("invoice.payment_failed", unusable).body == InvoiceFailed(None)


def test_every_applied_kind_is_read_into_its_value() -> None:
    values: dict[str, type] = {
        "payment_intent.succeeded": PaymentSucceeded,
        "charge.succeeded": CardCharged,
        "payment_intent.payment_failed": PaymentFailed,
        "payment_intent.canceled": PaymentFailed,
        "charge.refunded": ChargeRefunded,
        "charge.dispute.created": DisputeChanged,
        "charge.dispute.updated": DisputeChanged,
        "charge.dispute.closed": DisputeChanged,
        "customer.subscription.created": SubscriptionChanged,
        "customer.subscription.updated": SubscriptionChanged,
        "customer.subscription.deleted": SubscriptionChanged,
        "invoice.paid": InvoicePaid,
        "invoice.payment_failed": InvoiceFailed,
    }
    assert set(values) == APPLIED_TYPES
    assert {kind: type(_read(kind, {}).body) for kind in APPLIED_TYPES} == values


@pytest.mark.parametrize(
    "event",
    [[], {"id": "evt_1"}, {"id": 1, "type": "x", "data": {"object": {}}},
     {"id": "evt_1", "type": 1, "data": {"object": {}}},
     {"id": "evt_1", "type": "x", "data": {"object": []}}],
)  # fmt: skip
def test_a_signed_payload_that_is_not_an_event_is_refused(event: object) -> None:
    body = json.dumps(event).encode()
    with pytest.raises(WebhookRefused, match="payload is not a Stripe event") as refused:
        verify(body, sign_payload(body, SECRET), SECRET, 300)
    assert not isinstance(refused.value, MalformedEvent)


def test_a_bad_signature_is_refused_before_anything_is_read() -> None:
    body = b"not json at all"
    with pytest.raises(WebhookRefused, match="No signatures found matching"):
        verify(body, sign_payload(body, "whsec_other"), SECRET, 300)
    with pytest.raises(WebhookRefused, match="payload is not JSON"):
        verify(body, sign_payload(body, SECRET), SECRET, 300)
