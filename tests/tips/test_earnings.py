"""Statements from the ledger: a creator's earnings by day (JSON and CSV) and the platform's
revenue for admins, filtered by UTC day, with bad input refused."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from livecore.store import Database
from livecore.store.ledger import Entry, Ledger
from tests.conftest import Client, bearer
from tests.tips.people import admin_headers, creator_and_fan


async def _tip(client: Client, fan: dict[str, Any], key: str, amount: int) -> None:
    resp = await client.post(
        "/api/v1/streams/tipjar/tips", json={"amount_minor": amount, "currency": "usd"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": key},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()


async def test_a_creators_statement_adds_up_by_day(client: Client, db: Database) -> None:
    creator, fan = await creator_and_fan(client)
    await _tip(client, fan, "a", 1000)
    await _tip(client, fan, "b", 500)
    # A refund of the first tip's creator share and a payout, posted as livecore posts them.
    ledger = Ledger(db)
    owner = creator["user"]["id"]
    mine = await ledger.account("creator", "usd", owner)
    revenue = await ledger.account("platform_revenue", "usd")
    refunds = await ledger.account("refunds", "usd")
    transit = await ledger.account("payouts_in_transit", "usd")
    await ledger.post("refund:x:1000", "refund", [
        Entry(mine, 800, "usd"), Entry(revenue, 200, "usd"), Entry(refunds, -1000, "usd"),
    ])  # fmt: skip
    await ledger.post("payout:x", "payout", [Entry(mine, 300, "usd"), Entry(transit, -300, "usd")])
    resp = await client.get("/api/v1/me/statement", headers=bearer(creator["token"]))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    today = datetime.now(UTC).date()
    assert body["to"] == today.isoformat()
    (day,) = body["days"]
    assert day == {
        "day": today.isoformat(), "currency": "usd", "tips": 1200, "subscriptions": 0,
        "platform_fees": 300, "refunds": -800, "disputes": 0, "payouts": -300, "net": 100,
    }  # fmt: skip
    assert body["totals"]["usd"]["net"] == 100
    # The statement agrees with the balance.
    assert -(await ledger.balance(mine)) == 100

    as_csv = await client.get("/api/v1/me/statement?format=csv", headers=bearer(creator["token"]))
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
    assert rows == [{
        "day": today.isoformat(), "currency": "usd", "tips_minor": "1200",
        "subscriptions_minor": "0", "platform_fees_minor": "300", "refunds_minor": "-800",
        "disputes_minor": "0", "payouts_minor": "-300", "net_minor": "100",
    }]  # fmt: skip

    # Another period has nothing; a viewer has no earnings at all.
    earlier = (today - timedelta(days=10)).isoformat()
    old = await client.get(
        f"/api/v1/me/statement?from={earlier}&to={earlier}", headers=bearer(creator["token"])
    )
    assert (await old.json())["days"] == []
    viewer = await client.get("/api/v1/me/statement", headers=bearer(fan["token"]))
    assert (await viewer.json())["days"] == []


async def test_platform_revenue_is_for_admins(client: Client, db: Database) -> None:
    creator, fan = await creator_and_fan(client)
    await _tip(client, fan, "a", 1000)
    assert (await client.get("/api/v1/admin/revenue")).status == 401
    refused = await client.get("/api/v1/admin/revenue", headers=bearer(creator["token"]))
    assert refused.status == 403
    admin = await admin_headers(client, db)
    resp = await client.get("/api/v1/admin/revenue", headers=admin)
    (day,) = (await resp.json())["days"]
    assert (day["gross_volume"], day["fees_earned"], day["net"]) == (1000, 200, 200)
    as_csv = await client.get("/api/v1/admin/revenue?format=csv", headers=admin)
    (row,) = list(csv.DictReader(io.StringIO(await as_csv.text())))
    assert row["fees_earned_minor"] == "200"


async def test_bad_periods_are_refused_naming_the_field(client: Client) -> None:
    creator, _ = await creator_and_fan(client)
    headers = bearer(creator["token"])
    for query, field in (
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-05-02&to=2026-05-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "to"),
        ("format=xml", "format"),
    ):
        resp = await client.get(f"/api/v1/me/statement?{query}", headers=headers)
        assert resp.status == 422, query
        assert field in (await resp.json())["error"]["fields"], query
