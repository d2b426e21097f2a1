"""A stale session cookie (logged out elsewhere, revoked, expired) on public routes: the
visitor is anonymous and the browser is told to drop the cookie; routes that need a login
still answer 401."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import pytest
from yarl import URL

from livecore.auth.tokens import hash_secret
from livecore.config import Config
from tests.conftest import Client, MakeClient, bearer, register

INVALID_SESSION = {"error": {"code": "unauthorized", "message": "session is invalid or expired"}}


async def execute(dsn: str, query: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


@pytest.fixture
async def client(make_client: MakeClient, config: Config) -> Client:
    """An app that looks every session up afresh, so a revocation shows at once."""
    return await make_client(auth=replace(config.auth, session_cache_s=0.0))


async def stale_viewer(client: Client, dsn: str, visibility: str = "public") -> str:
    """A public (or subscriber-only) stream "open-air", and a viewer whose session cookie
    is still in the client's jar but was revoked; returns the viewer's token."""
    owner = await register(client, "owner@example.com", creator=True)
    resp = await client.post(
        "/api/v1/streams", json={"slug": "open-air", "visibility": visibility},
        headers=bearer(owner["token"]),
    )  # fmt: skip
    assert resp.status == 201
    client.session.cookie_jar.clear()
    token: str = (await register(client, "viewer@example.com"))["token"]
    await execute(
        dsn, "UPDATE sessions SET revoked_at = now() WHERE token_hash = $1", hash_secret(token)
    )
    return token


def jar_session(client: Client) -> str | None:
    cookie = client.session.cookie_jar.filter_cookies(URL(str(client.make_url("/"))))
    morsel = cookie.get("livecore_session")
    return morsel.value if morsel is not None else None


async def test_public_stream_playback_with_a_revoked_cookie_plays_and_clears_it(
    client: Client, dsn: str
) -> None:
    await stale_viewer(client, dsn)
    assert jar_session(client)
    resp = await client.post("/api/v1/streams/open-air/playback")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["url"] == "/hls/open-air/master.m3u8"
    assert resp.cookies["livecore_session"].value == ""
    assert resp.cookies["livecore_session"]["max-age"] == "0"
    assert resp.cookies["livecore_csrf"].value == ""
    assert jar_session(client) is None


async def test_public_stream_playback_with_an_expired_cookie_plays(
    client: Client, dsn: str
) -> None:
    await stale_viewer(client, dsn)
    await execute(dsn, "UPDATE sessions SET revoked_at = NULL, expires_at = now()")
    resp = await client.post("/api/v1/streams/open-air/playback")
    assert resp.status == 200


async def test_chat_socket_with_a_revoked_cookie_joins_anonymously_and_clears_it(
    client: Client, dsn: str
) -> None:
    await stale_viewer(client, dsn)
    ws = await client.ws_connect("/ws/open-air")
    try:
        frames = await ws.receive_json(timeout=10)
        hello = next(e for e in frames if e["type"] == "hello")
        assert hello["user"] is None
    finally:
        await ws.close()
    assert jar_session(client) is None


async def test_subscriber_stream_with_a_revoked_cookie_asks_to_log_in(
    client: Client, dsn: str
) -> None:
    await stale_viewer(client, dsn, "subscribers")
    resp = await client.post("/api/v1/streams/open-air/playback")
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "log in to watch this stream"


async def test_route_that_needs_a_login_still_refuses_a_revoked_cookie_and_clears_it(
    client: Client, dsn: str
) -> None:
    await stale_viewer(client, dsn)
    resp = await client.get("/api/v1/me")
    assert resp.status == 401
    assert await resp.json() == INVALID_SESSION
    assert resp.cookies["livecore_session"].value == ""


async def test_revoked_bearer_token_on_a_public_route_is_still_refused(
    client: Client, dsn: str
) -> None:
    # A client that presents a token explicitly is told it is bad, not silently demoted.
    token = await stale_viewer(client, dsn)
    client.session.cookie_jar.clear()
    resp = await client.post("/api/v1/streams/open-air/playback", headers=bearer(token))
    assert resp.status == 401
    assert await resp.json() == INVALID_SESSION
    assert "livecore_session" not in resp.cookies
