"""Login throttling: FailureWindow with a hand-driven clock, and the 429 the API answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from livecore.auth.throttle import FailureWindow
from livecore.config import Config
from tests.conftest import Client, MakeClient, bearer, register

PASSWORD = "correct horse battery"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def window(clock: FakeClock, limit: int = 3, window_s: float = 60.0, **kw: int) -> FailureWindow:
    return FailureWindow(limit, window_s, clock=clock, **kw)


# -- FailureWindow ---------------------------------------------------------------------------


def test_unknown_key_may_try_at_once(clock: FakeClock) -> None:
    assert window(clock).retry_after_s("ann") == 0.0


def test_failures_below_the_limit_do_not_throttle(clock: FakeClock) -> None:
    w = window(clock, limit=3)
    w.fail("ann")
    w.fail("ann")
    assert w.retry_after_s("ann") == 0.0


def test_reaching_the_limit_throttles_until_the_first_failure_leaves_the_window(
    clock: FakeClock,
) -> None:
    w = window(clock, limit=3, window_s=60)
    for _ in range(3):
        w.fail("ann")
        clock.now += 5
    # Failures at 1000, 1005, 1010; now 1015: the first leaves the window at 1060.
    assert w.retry_after_s("ann") == 45.0


def test_throttle_lifts_once_the_window_has_passed(clock: FakeClock) -> None:
    w = window(clock, limit=3, window_s=60)
    for _ in range(3):
        w.fail("ann")
    clock.now += 60
    assert w.retry_after_s("ann") == 0.0


def test_throttle_shrinks_as_time_passes(clock: FakeClock) -> None:
    w = window(clock, limit=2, window_s=60)
    w.fail("ann")
    w.fail("ann")
    clock.now += 20
    assert w.retry_after_s("ann") == 40.0


def test_wait_counts_from_the_oldest_of_the_latest_failures(clock: FakeClock) -> None:
    w = window(clock, limit=2, window_s=60)
    w.fail("ann")  # 1000
    clock.now += 10
    w.fail("ann")  # 1010
    clock.now += 10
    w.fail("ann")  # 1020: the failure at 1000 no longer decides
    assert w.retry_after_s("ann") == 50.0


def test_old_failures_expire_but_recent_ones_still_count(clock: FakeClock) -> None:
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


def test_clear_forgets_the_failures_of_a_key(clock: FakeClock) -> None:
    w = window(clock, limit=2)
    w.fail("ann")
    w.fail("ann")
    w.clear("ann")
    assert w.retry_after_s("ann") == 0.0


def test_clear_of_an_unknown_key_is_harmless(clock: FakeClock) -> None:
    window(clock).clear("nobody")


def test_keys_are_counted_separately(clock: FakeClock) -> None:
    w = window(clock, limit=2)
    w.fail("ann")
    w.fail("ann")
    w.fail("bob")
    assert w.retry_after_s("ann") > 0
    assert w.retry_after_s("bob") == 0.0


def test_full_table_evicts_expired_keys_first(clock: FakeClock) -> None:
    w = window(clock, limit=1, window_s=60, max_keys=2)
    w.fail("old")
    clock.now += 30
    w.fail("live")
    clock.now += 40  # "old" has expired, "live" has not
    w.fail("new")
    assert w.retry_after_s("live") == 20.0
    assert w.retry_after_s("new") == 60.0


def test_full_table_of_live_keys_forgets_the_oldest_inserted(clock: FakeClock) -> None:
    w = window(clock, limit=1, window_s=60, max_keys=2)
    w.fail("first")
    w.fail("second")
    w.fail("third")
    assert w.retry_after_s("first") == 0.0
    assert w.retry_after_s("second") == 60.0
    assert w.retry_after_s("third") == 60.0


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
