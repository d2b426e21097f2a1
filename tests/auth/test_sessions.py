"""Sessions: bearer and cookie authentication, logout, expiry, revocation, bad tokens."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import pytest

from livecore.auth.tokens import hash_secret
from livecore.config import Config
from tests.conftest import Client, MakeClient, bearer, register

INVALID_SESSION = {"error": {"code": "unauthorized", "message": "session is invalid or expired"}}


async def execute(dsn: str, query: str, *args: object) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.execute(query, *args)
    finally:
        await conn.close()


async def me_status(client: Client, token: str) -> int:
    resp = await client.get("/api/v1/me", headers=bearer(token))
    return resp.status


@pytest.fixture
async def uncached_client(make_client: MakeClient, config: Config) -> Client:
    """An app that looks every session up afresh, so database changes show at once."""
    return await make_client(auth=replace(config.auth, session_cache_s=0.0))


async def test_logout_answers_204_and_the_token_stops_working(client: Client) -> None:
    token = (await register(client))["token"]
    assert await me_status(client, token) == 200
    resp = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert resp.status == 204
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401
    assert await resp.json() == INVALID_SESSION


async def test_logout_clears_the_session_cookies(client: Client) -> None:
    token = (await register(client))["token"]
    resp = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert resp.cookies["livecore_session"].value == ""
    assert resp.cookies["livecore_csrf"].value == ""


async def test_logout_ends_only_that_session(client: Client) -> None:
    first = (await register(client))["token"]
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "correct horse battery"}
    )
    second = (await resp.json())["token"]
    await client.post("/api/v1/auth/logout", headers=bearer(first))
    assert await me_status(client, second) == 200


async def test_logout_records_revoked_at(client: Client, dsn: str) -> None:
    token = (await register(client))["token"]
    await client.post("/api/v1/auth/logout", headers=bearer(token))
    conn = await asyncpg.connect(dsn)
    try:
        revoked_at = await conn.fetchval(
            "SELECT revoked_at FROM sessions WHERE token_hash = $1", hash_secret(token)
        )
    finally:
        await conn.close()
    assert revoked_at is not None


async def test_logout_without_a_session_is_unauthorized(client: Client) -> None:
    resp = await client.post("/api/v1/auth/logout")
    assert resp.status == 401


async def test_expired_session_is_refused(client: Client, dsn: str) -> None:
    token = (await register(client))["token"]
    await execute(dsn, "UPDATE sessions SET expires_at = now() - interval '1 second'")
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401
    assert await resp.json() == INVALID_SESSION


async def test_session_that_expires_after_use_stops_working(
    uncached_client: Client, dsn: str
) -> None:
    token = (await register(uncached_client))["token"]
    assert await me_status(uncached_client, token) == 200
    await execute(dsn, "UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert await me_status(uncached_client, token) == 401


async def test_revoked_session_is_refused(uncached_client: Client, dsn: str) -> None:
    token = (await register(uncached_client))["token"]
    assert await me_status(uncached_client, token) == 200
    await execute(
        dsn, "UPDATE sessions SET revoked_at = now() WHERE token_hash = $1", hash_secret(token)
    )
    resp = await uncached_client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401
    assert await resp.json() == INVALID_SESSION


async def test_token_with_one_character_changed_is_refused(client: Client) -> None:
    token = (await register(client))["token"]
    last = "A" if token[-1] != "A" else "B"
    resp = await client.get("/api/v1/me", headers=bearer(token[:-1] + last))
    assert resp.status == 401
    assert await resp.json() == INVALID_SESSION


async def test_token_without_its_prefix_is_refused(client: Client) -> None:
    token = (await register(client))["token"]
    assert await me_status(client, token.removeprefix("lcs_")) == 401


async def test_overlong_token_is_refused(client: Client) -> None:
    token = (await register(client))["token"]
    assert await me_status(client, token + "x" * 200) == 401


@pytest.mark.parametrize(
    "header",
    ["Basic YW5uOnB3", "Bearer", "Bearer ", "Token lcs_abc", "lcs_abc"],
)
async def test_malformed_authorization_header_is_unauthorized(client: Client, header: str) -> None:
    client.session.cookie_jar.clear()
    resp = await client.get("/api/v1/me", headers={"Authorization": header})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_malformed_authorization_header_wins_over_a_valid_cookie(client: Client) -> None:
    await register(client)  # the client's cookie jar now holds the session cookie
    resp = await client.get("/api/v1/me", headers={"Authorization": "Basic YW5uOnB3"})
    assert resp.status == 401


async def test_bearer_scheme_is_case_insensitive(client: Client) -> None:
    token = (await register(client))["token"]
    resp = await client.get("/api/v1/me", headers={"Authorization": f"bearer {token}"})
    assert resp.status == 200


async def test_session_cookie_authenticates_get_me(client: Client) -> None:
    await register(client)  # sets the cookie in the client's jar
    resp = await client.get("/api/v1/me")
    assert resp.status == 200
    assert (await resp.json())["user"]["email"] == "ann@example.com"


async def test_session_cookie_set_by_hand_authenticates_get_me(client: Client) -> None:
    token = (await register(client))["token"]
    client.session.cookie_jar.clear()
    resp = await client.get("/api/v1/me", cookies={"livecore_session": token})
    assert resp.status == 200


async def test_invalid_session_cookie_is_unauthorized(client: Client) -> None:
    resp = await client.get("/api/v1/me", cookies={"livecore_session": "lcs_nothing"})
    assert resp.status == 401
    assert await resp.json() == INVALID_SESSION


async def test_logged_out_cookie_no_longer_authenticates(client: Client) -> None:
    token = (await register(client))["token"]
    await client.post("/api/v1/auth/logout", headers=bearer(token))
    resp = await client.get("/api/v1/me", cookies={"livecore_session": token})
    assert resp.status == 401


async def _sessions(client: Client, token: str) -> list[dict[str, object]]:
    resp = await client.get("/api/v1/auth/sessions", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    sessions: list[dict[str, object]] = (await resp.json())["sessions"]
    return sessions


async def _login(client: Client, agent: str) -> str:
    resp = await client.post(
        "/api/v1/auth/login",
        json={"email": "ann@example.com", "password": "correct horse battery"},
        headers={"User-Agent": agent},
    )
    assert resp.status == 200
    token: str = (await resp.json())["token"]
    return token


async def test_sessions_lists_the_users_live_sessions_and_marks_this_one(client: Client) -> None:
    await register(client, "ann@example.com")
    laptop = await _login(client, "Laptop browser")
    phone = await _login(client, "Phone browser")
    await client.post("/api/v1/auth/logout", headers=bearer(phone))
    other = await register(client, "bob@example.com")
    sessions = await _sessions(client, laptop)
    agents = [s["user_agent"] for s in sessions]
    assert "Laptop browser" in agents and "Phone browser" not in agents  # logged out: gone
    assert len(sessions) == 2  # the register session and the laptop; never bob's
    assert [s["current"] for s in sessions if s["user_agent"] == "Laptop browser"] == [True]
    assert sum(bool(s["current"]) for s in sessions) == 1
    assert all("token" not in k for s in sessions for k in s)
    assert len(await _sessions(client, other["token"])) == 1


async def test_ending_one_session_logs_out_that_device_only(uncached_client: Client) -> None:
    client = uncached_client
    await register(client, "ann@example.com")
    laptop = await _login(client, "Laptop browser")
    phone = await _login(client, "Phone browser")
    (phone_session,) = [
        s for s in await _sessions(client, laptop) if s["user_agent"] == "Phone browser"
    ]
    resp = await client.delete(
        f"/api/v1/auth/sessions/{phone_session['id']}", headers=bearer(laptop)
    )
    assert resp.status == 204
    assert await me_status(client, phone) == 401
    assert await me_status(client, laptop) == 200
    # Someone else's session, or one already ended, is not found.
    bob = (await register(client, "bob@example.com"))["token"]
    for token in (bob, laptop):
        again = await client.delete(
            f"/api/v1/auth/sessions/{phone_session['id']}", headers=bearer(token)
        )
        assert again.status == 404


async def test_log_out_everywhere_ends_every_session_and_clears_the_cookies(
    uncached_client: Client,
) -> None:
    client = uncached_client
    first = (await register(client, "ann@example.com"))["token"]
    laptop = await _login(client, "Laptop browser")
    bob = (await register(client, "bob@example.com"))["token"]
    resp = await client.delete("/api/v1/auth/sessions", headers=bearer(laptop))
    assert resp.status == 204
    assert resp.cookies["livecore_session"].value == ""
    assert await me_status(client, first) == 401
    assert await me_status(client, laptop) == 401
    assert await me_status(client, bob) == 200  # other accounts keep theirs
