"""Hostile values in paths and bodies are 4xx JSON errors, never a 500: digits of other
scripts, ids PostgreSQL's bigint cannot hold, a trailing newline that `$` lets through, and
moderation of users who do not exist."""

from __future__ import annotations

from typing import Any

import pytest

from livecore.store import Database
from tests.conftest import Client, bearer
from tests.tips.people import admin_headers, creator_and_fan

HUGE = "99999999999999999999"  # > 2**64
# '²' passes str.isdigit() and int() refuses it; Arabic-Indic three and fullwidth five are
# digits to int(), not ASCII.
NOT_ASCII_DIGITS = ("%C2%B2", "%D9%A3", "%EF%BC%95")


async def _answer(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert body["error"]["code"] == code
    return body


@pytest.mark.parametrize("raw", [*NOT_ASCII_DIGITS, HUGE, "0"])
async def test_a_recording_id_that_is_no_id_is_404_to_anyone(client: Client, raw: str) -> None:
    resp = await client.get(f"/vod/{raw}/vod.m3u8")
    await _answer(resp, 404, "not_found")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("raw", [*NOT_ASCII_DIGITS, HUGE])
async def test_chat_and_stream_ids_that_are_no_ids_are_404(client: Client, raw: str) -> None:
    creator, fan = await creator_and_fan(client)
    owner, viewer = bearer(creator["token"]), bearer(fan["token"])
    base = "/api/v1/streams/tipjar"
    calls = [
        ("POST", f"{base}/chat/messages/{raw}/reports", viewer, {"reason": "spam"}),
        ("DELETE", f"{base}/chat/messages/{raw}", owner, None),
        ("DELETE", f"{base}/chat/bans/{raw}", owner, None),
        ("POST", f"{base}/chat/reports/{raw}", owner, {"action": "dismiss"}),
        ("PUT", f"{base}/moderators/{raw}", owner, None),
        ("DELETE", f"{base}/moderators/{raw}", owner, None),
        ("DELETE", f"{base}/recordings/{raw}", owner, None),
    ]
    for method, path, headers, body in calls:
        resp = await client.request(method, path, headers=headers, json=body)
        await _answer(resp, 404, "not_found")


async def test_money_ids_beyond_bigint_are_404(client: Client, db: Database) -> None:
    creator, _ = await creator_and_fan(client)
    admin = await admin_headers(client, db)
    owner = bearer(creator["token"])
    calls = [
        (f"/api/v1/me/tips/{HUGE}/paid", owner, None),
        (f"/api/v1/me/tips/{HUGE}/unpaid", owner, None),
        (f"/api/v1/admin/payouts/{HUGE}/paid", admin, None),
        (f"/api/v1/admin/payouts/{HUGE}/failed", admin, {"reason": "bounced"}),
        # 2**63 itself: one past the largest bigint.
        ("/api/v1/admin/payouts/9223372036854775808/paid", admin, None),
    ]
    for path, headers, body in calls:
        resp = await client.post(path, headers=headers, json=body)
        await _answer(resp, 404, "not_found")
    resp = await client.put(
        f"/api/v1/admin/creators/{HUGE}/money", headers=admin, json={"platform_fee_bps": 100}
    )
    await _answer(resp, 404, "not_found")


async def test_a_slug_with_a_trailing_newline_is_refused(client: Client) -> None:
    creator, _ = await creator_and_fan(client)
    resp = await client.post(
        "/api/v1/streams", json={"slug": "abc-nl\n"}, headers=bearer(creator["token"])
    )
    body = await _answer(resp, 422, "invalid")
    assert "slug" in body["error"]["fields"]


async def test_a_payment_method_with_a_trailing_newline_is_refused(client: Client) -> None:
    _, fan = await creator_and_fan(client)
    resp = await client.post(
        "/api/v1/streams/tipjar/tips",
        json={"amount_minor": 500, "currency": "usd", "payment_method": "pm_x\n"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": "nl-1"},
    )
    body = await _answer(resp, 422, "invalid")
    assert body["error"]["fields"] == {"payment_method": "is not a pm_ id"}


async def test_a_stripe_account_with_a_trailing_newline_is_refused(
    client: Client, db: Database
) -> None:
    creator, _ = await creator_and_fan(client)
    admin = await admin_headers(client, db)
    resp = await client.put(
        f"/api/v1/admin/creators/{creator['user']['id']}/money",
        json={"stripe_account_id": "acct_x\n"}, headers=admin,
    )  # fmt: skip
    body = await _answer(resp, 422, "invalid")
    assert "stripe_account_id" in body["error"]["fields"]


@pytest.mark.parametrize("kind", ["bans", "timeouts"])
async def test_moderating_a_user_who_does_not_exist_is_404(client: Client, kind: str) -> None:
    creator, _ = await creator_and_fan(client)
    resp = await client.post(
        f"/api/v1/streams/tipjar/chat/{kind}",
        json={"user_id": 987654321, "seconds": 60}, headers=bearer(creator["token"]),
    )  # fmt: skip
    body = await _answer(resp, 404, "not_found")
    assert body["error"]["message"] == "no such user"


@pytest.mark.parametrize("kind", ["bans", "timeouts"])
@pytest.mark.parametrize("user_id", [2**63, 2**64, 10**30])
async def test_moderating_a_user_id_beyond_bigint_is_422(
    client: Client, kind: str, user_id: int
) -> None:
    creator, _ = await creator_and_fan(client)
    resp = await client.post(
        f"/api/v1/streams/tipjar/chat/{kind}",
        json={"user_id": user_id, "seconds": 60}, headers=bearer(creator["token"]),
    )  # fmt: skip
    body = await _answer(resp, 422, "invalid")
    assert body["error"]["fields"] == {"user_id": f"must be at most {2**63 - 1}"}


@pytest.mark.parametrize("amount", [0, -5])
async def test_a_tip_below_one_says_at_least_one(client: Client, amount: int) -> None:
    _, fan = await creator_and_fan(client)
    resp = await client.post(
        "/api/v1/streams/tipjar/tips", json={"amount_minor": amount, "currency": "usd"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": f"low-{amount}"},
    )  # fmt: skip
    body = await _answer(resp, 422, "invalid")
    assert body["error"]["fields"] == {"amount_minor": "must be at least 1"}


async def test_a_tip_beyond_bigint_is_refused(client: Client) -> None:
    _, fan = await creator_and_fan(client)
    resp = await client.post(
        "/api/v1/streams/tipjar/tips", json={"amount_minor": 2**70, "currency": "usd"},
        headers=bearer(fan["token"]) | {"Idempotency-Key": "huge"},
    )  # fmt: skip
    body = await _answer(resp, 422, "invalid")
    assert body["error"]["fields"] == {"amount_minor": f"must be at most {2**63 - 1}"}


@pytest.mark.parametrize("slug", ["%00", "ab%00cd", "%C2%B9%00V", "a" * 300])
async def test_a_slug_that_postgresql_cannot_hold_is_404(client: Client, slug: str) -> None:
    creator, fan = await creator_and_fan(client)
    sdp = {"Content-Type": "application/sdp"}
    calls = [
        ("POST", f"/whep/{slug}", sdp, "v=0\r\n"),
        ("POST", f"/whip/{slug}", sdp | bearer("lck_x"), "v=0\r\n"),
        ("GET", f"/ws/{slug}", {}, None),
        ("GET", f"/api/v1/streams/{slug}/tiers", {}, None),
        ("POST", f"/api/v1/streams/{slug}/playback", {}, None),
        ("POST", f"/api/v1/streams/{slug}/chat/bans", bearer(creator["token"]), "{}"),
        ("POST", f"/api/v1/streams/{slug}/tips", bearer(fan["token"]) | {"Idempotency-Key": "k"},
         '{"amount_minor": 100, "currency": "usd"}'),
    ]  # fmt: skip
    for method, path, headers, data in calls:
        if data is not None and "Content-Type" not in headers:
            headers = headers | {"Content-Type": "application/json"}
        resp = await client.request(method, path, headers=headers, data=data)
        await _answer(resp, 404, "not_found")
