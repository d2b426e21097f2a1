"""CSRF: cookie-authenticated writes need X-CSRF-Token; bearer requests and reads do not."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client, bearer, register

FORBIDDEN = {"error": {"code": "forbidden", "message": "missing or wrong X-CSRF-Token header"}}
STREAM = {"slug": "ann-live", "title": "Ann live"}


async def cookie_login(client: Client, *, creator: bool = True) -> dict[str, Any]:
    """Register, leaving the session cookie in the client's cookie jar (as a browser would)."""
    return await register(client, creator=creator)


async def test_cookie_post_without_csrf_header_is_forbidden(client: Client) -> None:
    await cookie_login(client)
    resp = await client.post("/api/v1/streams", json=STREAM)
    assert resp.status == 403
    assert await resp.json() == FORBIDDEN


async def test_cookie_post_with_wrong_csrf_header_is_forbidden(client: Client) -> None:
    body = await cookie_login(client)
    wrong = body["csrf_token"][:-1] + ("A" if body["csrf_token"][-1] != "A" else "B")
    resp = await client.post("/api/v1/streams", json=STREAM, headers={"X-CSRF-Token": wrong})
    assert resp.status == 403
    assert await resp.json() == FORBIDDEN


async def test_cookie_post_with_another_sessions_csrf_token_is_forbidden(client: Client) -> None:
    other = await register(client, "bob@example.com", creator=True)
    await cookie_login(client)  # the jar now holds Ann's session
    resp = await client.post(
        "/api/v1/streams", json=STREAM, headers={"X-CSRF-Token": other["csrf_token"]}
    )
    assert resp.status == 403


async def test_cookie_post_with_non_ascii_csrf_header_is_forbidden(client: Client) -> None:
    await cookie_login(client)
    resp = await client.post("/api/v1/streams", json=STREAM, headers={"X-CSRF-Token": "é" * 43})
    assert resp.status == 403


async def test_cookie_post_with_right_csrf_token_works(client: Client) -> None:
    body = await cookie_login(client)
    resp = await client.post(
        "/api/v1/streams", json=STREAM, headers={"X-CSRF-Token": body["csrf_token"]}
    )
    assert resp.status == 201


async def test_csrf_token_in_login_response_matches_the_csrf_cookie(client: Client) -> None:
    await register(client)
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "correct horse battery"}
    )
    body = await resp.json()
    assert resp.cookies["livecore_csrf"].value == body["csrf_token"]
    logout = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert logout.status == 204


async def test_cookie_logout_without_csrf_header_is_forbidden(client: Client) -> None:
    await cookie_login(client, creator=False)
    resp = await client.post("/api/v1/auth/logout")
    assert resp.status == 403
    # The session survives the refused logout.
    assert (await client.get("/api/v1/me")).status == 200


async def test_cookie_delete_without_csrf_header_is_forbidden(client: Client) -> None:
    body = await cookie_login(client)
    await client.post("/api/v1/streams", json=STREAM, headers=bearer(body["token"]))
    resp = await client.delete("/api/v1/streams/ann-live")
    assert resp.status == 403


async def test_cookie_patch_without_csrf_header_is_forbidden(client: Client) -> None:
    body = await cookie_login(client)
    await client.post("/api/v1/streams", json=STREAM, headers=bearer(body["token"]))
    resp = await client.patch("/api/v1/streams/ann-live", json={"title": "new"})
    assert resp.status == 403


async def test_cookie_get_needs_no_csrf_header(client: Client) -> None:
    await cookie_login(client)
    resp = await client.get("/api/v1/streams", params={"owner": "me"})
    assert resp.status == 200


async def test_bearer_post_needs_no_csrf_header(client: Client) -> None:
    body = await cookie_login(client)
    client.session.cookie_jar.clear()
    resp = await client.post("/api/v1/streams", json=STREAM, headers=bearer(body["token"]))
    assert resp.status == 201


async def test_bearer_post_needs_no_csrf_header_even_with_a_cookie_present(
    client: Client,
) -> None:
    body = await cookie_login(client)
    resp = await client.post("/api/v1/streams", json=STREAM, headers=bearer(body["token"]))
    assert resp.status == 201
