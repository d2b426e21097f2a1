"""Payouts: earnings held, then paid out once; in transit until settled; failed payouts give the
money back; a debt holds payouts; the Stripe rail retried under one payout id; admin routes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Literal

import pytest

from livecore.config import Config, TipsConfig
from livecore.store import Database
from livecore.store.audit import AuditLog
from livecore.store.creator_settings import CreatorSettings
from livecore.store.ledger import AccountKind, Entry, Ledger
from livecore.store.payouts import Payouts
from livecore.store.users import User, Users
from livecore.tips.payouts import PayoutConflict, PayoutRail, PayoutService
from livecore.tips.providers import PayoutFailed, ProviderUnavailable
from tests.conftest import Client, MakeClient, bearer, register
from tests.tips.people import Account, creator_and_fan

PASSWORD = "correct horse battery"


@pytest.fixture
def no_hold(config: Config) -> TipsConfig:
    return replace(config.tips, payout_hold_days=0)


@pytest.fixture
async def instant(make_client: MakeClient, no_hold: TipsConfig) -> Client:
    """The app with earnings available at once (no holding period)."""
    return await make_client(tips=no_hold)


async def _setup(client: Client) -> tuple[Account, Account]:
    """A creator with the stream "tipjar", and a fan."""
    return await creator_and_fan(client, creator_email="cara@example.com")


async def _tip(client: Client, fan: Account, key: str, amount_minor: int = 500) -> None:
    resp = await client.post(
        "/api/v1/streams/tipjar/tips", json={"amount_minor": amount_minor, "currency": "usd"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": key},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()


async def _admin(client: Client, db: Database) -> dict[str, str]:
    await register(client, "root@example.com", display_name="Root")
    await db.pool.execute("UPDATE users SET role = 'admin' WHERE email = 'root@example.com'")
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    )
    body = await resp.json()
    assert body["user"]["role"] == "admin"
    client.session.cookie_jar.clear()
    return bearer(body["token"])


async def _request(client: Client, who: Account, currency: str = "usd") -> Any:
    return await client.post(
        "/api/v1/me/payouts", json={"currency": currency}, headers=bearer(who["token"])
    )


async def _mine(client: Client, who: Account) -> dict[str, Any]:
    resp = await client.get("/api/v1/me/payouts", headers=bearer(who["token"]))
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


def _summary(owed: int, held: int, available: int, debt: int = 0) -> dict[str, int]:
    return {"owed_minor": owed, "held_minor": held, "available_minor": available,
            "debt_minor": debt}  # fmt: skip


async def _balance(db: Database, kind: AccountKind, owner_id: int | None = None) -> int:
    balances = await Ledger(db).balances(kind, owner_id)
    return balances.get("usd", 0)


async def _earned_days_ago(db: Database, creator_id: int, amount: int, days: int) -> None:
    """Post an earning as if it was made `days` ago (entries cannot be changed afterwards,
    so it is written with its time; the ledger's triggers still check and apply it)."""
    ledger = Ledger(db)
    creator = await ledger.account("creator", "usd", creator_id)
    clearing = await ledger.account("processor_clearing", "usd")
    async with db.transaction() as conn:
        tx = await conn.fetchval(
            "INSERT INTO ledger_transactions (kind, external_ref, created_at)"
            " VALUES ('tip', $1, now() - make_interval(days => $2)) RETURNING id",
            f"old-{creator_id}-{amount}",
            days,
        )
        await conn.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount_minor, currency,"
            " created_at) VALUES ($1, $2, $3, 'usd', now() - make_interval(days => $5)),"
            " ($1, $4, $6, 'usd', now() - make_interval(days => $5))",
            tx, creator, -amount, clearing, days, amount,
        )  # fmt: skip


# -- holding period ---------------------------------------------------------------------------


async def test_new_earnings_are_held_for_the_holding_period(client: Client) -> None:
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(400, 400, 0)}
    resp = await _request(client, creator)
    assert resp.status == 409
    assert await resp.json() == {"error": {"code": "conflict", "message": (
        "nothing is available yet: 4.00 USD is held for 7 days after it is earned"
    )}}  # fmt: skip
    assert (await _mine(client, creator))["payouts"] == []


async def test_earnings_older_than_the_hold_are_paid_out_and_new_ones_stay(
    client: Client, db: Database
) -> None:
    creator, fan = await _setup(client)
    await _earned_days_ago(db, creator["user"]["id"], 1000, days=8)
    await _tip(client, fan, "t1")
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(1400, 400, 1000)}
    resp = await _request(client, creator)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["payout"]["amount_minor"] == 1000
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(400, 400, 0)}
    assert (await Ledger(db).check()).ok


async def test_money_back_from_a_failed_payout_is_not_held_again(
    client: Client, db: Database
) -> None:
    creator, _ = await _setup(client)
    await _earned_days_ago(db, creator["user"]["id"], 1000, days=8)
    payout = (await (await _request(client, creator)).json())["payout"]
    admin = await _admin(client, db)
    resp = await client.post(
        f"/api/v1/admin/payouts/{payout['id']}/failed", json={"reason": "bank refused"},
        headers=admin,
    )  # fmt: skip
    assert resp.status == 200
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(1000, 0, 1000)}


# -- the manual rail, settled by an admin -----------------------------------------------------


async def test_payout_goes_in_transit_and_an_admin_marks_it_paid(
    instant: Client, db: Database
) -> None:
    client = instant
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    await _tip(client, fan, "t2", 1000)
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(1200, 0, 1200)}
    resp = await _request(client, creator)
    assert resp.status == 201, await resp.text()
    payout = (await resp.json())["payout"]
    assert (payout["amount_minor"], payout["currency"], payout["rail"], payout["status"]) == (
        1200, "usd", "manual", "in_transit",
    )  # fmt: skip
    mine = await _mine(client, creator)
    assert mine["summary"] == {"usd": _summary(0, 0, 0)}
    assert [p["id"] for p in mine["payouts"]] == [payout["id"]]
    assert await _balance(db, "payouts_in_transit") == -1200

    admin = await _admin(client, db)
    listed = await client.get("/api/v1/admin/payouts?status=in_transit", headers=admin)
    assert [p["id"] for p in (await listed.json())["payouts"]] == [payout["id"]]
    paid = await client.post(f"/api/v1/admin/payouts/{payout['id']}/paid", headers=admin)
    assert paid.status == 200
    assert (await paid.json())["payout"]["status"] == "paid"
    assert await _balance(db, "payouts_in_transit") == 0
    assert await _balance(db, "payouts_paid") == -1200
    assert await _balance(db, "creator", creator["user"]["id"]) == 0
    listed = await client.get("/api/v1/admin/payouts?status=in_transit", headers=admin)
    assert (await listed.json())["payouts"] == []
    assert await AuditLog(db).actions_for("payout", payout["id"]) == ["payout.paid"]
    assert (await Ledger(db).check()).ok


async def test_marking_twice_changes_nothing_and_paid_never_becomes_failed(
    instant: Client, db: Database
) -> None:
    client = instant
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    payout = (await (await _request(client, creator)).json())["payout"]
    admin = await _admin(client, db)
    url = f"/api/v1/admin/payouts/{payout['id']}"
    first = await (await client.post(f"{url}/paid", headers=admin)).json()
    again = await client.post(f"{url}/paid", headers=admin)
    assert again.status == 200
    assert await again.json() == first
    failed = await client.post(f"{url}/failed", json={"reason": "late"}, headers=admin)
    assert failed.status == 409
    assert await _balance(db, "payouts_paid") == -400
    assert await AuditLog(db).actions_for("payout", payout["id"]) == ["payout.paid"]
    missing = await client.post("/api/v1/admin/payouts/999999/paid", headers=admin)
    assert missing.status == 404
    assert (await Ledger(db).check()).ok


async def test_failed_payout_puts_the_money_back(instant: Client, db: Database) -> None:
    client = instant
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    payout = (await (await _request(client, creator)).json())["payout"]
    admin = await _admin(client, db)
    url = f"/api/v1/admin/payouts/{payout['id']}"
    no_reason = await client.post(f"{url}/failed", json={"reason": "  "}, headers=admin)
    assert no_reason.status == 422
    resp = await client.post(f"{url}/failed", json={"reason": "account closed"}, headers=admin)
    assert resp.status == 200
    failed = (await resp.json())["payout"]
    assert (failed["status"], failed["failure"]) == ("failed", "account closed")
    again = await client.post(f"{url}/failed", json={"reason": "other"}, headers=admin)
    assert (await again.json())["payout"]["failure"] == "account closed"
    assert (await client.post(f"{url}/paid", headers=admin)).status == 409
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(400, 0, 400)}
    assert await _balance(db, "payouts_in_transit") == 0
    assert await AuditLog(db).actions_for("payout", payout["id"]) == ["payout.failed"]
    # The money can be paid out again.
    second = await _request(client, creator)
    assert second.status == 201
    assert (await second.json())["payout"]["amount_minor"] == 400
    assert (await Ledger(db).check()).ok


async def test_concurrent_requests_pay_the_money_once(instant: Client, db: Database) -> None:
    client = instant
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    answers = await asyncio.gather(*(_request(client, creator) for _ in range(5)))
    assert sorted(a.status for a in answers) == [201, 409, 409, 409, 409]
    payouts = (await _mine(client, creator))["payouts"]
    assert [p["amount_minor"] for p in payouts] == [400]
    assert await _balance(db, "creator", creator["user"]["id"]) == 0
    assert await _balance(db, "payouts_in_transit") == -400
    assert (await Ledger(db).check()).ok


async def test_a_debt_holds_payouts(instant: Client, db: Database) -> None:
    client = instant
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    assert (await _request(client, creator)).status == 201
    # The tip is refunded after it was paid out: the creator owes the platform.
    ledger = Ledger(db)
    account = await ledger.account("creator", "usd", creator["user"]["id"])
    refunds = await ledger.account("refunds", "usd")
    await ledger.post(
        "refund:t1", "refund", [Entry(account, 400, "usd"), Entry(refunds, -400, "usd")]
    )
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(-400, 0, 0, 400)}
    resp = await _request(client, creator)
    assert resp.status == 409
    message = (await resp.json())["error"]["message"]
    assert message.startswith("payouts are held: you owe 4.00 USD")
    # New earnings pay the debt first.
    await _tip(client, fan, "t2", 1000)
    assert (await _mine(client, creator))["summary"] == {"usd": _summary(400, 0, 400)}
    resp = await _request(client, creator)
    assert (await resp.json())["payout"]["amount_minor"] == 400
    assert (await Ledger(db).check()).ok


async def test_bad_requests_are_refused_and_change_nothing(instant: Client) -> None:
    client = instant
    creator, fan = await _setup(client)
    nothing = await _request(client, creator)
    assert nothing.status == 409
    assert "no USD earnings" in (await nothing.json())["error"]["message"]
    await _tip(client, fan, "t1")
    bad = await _request(client, creator, "xyz")
    assert bad.status == 422
    assert (await bad.json())["error"]["fields"] == {"currency": "must be one of usd, eur, gbp"}
    missing = await client.post("/api/v1/me/payouts", json={}, headers=bearer(creator["token"]))
    assert missing.status == 422
    other = await _request(client, creator, "eur")
    assert other.status == 409
    assert (await _mine(client, creator))["payouts"] == []


async def test_payouts_need_a_login_and_admin_routes_an_admin(
    instant: Client, db: Database
) -> None:
    client = instant
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    assert (await client.get("/api/v1/me/payouts")).status == 401
    assert (await client.post("/api/v1/me/payouts", json={"currency": "usd"})).status == 401
    payout = (await (await _request(client, creator)).json())["payout"]
    as_creator = bearer(creator["token"])
    admin_routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/v1/admin/payouts", None),
        ("POST", f"/api/v1/admin/payouts/{payout['id']}/paid", None),
        ("POST", f"/api/v1/admin/payouts/{payout['id']}/failed", {"reason": "x"}),
        ("PUT", f"/api/v1/admin/creators/{creator['user']['id']}/money",
         {"platform_fee_bps": 0, "stripe_account_id": None}),
    ]  # fmt: skip
    for method, url, body in admin_routes:
        anonymous = await client.request(method, url, json=body)
        assert anonymous.status == 401, url
        forbidden = await client.request(method, url, json=body, headers=as_creator)
        assert forbidden.status == 403, url
    assert (await _mine(client, creator))["payouts"][0]["status"] == "in_transit"
    stored = await CreatorSettings(db).get(creator["user"]["id"])
    assert (stored.platform_fee_bps, stored.stripe_account_id) == (None, None)


async def test_admin_status_filter_is_checked(instant: Client, db: Database) -> None:
    admin = await _admin(instant, db)
    resp = await instant.get("/api/v1/admin/payouts?status=lost", headers=admin)
    assert resp.status == 422


# -- the admin's money settings ---------------------------------------------------------------


async def test_admin_sets_a_creators_money_settings(instant: Client, db: Database) -> None:
    client = instant
    creator, _ = await _setup(client)
    admin = await _admin(client, db)
    user_id = creator["user"]["id"]
    url = f"/api/v1/admin/creators/{user_id}/money"
    body = {"platform_fee_bps": 1500, "stripe_account_id": "acct_1AbC"}
    resp = await client.put(url, json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["money"] == {"user_id": user_id, **body}
    stored = await CreatorSettings(db).get(user_id)
    assert (stored.platform_fee_bps, stored.stripe_account_id) == (1500, "acct_1AbC")
    cleared = await client.put(
        url, json={"platform_fee_bps": None, "stripe_account_id": None}, headers=admin
    )
    assert (await cleared.json())["money"]["stripe_account_id"] is None
    assert await AuditLog(db).actions_for("user", user_id) == [
        "user.register", "creator.money", "creator.money",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform_fee_bps": 10_001}, "platform_fee_bps"),
        ({"platform_fee_bps": -1}, "platform_fee_bps"),
        ({"platform_fee_bps": "20%"}, "platform_fee_bps"),
        ({"platform_fee_bps": True}, "platform_fee_bps"),
        ({"stripe_account_id": "acct_"}, "stripe_account_id"),
        ({"stripe_account_id": "acct_12-34"}, "stripe_account_id"),
        ({"stripe_account_id": "cus_1234"}, "stripe_account_id"),
        ({"stripe_account_id": 12}, "stripe_account_id"),
        ({"stripe_account_id": "acct_" + "a" * 65}, "stripe_account_id"),
    ],
)
async def test_admin_money_settings_are_validated(
    instant: Client, db: Database, body: dict[str, Any], field: str
) -> None:
    creator, _ = await _setup(instant)
    admin = await _admin(instant, db)
    url = f"/api/v1/admin/creators/{creator['user']['id']}/money"
    resp = await instant.put(url, json=body, headers=admin)
    assert resp.status == 422
    assert list((await resp.json())["error"]["fields"]) == [field]
    stored = await CreatorSettings(db).get(creator["user"]["id"])
    assert (stored.platform_fee_bps, stored.stripe_account_id) == (None, None)


async def test_admin_money_settings_of_an_unknown_user_is_404(
    instant: Client, db: Database
) -> None:
    admin = await _admin(instant, db)
    resp = await instant.put(
        "/api/v1/admin/creators/999999/money", json={"platform_fee_bps": 100}, headers=admin
    )
    assert resp.status == 404


# -- the Stripe rail (a fake PayoutRail) ------------------------------------------------------

Outcome = str | Exception


class FakeRail:
    """Answers transfers with the given outcomes in turn (a transfer id, or an exception)."""

    name: Literal["stripe"] = "stripe"

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[int, int, str, str]] = []

    async def transfer(
        self, payout_id: int, amount_minor: int, currency: str, destination: str
    ) -> str:
        self.calls.append((payout_id, amount_minor, currency, destination))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def _earning_creator(client: Client, db: Database, account: str | None) -> User:
    """A creator owed 400 USD (available at once), with `account` as Stripe account."""
    creator, fan = await _setup(client)
    await _tip(client, fan, "t1")
    await CreatorSettings(db).put(creator["user"]["id"], None, account)
    user = await Users(db).get(creator["user"]["id"])
    assert user is not None
    return user


def _service(db: Database, settings: TipsConfig, rail: PayoutRail | None) -> PayoutService:
    return PayoutService(
        db, Ledger(db), Payouts(db), CreatorSettings(db), settings, rail, retry_after_s=0
    )


async def test_stripe_rail_pays_at_once(instant: Client, db: Database, no_hold: TipsConfig) -> None:
    user = await _earning_creator(instant, db, "acct_1")
    rail = FakeRail("tr_1")
    payout = await _service(db, no_hold, rail).request(user, "usd")
    assert rail.calls == [(payout.id, 400, "usd", "acct_1")]
    assert (payout.rail, payout.status, payout.provider_ref) == ("stripe", "paid", "tr_1")
    assert await _balance(db, "payouts_paid") == -400
    assert await _balance(db, "payouts_in_transit") == 0
    assert (await Ledger(db).check()).ok


async def test_stripe_refusal_fails_the_payout_and_gives_the_money_back(
    instant: Client, db: Database, no_hold: TipsConfig
) -> None:
    user = await _earning_creator(instant, db, "acct_1")
    service = _service(db, no_hold, FakeRail(PayoutFailed("account closed")))
    payout = await service.request(user, "usd")
    assert (payout.status, payout.failure) == ("failed", "account closed")
    assert (await service.summary(user.id))["usd"].available_minor == 400
    assert await _balance(db, "payouts_in_transit") == 0
    assert (await Ledger(db).check()).ok


async def test_unanswered_transfer_is_retried_with_the_same_payout_id(
    instant: Client, db: Database, no_hold: TipsConfig
) -> None:
    user = await _earning_creator(instant, db, "acct_1")
    rail = FakeRail(ProviderUnavailable("timed out", unknown=True), "tr_9")
    service = _service(db, no_hold, rail)
    payout = await service.request(user, "usd")
    assert (payout.status, payout.provider_ref) == ("in_transit", None)
    assert await _balance(db, "payouts_in_transit") == -400
    # Not an admin's to settle while it may still go through, nor its account to change.
    with pytest.raises(PayoutConflict):
        await service.mark_failed(payout.id, "gave up")
    with pytest.raises(PayoutConflict):
        await service.set_creator_money(user.id, None, "acct_2")

    assert await service.retry_in_transit() == 1
    assert rail.calls == [(payout.id, 400, "usd", "acct_1")] * 2
    (paid,) = await service.payouts_of(user.id)
    assert (paid.status, paid.provider_ref) == ("paid", "tr_9")
    assert await service.retry_in_transit() == 0
    assert len(rail.calls) == 2
    assert await _balance(db, "payouts_paid") == -400
    assert await _balance(db, "payouts_in_transit") == 0
    assert (await Ledger(db).check()).ok


async def test_retries_stop_after_the_idempotency_window_and_an_admin_settles(
    instant: Client, db: Database, no_hold: TipsConfig
) -> None:
    user = await _earning_creator(instant, db, "acct_1")
    rail = FakeRail(ProviderUnavailable("down"))
    service = _service(db, no_hold, rail)
    payout = await service.request(user, "usd")
    await db.pool.execute(
        "UPDATE payouts SET created_at = now() - interval '2 days' WHERE id = $1", payout.id
    )
    assert await service.retry_in_transit() == 0  # a retry now could pay twice
    failed, changed = await service.mark_failed(payout.id, "not in Stripe's dashboard")
    assert (failed.status, changed) == ("failed", True)
    assert len(rail.calls) == 1
    assert (await Ledger(db).check()).ok


async def test_without_a_stripe_account_payouts_are_manual(
    instant: Client, db: Database, no_hold: TipsConfig
) -> None:
    user = await _earning_creator(instant, db, None)
    rail = FakeRail()
    payout = await _service(db, no_hold, rail).request(user, "usd")
    assert (payout.rail, payout.status) == ("manual", "in_transit")
    assert rail.calls == []
    # With no rail configured, a creator's Stripe account is not used either.
    await CreatorSettings(db).put(user.id, None, "acct_1")
    await _tip(instant, {"token": await _login(instant, "fan@example.com")}, "t2")
    payout = await _service(db, no_hold, None).request(user, "usd")
    assert (payout.rail, payout.status) == ("manual", "in_transit")


async def _login(client: Client, email: str) -> str:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    token: str = (await resp.json())["token"]
    client.session.cookie_jar.clear()
    return token
