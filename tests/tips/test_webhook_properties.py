"""Signed Stripe events whose fields are generated (wrong types, huge numbers, NUL, other
scripts' digits, missing pieces) are answered 200 or 400, never a 500, and the ledger still
balances: Stripe retries a 500 for days, and a webhook must never half-apply an event."""

from __future__ import annotations

import contextlib
import copy
import os
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecore.config import Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.conftest import Client, MakeClient, bearer
from tests.support.stripe_peer import StripePeer, event_body, sign_payload
from tests.tips.people import creator_and_fan
from tests.tips.test_stripe_tips import SECRET, stripe_config

_OWNER = {"viewer_id": "2", "tier_id": "1", "creator_id": "1", "fee_bps": "2000"}
# One well-formed object per event type livecore acts on, naming the walk's tip (id 1,
# 1000 usd), tier 1, and users 1 (creator) and 2 (fan).
_OBJECTS: dict[str, dict[str, Any]] = {
    "payment_intent.succeeded": {
        "id": "pi_prop", "amount": 1000, "currency": "usd", "metadata": {"tip_id": "1"},
        "latest_charge": "ch_prop",
    },
    "payment_intent.payment_failed": {
        "id": "pi_prop", "metadata": {"tip_id": "1"}, "last_payment_error": {"message": "no"},
    },
    "charge.succeeded": {
        "id": "ch_prop", "payment_intent": "pi_prop",
        "payment_method_details": {"card": {"fingerprint": "fp_prop"}},
    },
    "charge.refunded": {"id": "ch_prop", "payment_intent": "pi_prop", "amount_refunded": 400},
    "charge.dispute.created": {
        "id": "dp_prop", "charge": "ch_prop", "payment_intent": "pi_prop", "amount": 1000,
        "currency": "usd", "status": "needs_response",
        "balance_transactions": [{"id": "txn_prop", "fee": 1500, "currency": "usd"}],
    },
    "customer.subscription.updated": {
        "id": "sub_prop", "status": "active", "cancel_at_period_end": False,
        "items": {"data": [{"current_period_end": 2_000_000_000}]}, "metadata": _OWNER,
    },
    "invoice.paid": {
        "id": "in_prop", "amount_paid": 500, "currency": "usd",
        "parent": {"subscription_details": {"subscription": "sub_prop", "metadata": _OWNER}},
        "lines": {"data": [{"period": {"start": 1_700_000_000, "end": 2_000_000_000}}]},
        "payments": {"data": [{"payment": {"type": "payment_intent",
                                           "payment_intent": "pi_prop_in"}}]},
    },
    "invoice.payment_failed": {
        "id": "in_prop_failed", "currency": "usd",
        "parent": {"subscription_details": {"subscription": "sub_prop"}},
    },
}  # fmt: skip

_BAD = st.one_of(
    st.none(), st.booleans(), st.text(max_size=10),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["abc", "lots", "²", "٣", "1\n", "\x00", "\ud800", "x" * 3000, 1.5,
                     float("nan"), 2**63, -1, 0, "USD", "", [], {}, [1], {"id": 1}]),
)  # fmt: skip


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path in an object (list items by index), for a mutation to land on."""
    found: list[tuple[str, ...]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found.extend(_paths(value, (*prefix, str(i))))
    return found


def _set(obj: Any, path: tuple[str, ...], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[int(step)] if isinstance(obj, list) else obj[step]
    if isinstance(obj, list):
        obj[int(path[-1])] = value
    else:
        obj[path[-1]] = value


# A mutation lands on the n-th key path of the event (modulo their number): the envelope's
# `created` and `id`, or any field of the object, however deep.
_ENVELOPE = [("created",), ("id",)]
_mutations = st.lists(st.tuples(st.integers(0, 1000), _BAD), min_size=0, max_size=3)


@pytest.fixture
async def client(make_client: MakeClient, config: Config, stripe_peer: StripePeer) -> Client:
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe)
    creator, fan = await creator_and_fan(client)
    tip = await client.post(
        "/api/v1/streams/tipjar/tips", json={"amount_minor": 1000, "currency": "usd"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": "prop"},
    )  # fmt: skip
    assert tip.status == 201 and (await tip.json())["tip"]["id"] == 1
    tier = await client.post(
        "/api/v1/me/tiers", json={"name": "Gold", "price_minor": 500, "currency": "usd"},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert tier.status == 201 and (await tier.json())["tier"]["id"] == 1
    return client


@settings(
    max_examples=250, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(kind=st.sampled_from(sorted(_OBJECTS)), mutations=_mutations)
async def test_generated_signed_events_never_answer_5xx(
    client: Client, db: Database, kind: str, mutations: list[tuple[int, Any]]
) -> None:
    obj = copy.deepcopy(_OBJECTS[kind])
    event: dict[str, Any] = {
        "id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind,
        "created": int(time.time()), "livemode": False, "data": {"object": obj},
    }  # fmt: skip
    paths = _ENVELOPE + [("data", "object", *p) for p in _paths(obj)]
    for n, value in mutations:
        # An earlier mutation may have replaced the container this path goes through.
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _set(event, paths[n % len(paths)], value)
    body = event_body(event)
    headers = {"Stripe-Signature": sign_payload(body, SECRET), "Content-Type": "application/json"}
    resp = await client.post("/webhooks/stripe", data=body, headers=headers)
    assert resp.status in (200, 400), (resp.status, await resp.text(), event)
    if os.environ.get("LIVECORE_PROP_LOG"):
        print(resp.status, kind, (await resp.json()).get("outcome"))
    assert (await Ledger(db).check()).ok
