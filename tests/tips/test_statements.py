"""Statements at their edges: UTC day boundaries, every transaction kind in its column, several
currencies in order, exact CSV headers and the limits of a period. (The everyday paths, tips
through the API, are in test_earnings.py.)"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from livecore.store import Database
from livecore.store.ledger import Entry, Ledger
from tests.conftest import Client, bearer, register
from tests.tips.people import admin_headers

STATEMENT_HEADER = (
    "day,currency,tips_minor,subscriptions_minor,platform_fees_minor,refunds_minor,"
    "disputes_minor,payouts_minor,net_minor"
)
REVENUE_HEADER = (
    "day,currency,gross_volume_minor,fees_earned_minor,fees_returned_minor,"
    "processor_fees_minor,net_minor"
)
DAY = date(2025, 3, 10)
NOON = datetime(2025, 3, 10, 12, tzinfo=UTC)


async def _post_at(
    db: Database, at: datetime, ref: str, kind: str, entries: Sequence[Entry]
) -> None:
    """Post a balanced transaction as if made at `at` (Ledger.post always stamps now())."""
    async with db.transaction() as conn:
        tx_id = await conn.fetchval(
            "INSERT INTO ledger_transactions (kind, external_ref, created_at)"
            " VALUES ($1, $2, $3) RETURNING id",
            kind,
            ref,
            at,
        )
        await conn.executemany(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount_minor, currency,"
            " created_at) VALUES ($1, $2, $3, $4, $5)",
            [(tx_id, e.account_id, e.amount_minor, e.currency, at) for e in entries],
        )


class Books:
    """The accounts of one creator and of the platform, in one currency."""

    def __init__(self, db: Database, creator_id: int, currency: str) -> None:
        self.db, self.creator_id, self.currency = db, creator_id, currency
        self.ids: dict[str, int] = {}

    async def open(self) -> Books:
        ledger = Ledger(self.db)
        self.ids["creator"] = await ledger.account("creator", self.currency, self.creator_id)
        for kind in ("platform_revenue", "processor_clearing", "processor_fees", "refunds",
                     "disputes", "payouts_in_transit", "payouts_paid"):  # fmt: skip
            self.ids[kind] = await ledger.account(kind, self.currency)
        return self

    async def post(self, at: datetime, ref: str, kind: str, **amounts: int) -> None:
        entries = [Entry(self.ids[k], v, self.currency) for k, v in amounts.items() if v]
        await _post_at(self.db, at, ref, kind, entries)

    async def tip(self, at: datetime, ref: str, amount: int, fee: int) -> None:
        await self.post(at, ref, "tip", processor_clearing=amount, creator=fee - amount,
                        platform_revenue=-fee)  # fmt: skip


async def _creator(client: Client) -> dict[str, Any]:
    creator = await register(client, "creator@example.com", creator=True, display_name="Cara")
    client.session.cookie_jar.clear()
    return creator


async def _json(client: Client, path: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = await client.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_day_is_counted_from_its_first_to_its_last_utc_instant(
    client: Client, db: Database
) -> None:
    creator = await _creator(client)
    books = await Books(db, creator["user"]["id"], "usd").open()
    tick = timedelta(microseconds=1)
    first, after_last = datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 12, tzinfo=UTC)
    await books.tip(first - tick, "before", 10_000, 0)  # 2025-03-09, outside
    await books.tip(first, "first", 100, 0)
    # 01:00 at UTC+2 is still 2025-03-10 in UTC: days are UTC days.
    await books.tip(datetime(2025, 3, 11, 1, tzinfo=timezone(timedelta(hours=2))), "tz", 20, 0)
    await books.tip(after_last - tick, "last", 3, 0)  # `to` is inclusive
    await books.tip(after_last, "after", 40_000, 0)  # 2025-03-12, outside
    body = await _json(
        client, "/api/v1/me/statement?from=2025-03-10&to=2025-03-11", bearer(creator["token"])
    )
    assert (body["from"], body["to"]) == ("2025-03-10", "2025-03-11")
    assert [(d["day"], d["tips"], d["net"]) for d in body["days"]] == [
        ("2025-03-10", 120, 120),
        ("2025-03-11", 3, 3),
    ]
    assert body["totals"] == {"usd": {
        "tips": 123, "subscriptions": 0, "platform_fees": 0, "refunds": 0, "disputes": 0,
        "payouts": 0, "net": 123,
    }}  # fmt: skip


async def test_every_kind_lands_in_its_column_and_currencies_come_in_order(
    client: Client, db: Database
) -> None:
    creator = await _creator(client)
    usd = await Books(db, creator["user"]["id"], "usd").open()
    eur = await Books(db, creator["user"]["id"], "eur").open()
    await usd.tip(NOON, "tip", 1000, 200)
    await usd.post(NOON, "manual", "tip_manual", creator=100, platform_revenue=-100)
    await usd.post(NOON, "invoice", "subscription", processor_clearing=500, creator=-400,
                   platform_revenue=-100)  # fmt: skip
    await usd.post(NOON, "fee", "processor_fee", processor_fees=50, processor_clearing=-50)
    await usd.post(NOON, "refund", "refund", creator=400, platform_revenue=100, refunds=-500)
    lost = {"creator": 400, "platform_revenue": 100, "disputes": -500}
    won = {"creator": 800, "platform_revenue": 200, "disputes": -1000}
    await usd.post(NOON, "dispute:lost", "dispute", **lost)
    await usd.post(NOON, "dispute:won", "dispute", **won)
    await usd.post(NOON, "dispute:won:won", "dispute_won", **{k: -v for k, v in won.items()})
    await usd.post(NOON, "payout:1", "payout", creator=300, payouts_in_transit=-300)
    await usd.post(NOON, "payout:1:failed", "payout_failed", payouts_in_transit=300,
                   creator=-300)  # fmt: skip
    await usd.post(NOON, "payout:2", "payout", creator=200, payouts_in_transit=-200)
    await usd.post(NOON, "payout:2:paid", "payout_paid", payouts_in_transit=200,
                   payouts_paid=-200)  # fmt: skip
    await eur.tip(NOON, "eur-tip", 700, 140)
    await eur.tip(NOON - timedelta(days=1), "eur-early", 50, 10)

    body = await _json(
        client, "/api/v1/me/statement?from=2025-03-01&to=2025-03-31", bearer(creator["token"])
    )
    assert body["days"] == [
        {"day": "2025-03-09", "currency": "eur", "tips": 40, "subscriptions": 0,
         "platform_fees": 10, "refunds": 0, "disputes": 0, "payouts": 0, "net": 40},
        {"day": "2025-03-10", "currency": "eur", "tips": 560, "subscriptions": 0,
         "platform_fees": 140, "refunds": 0, "disputes": 0, "payouts": 0, "net": 560},
        # tips: 800 from the card tip, minus the 100 owed on the invoiced one.
        {"day": "2025-03-10", "currency": "usd", "tips": 700, "subscriptions": 400,
         "platform_fees": 400, "refunds": -400, "disputes": -400, "payouts": -200,
         "net": 100},
    ]  # fmt: skip
    # The statement agrees with the balance: net is the change in what they are owed.
    assert -(await Ledger(db).balance(usd.ids["creator"])) == body["totals"]["usd"]["net"]
    assert body["totals"]["eur"]["net"] == 600

    revenue = await _json(
        client,
        "/api/v1/admin/revenue?from=2025-03-10&to=2025-03-10",
        await admin_headers(client, db),
    )
    assert revenue["days"] == [
        {"day": "2025-03-10", "currency": "eur", "gross_volume": 700, "fees_earned": 140,
         "fees_returned": 0, "processor_fees": 0, "net": 140},
        # Returned: 100 by the refund, 100 by the lost dispute (the won one nets to zero).
        {"day": "2025-03-10", "currency": "usd", "gross_volume": 1500, "fees_earned": 400,
         "fees_returned": -200, "processor_fees": -50, "net": 150},
    ]  # fmt: skip


async def test_csv_is_an_attachment_with_a_header_even_when_empty(
    client: Client, db: Database
) -> None:
    creator = await _creator(client)
    books = await Books(db, creator["user"]["id"], "usd").open()
    await books.tip(NOON, "tip", 1000, 200)
    query = "from=2025-03-10&to=2025-03-10&format=csv"

    resp = await client.get(f"/api/v1/me/statement?{query}", headers=bearer(creator["token"]))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="statement-2025-03-10-2025-03-10.csv"'
    )
    assert list(csv.reader(io.StringIO(await resp.text()))) == [
        STATEMENT_HEADER.split(","),
        ["2025-03-10", "usd", "800", "0", "200", "0", "0", "0", "800"],
    ]

    # A viewer who never earned anything gets the header and no rows.
    fan = await register(client, "fan@example.com", display_name="Fan")
    empty = await client.get(f"/api/v1/me/statement?{query}", headers=bearer(fan["token"]))
    assert empty.status == 200
    assert list(csv.reader(io.StringIO(await empty.text()))) == [STATEMENT_HEADER.split(",")]

    admin = await admin_headers(client, db)
    revenue = await client.get(f"/api/v1/admin/revenue?{query}", headers=admin)
    assert revenue.headers["Content-Disposition"] == (
        'attachment; filename="revenue-2025-03-10-2025-03-10.csv"'
    )
    assert list(csv.reader(io.StringIO(await revenue.text()))) == [
        REVENUE_HEADER.split(","),
        ["2025-03-10", "usd", "1000", "200", "0", "0", "200"],
    ]


async def test_the_default_period_is_the_last_30_days_and_a_year_is_the_most(
    client: Client,
) -> None:
    headers = bearer((await _creator(client))["token"])
    body = await _json(client, "/api/v1/me/statement", headers)
    today = datetime.now(UTC).date()
    assert (body["from"], body["to"]) == ((today - timedelta(days=29)).isoformat(),
                                          today.isoformat())  # fmt: skip
    assert body == {"from": body["from"], "to": body["to"], "days": [], "totals": {}}
    # 2024 is a leap year: all of it is 366 days, the most one statement may span.
    await _json(client, "/api/v1/me/statement?from=2024-01-01&to=2024-12-31", headers)
    resp = await client.get("/api/v1/me/statement?from=2023-12-31&to=2024-12-31", headers=headers)
    assert resp.status == 422
    assert list((await resp.json())["error"]["fields"]) == ["to"]


async def test_statements_need_a_login_and_revenue_an_admin(client: Client) -> None:
    for path in ("/api/v1/me/statement", "/api/v1/admin/revenue?format=csv"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    creator = await _creator(client)
    refused = await client.get("/api/v1/admin/revenue", headers=bearer(creator["token"]))
    assert refused.status == 403
    assert await refused.json() == {"error": {
        "code": "forbidden", "message": "only admins may read the platform's revenue",
    }}  # fmt: skip


async def test_bad_input_on_the_admin_route_is_refused_before_anything_is_read(
    client: Client, db: Database
) -> None:
    admin = await admin_headers(client, db)
    for query, field in (
        ("from=2025-02-30", "from"),
        ("to=", "to"),
        ("from=2025-03-02&to=2025-03-01", "from"),
        ("format=CSV", "format"),
    ):
        resp = await client.get(f"/api/v1/admin/revenue?{query}", headers=admin)
        assert resp.status == 422, query
        body = await resp.json()
        assert body["error"]["code"] == "invalid", query
        assert field in body["error"]["fields"], query


async def test_the_last_representable_day_and_other_date_forms_are_refused(
    client: Client,
) -> None:
    headers = bearer((await _creator(client))["token"])
    resp = await client.get("/api/v1/me/statement?from=9999-12-31&to=9999-12-31", headers=headers)
    assert resp.status == 422, await resp.text()
    for odd in ("20250310", "2025-W11-1", "2025-3-1"):
        resp = await client.get(f"/api/v1/me/statement?from={odd}", headers=headers)
        assert resp.status == 422, odd
