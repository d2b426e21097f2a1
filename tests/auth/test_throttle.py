"""Throttles: FailureWindow with a hand-driven clock, and the 429s the API answers for failed
logins, sign-ups and password-reset requests."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from livecore.auth.service import AuthService
from livecore.auth.throttle import FailureWindow, admit
from livecore.config import Config
from livecore.store import Database
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.clock import ManualClock
from tests.support.fakes import CapturingMailSender, GatedPasswords

PASSWORD = "correct horse battery"
GENEROUS_S = 30.0  # only a login that waits for the gated hashes exceeds it


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


def window(clock: ManualClock, limit: int = 3, window_s: float = 60.0, **kw: int) -> FailureWindow:
    return FailureWindow(limit, window_s, clock=clock, **kw)


# -- FailureWindow ---------------------------------------------------------------------------


def test_unknown_key_may_try_at_once(clock: ManualClock) -> None:
    assert window(clock).retry_after_s("ann") == 0.0


def test_failures_below_the_limit_do_not_throttle(clock: ManualClock) -> None:
    w = window(clock, limit=3)
    w.fail("ann")
    w.fail("ann")
    assert w.retry_after_s("ann") == 0.0


def test_reaching_the_limit_throttles_until_the_first_failure_leaves_the_window(
    clock: ManualClock,
) -> None:
    w = window(clock, limit=3, window_s=60)
    for _ in range(3):
        w.fail("ann")
        clock.now += 5
    # Failures at 1000, 1005, 1010; now 1015: the first leaves the window at 1060.
    assert w.retry_after_s("ann") == 45.0


def test_throttle_lifts_once_the_window_has_passed(clock: ManualClock) -> None:
    w = window(clock, limit=3, window_s=60)
    for _ in range(3):
        w.fail("ann")
    clock.now += 60
    assert w.retry_after_s("ann") == 0.0


def test_throttle_shrinks_as_time_passes(clock: ManualClock) -> None:
    w = window(clock, limit=2, window_s=60)
    w.fail("ann")
    w.fail("ann")
    clock.now += 20
    assert w.retry_after_s("ann") == 40.0


def test_wait_counts_from_the_oldest_of_the_latest_failures(clock: ManualClock) -> None:
    w = window(clock, limit=2, window_s=60)
    w.fail("ann")  # 1000
    clock.now += 10
    w.fail("ann")  # 1010
    clock.now += 10
    w.fail("ann")  # 1020: the failure at 1000 no longer decides
    assert w.retry_after_s("ann") == 50.0


def test_old_failures_expire_but_recent_ones_still_count(clock: ManualClock) -> None:
    w = window(clock, limit=3, window_s=60)
    w.fail("ann")  # 1000
    clock.now = 1001
    w.fail("ann")  # 1001
    clock.now = 1100
    w.fail("ann")  # 1100: the two above are out of the window
    clock.now = 1101
    assert w.retry_after_s("ann") == 0.0  # one failure within the window
    w.fail("ann")  # 1101
    clock.now = 1102
    w.fail("ann")  # 1102: three failures within 60 s (1100, 1101, 1102)
    assert w.retry_after_s("ann") == 58.0


def test_clear_forgets_the_failures_of_a_key(clock: ManualClock) -> None:
    w = window(clock, limit=2)
    w.fail("ann")
    w.fail("ann")
    w.clear("ann")
    assert w.retry_after_s("ann") == 0.0


def test_clear_of_an_unknown_key_is_harmless(clock: ManualClock) -> None:
    window(clock).clear("nobody")


def test_keys_are_counted_separately(clock: ManualClock) -> None:
    w = window(clock, limit=2)
    w.fail("ann")
    w.fail("ann")
    w.fail("bob")
    assert w.retry_after_s("ann") > 0
    assert w.retry_after_s("bob") == 0.0


def test_full_table_evicts_expired_keys_first(clock: ManualClock) -> None:
    w = window(clock, limit=1, window_s=60, max_keys=2)
    w.fail("old")
    clock.now += 30
    w.fail("live")
    clock.now += 40  # "old" has expired, "live" has not
    w.fail("new")
    assert w.retry_after_s("live") == 20.0
    assert w.retry_after_s("new") == 60.0


def test_full_table_of_live_keys_forgets_the_oldest_inserted(clock: ManualClock) -> None:
    w = window(clock, limit=1, window_s=60, max_keys=2)
    w.fail("first")
    w.fail("second")
    w.fail("third")
    assert w.retry_after_s("first") == 0.0
    assert w.retry_after_s("second") == 60.0
    assert w.retry_after_s("third") == 60.0


def test_admit_counts_the_attempt_in_every_window(clock: ManualClock) -> None:
    per_key, per_ip = window(clock, limit=2), window(clock, limit=3)
    assert admit((per_key, "ann"), (per_ip, "10.0.0.1")) == 0.0
    assert admit((per_key, "ann"), (per_ip, "10.0.0.1")) == 0.0
    assert per_key.retry_after_s("ann") == 60.0
    assert per_ip.retry_after_s("10.0.0.1") == 0.0  # one more left there


def test_attempt_refused_by_one_window_counts_in_none(clock: ManualClock) -> None:
    per_key, per_ip = window(clock, limit=1), window(clock, limit=2)
    assert admit((per_key, "ann"), (per_ip, "10.0.0.1")) == 0.0
    assert admit((per_key, "ann"), (per_ip, "10.0.0.1")) == 60.0
    # The refused attempt used nothing of the address's allowance.
    assert admit((per_key, "bob"), (per_ip, "10.0.0.1")) == 0.0


# -- the API ---------------------------------------------------------------------------------


@pytest.fixture
async def strict_client(make_client: MakeClient, config: Config) -> Client:
    return await make_client(auth=replace(config.auth, login_max_failures=3))


async def login(client: Client, password: str, email: str = "ann@example.com") -> int:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return resp.status


async def test_repeated_failed_logins_answer_429_with_retry_after(strict_client: Client) -> None:
    await register(strict_client)
    for _ in range(3):
        assert await login(strict_client, "wrong password") == 401
    resp = await strict_client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "wrong password"}
    )
    assert resp.status == 429
    assert await resp.json() == {
        "error": {"code": "too_many_requests", "message": "too many failed logins, try again later"}
    }
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= 901


async def test_throttled_account_is_refused_even_with_the_right_password(
    strict_client: Client,
) -> None:
    await register(strict_client)
    for _ in range(3):
        await login(strict_client, "wrong password")
    assert await login(strict_client, PASSWORD) == 429


async def test_throttle_counts_the_account_in_any_email_case(strict_client: Client) -> None:
    await register(strict_client)
    for email in ("ann@example.com", "ANN@example.com", "Ann@Example.com"):
        await login(strict_client, "wrong password", email)
    assert await login(strict_client, PASSWORD) == 429


async def test_throttle_of_one_account_leaves_others_alone(strict_client: Client) -> None:
    await register(strict_client)
    await register(strict_client, "bob@example.com")
    for _ in range(3):
        await login(strict_client, "wrong password")
    assert await login(strict_client, PASSWORD, "bob@example.com") == 200


async def test_successful_login_resets_the_failure_count(strict_client: Client) -> None:
    await register(strict_client)
    for _ in range(2):
        await login(strict_client, "wrong password")
    assert await login(strict_client, PASSWORD) == 200
    for _ in range(2):
        await login(strict_client, "wrong password")
    assert await login(strict_client, PASSWORD) == 200


async def test_unknown_emails_are_throttled_too(strict_client: Client) -> None:
    for _ in range(3):
        assert await login(strict_client, PASSWORD, "ghost@example.com") == 401
    assert await login(strict_client, PASSWORD, "ghost@example.com") == 429


async def test_failures_from_one_address_are_throttled_across_accounts(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(
        auth=replace(config.auth, login_max_failures=100, login_ip_max_failures=3)
    )
    for email in ("a1@example.com", "a2@example.com", "a3@example.com"):
        assert await login(client, "wrong password", email) == 401
    assert await login(client, "wrong password", "a4@example.com") == 429


async def test_register_from_an_address_throttled_for_logins_creates_and_logs_in(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(auth=replace(config.auth, login_ip_max_failures=2))
    for email in ("a1@example.com", "a2@example.com"):
        assert await login(client, "wrong password", email) == 401
    assert await login(client, "wrong password", "a3@example.com") == 429
    body = await register(client, "new@example.com")
    resp = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert resp.status == 200
    assert (await resp.json())["user"]["email"] == "new@example.com"


# -- sign-ups and password resets ------------------------------------------------------------


async def _post(client: Client, path: str, body: dict[str, Any]) -> tuple[int, Any, str | None]:
    resp = await client.post(path, json=body)
    return resp.status, await resp.json(), resp.headers.get("Retry-After")


async def _count(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(query)
        return count
    finally:
        await conn.close()


def _signup(email: str) -> dict[str, str]:
    return {"email": email, "password": PASSWORD, "display_name": email.split("@")[0]}


async def test_concurrent_signups_from_one_address_stop_at_the_limit(
    client: Client, config: Config, dsn: str
) -> None:
    limit = config.auth.register_ip_max_attempts
    answers = await asyncio.gather(
        *(_post(client, "/api/v1/auth/register", _signup(f"u{n}@example.com")) for n in range(40))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [201] * limit + [429] * (40 - limit)
    refused = next(a for a in answers if a[0] == 429)
    assert refused[1] == {
        "error": {"code": "too_many_requests", "message": "too many sign-ups, try again later"}
    }
    assert refused[2] is not None and int(refused[2]) >= 1
    # Refused sign-ups created nothing.
    assert await _count(dsn, "SELECT count(*) FROM users") == limit


async def test_signups_for_one_email_stop_at_the_limit_in_any_case(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(auth=replace(config.auth, register_max_attempts=2))
    assert (await _post(client, "/api/v1/auth/register", _signup("ann@example.com")))[0] == 201
    assert (await _post(client, "/api/v1/auth/register", _signup("ANN@example.com")))[0] == 409
    status, _, _ = await _post(client, "/api/v1/auth/register", _signup("Ann@Example.com"))
    assert status == 429
    # Another e-mail from the same address is still welcome.
    assert (await _post(client, "/api/v1/auth/register", _signup("bob@example.com")))[0] == 201


async def test_invalid_signups_are_not_counted(make_client: MakeClient, config: Config) -> None:
    client = await make_client(auth=replace(config.auth, register_ip_max_attempts=1))
    for _ in range(3):
        status, _, _ = await _post(
            client, "/api/v1/auth/register", {**_signup("ann@example.com"), "password": "short"}
        )
        assert status == 422
    assert (await _post(client, "/api/v1/auth/register", _signup("ann@example.com")))[0] == 201


async def test_reset_requests_for_one_email_stop_at_the_limit_and_mail_only_those(
    client: Client, config: Config, dsn: str, mailer: CapturingMailSender
) -> None:
    await register(client)
    limit = config.auth.reset_max_requests
    answers = await asyncio.gather(
        *(_post(client, "/api/v1/auth/password-reset", {"email": "ann@example.com"})
          for _ in range(40))
    )  # fmt: skip
    assert sorted(status for status, _, _ in answers) == [202] * limit + [429] * (40 - limit)
    for _ in range(limit):
        await mailer.next_mail()
    assert mailer.sent == []
    assert await _count(dsn, "SELECT count(*) FROM password_resets") == limit


async def test_reset_throttle_answers_the_same_for_known_and_unknown_emails(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(auth=replace(config.auth, reset_max_requests=2))
    await register(client)
    known = [
        await _post(client, "/api/v1/auth/password-reset", {"email": "ann@example.com"})
        for _ in range(4)
    ]
    unknown = [
        await _post(client, "/api/v1/auth/password-reset", {"email": "ghost@example.com"})
        for _ in range(4)
    ]
    assert [(s, b) for s, b, _ in known] == [(s, b) for s, b, _ in unknown]
    assert [s for s, _, _ in known] == [202, 202, 429, 429]
    assert known[2][1] == {
        "error": {
            "code": "too_many_requests",
            "message": "too many reset requests, try again later",
        }
    }


async def test_reset_requests_from_one_address_stop_at_the_limit(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(auth=replace(config.auth, reset_ip_max_requests=3))
    for n in range(3):
        status, _, _ = await _post(
            client, "/api/v1/auth/password-reset", {"email": f"u{n}@example.com"}
        )
        assert status == 202
    status, _, retry_after = await _post(
        client, "/api/v1/auth/password-reset", {"email": "u9@example.com"}
    )
    assert status == 429 and retry_after is not None


async def test_signups_leave_a_hashing_thread_for_logins(db: Database, config: Config) -> None:
    # Two hashing threads, many sign-ups from many addresses at once: a login still finds a
    # thread, because sign-ups never hold them all.
    passwords = GatedPasswords(threads=2)
    auth = AuthService(
        db, config.auth, CapturingMailSender(), public_url=config.public_url, hash_workers=2,
        passwords=passwords,
    )  # fmt: skip
    try:
        passwords.open()
        await auth.register("ann@example.com", PASSWORD, "Ann")
        passwords.shut()
        signups = [
            asyncio.create_task(
                auth.register(f"u{n}@example.com", PASSWORD, f"u{n}", client_ip=f"10.0.0.{n}")
            )
            for n in range(6)
        ]
        await passwords.hashes_in_flight(1)
        async with asyncio.timeout(GENEROUS_S):
            result = await auth.login(
                "ann@example.com", PASSWORD, client_ip="10.0.1.1", user_agent="test"
            )
        assert result.user.email == "ann@example.com"
        assert passwords.most_hashing == 1
        passwords.open()
        assert len(await asyncio.gather(*signups)) == 6
    finally:
        await auth.close()
