"""The order a webhook's checks run in: the signature, then the kind (any kind livecore does
not apply is acknowledged whatever its fields), the event's time, whether it was applied
already, and only then the fields the event's handling reads; a field that is unreadable but
not needed (a payment that is no tip of ours) refuses nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from livecore.config import Config
from livecore.store import Database
from tests.conftest import Client, MakeClient
from tests.support.stripe_peer import StripePeer
from tests.tips.people import creator_and_fan
from tests.tips.test_stripe_tips import (
    _balances,
    _of,
    _paid_tip,
    deliver,
    deliver_all,
    stripe_config,
)


@pytest.fixture
async def client(make_client: MakeClient, config: Config, stripe_peer: StripePeer) -> Client:
    return await make_client(stripe=stripe_config(config, stripe_peer).stripe)


def _with(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**event, "data": {"object": {**event["data"]["object"], **fields}}}


async def _recorded(db: Database, event_id: str) -> bool:
    found = await db.pool.fetchval("SELECT count(*) FROM stripe_events WHERE id = $1", event_id)
    return bool(found)


async def test_a_kind_not_applied_is_acknowledged_whatever_its_fields(
    client: Client, db: Database
) -> None:
    event = {"id": "evt_other", "object": "event", "type": "customer.created",
             "created": "abc", "data": {"object": {"id": 7}}}  # fmt: skip
    assert await deliver_all(client, [event]) == ["ignored"]
    assert not await _recorded(db, "evt_other")


async def test_an_unreadable_time_is_refused_before_the_event_is_recorded(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    _, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"])
    charge = _of(events, "charge.succeeded")["data"]["object"]["id"]
    refunded = stripe_peer.refund(charge)[0]
    resp = await deliver(client, dict(refunded, created="abc"))
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == (
        "webhook refused: event created is not a Unix time"
    )
    assert not await _recorded(db, refunded["id"])
    assert await deliver_all(client, [refunded]) == ["processed"]


async def test_an_event_applied_already_is_a_duplicate_before_its_fields_are_read(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    creator, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"])
    charge = _of(events, "charge.succeeded")["data"]["object"]["id"]
    refunded = stripe_peer.refund(charge)[0]
    assert await deliver_all(client, [refunded]) == ["processed"]
    before = await _balances(db, creator["user"]["id"])
    resent = _with(refunded, amount_refunded="lots", id=None)
    assert await deliver_all(client, [resent]) == ["duplicate"]
    assert await _balances(db, creator["user"]["id"]) == before


async def test_an_unreadable_field_the_handling_does_not_need_refuses_nothing(
    client: Client, stripe_peer: StripePeer, caplog: pytest.LogCaptureFixture
) -> None:
    _, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"])
    succeeded = _of(events, "payment_intent.succeeded")
    no_tip = _with(succeeded, id=7, metadata={})
    # A dispute of no charge is ignored before its amount is read.
    disputed = {"id": "evt_dp", "object": "event", "type": "charge.dispute.created",
                "created": 1_700_000_000,
                "data": {"object": {"id": "dp_1", "amount": "lots"}}}  # fmt: skip
    # Its payment's amount is not the tip's: logged with the payment's id as it came.
    wrong = _with(succeeded, id=7, amount=5)
    ignored = [dict(no_tip, id="evt_no_tip"), disputed, dict(wrong, id="evt_wrong")]
    with caplog.at_level(logging.ERROR, "livecore.tips.webhooks"):
        assert await deliver_all(client, ignored) == ["ignored"] * 3
    assert [r.getMessage() for r in caplog.records] == ["payment 7 does not match tip 1: ignored"]


async def test_an_event_whose_id_is_given_as_an_object_is_applied_under_that_id(
    client: Client, stripe_peer: StripePeer, db: Database
) -> None:
    # Read as any expandable id is: the id inside the object (it was a 500 once).
    _, fan = await creator_and_fan(client)
    _, events = await _paid_tip(client, stripe_peer, fan["token"])
    charge = _of(events, "charge.succeeded")["data"]["object"]["id"]
    refunded = stripe_peer.refund(charge)[0]
    assert await deliver_all(client, [dict(refunded, id={"id": refunded["id"]})]) == ["processed"]
    assert await _recorded(db, refunded["id"])
    assert await deliver_all(client, [refunded]) == ["duplicate"]
