"""Registering, logging in, and what each refuses (/api/v1/auth/register, /login, /me)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client, bearer, register

PASSWORD = "correct horse battery"


async def post_register(client: Client, **fields: Any) -> tuple[int, dict[str, Any]]:
    body = {"email": "ann@example.com", "password": PASSWORD, "display_name": "Ann"} | fields
    resp = await client.post("/api/v1/auth/register", json=body)
    answer: dict[str, Any] = await resp.json()
    return resp.status, answer


async def login(client: Client, email: str, password: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    answer: dict[str, Any] = await resp.json()
    return resp.status, answer


# -- register --------------------------------------------------------------------------------


async def test_register_logs_in_and_me_answers(client: Client) -> None:
    body = await register(client, creator=True)
    assert body["user"]["role"] == "creator"
    resp = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert resp.status == 200
    assert (await resp.json())["user"]["email"] == "ann@example.com"


async def test_register_without_creator_flag_makes_a_viewer(client: Client) -> None:
    body = await register(client)
    assert body["user"]["role"] == "viewer"


async def test_register_answers_with_session_token_csrf_token_and_user(client: Client) -> None:
    body = await register(client, display_name="Ann Example")
    assert body["token"].startswith("lcs_")
    assert body["csrf_token"]
    assert body["expires_at"]
    assert body["user"]["display_name"] == "Ann Example"
    assert "password_hash" not in body["user"]


async def test_register_sets_session_and_csrf_cookies(client: Client) -> None:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "ann@example.com", "password": PASSWORD, "display_name": "Ann"},
    )
    assert resp.status == 201
    body = await resp.json()
    assert resp.cookies["livecore_session"].value == body["token"]
    assert resp.cookies["livecore_session"]["httponly"]
    assert resp.cookies["livecore_csrf"].value == body["csrf_token"]


async def test_register_refuses_too_short_password(client: Client) -> None:
    status, body = await post_register(client, password="k9#Lm2")
    assert status == 422
    assert body["error"]["code"] == "invalid"
    assert body["error"]["fields"] == {"password": "must be at least 10 characters"}


async def test_register_refuses_common_password(client: Client) -> None:
    status, body = await post_register(client, password="Password123")
    assert status == 422
    assert body["error"]["fields"] == {"password": "is too common"}


async def test_register_refuses_repetitive_password(client: Client) -> None:
    status, body = await post_register(client, password="abababababab")
    assert status == 422
    assert body["error"]["fields"] == {"password": "is too repetitive"}


async def test_register_refuses_password_containing_the_email_name(client: Client) -> None:
    status, body = await post_register(
        client, email="annabel@example.com", password="my-Annabel-secret"
    )
    assert status == 422
    assert body["error"]["fields"] == {"password": "must not contain your email address"}


async def test_register_refuses_password_equal_to_the_email(client: Client) -> None:
    status, body = await post_register(client, email="ann@example.com", password="ann@example.com")
    assert status == 422
    assert body["error"]["fields"] == {"password": "must not contain your email address"}


async def test_register_refuses_malformed_email(client: Client) -> None:
    for email in ("ann", "ann@", "@example.com", "ann@example", "ann @example.com", "a@b@c.com"):
        status, body = await post_register(client, email=email)
        assert status == 422, email
        assert body["error"]["fields"] == {"email": "is not a valid email address"}, email


async def test_register_refuses_duplicate_email_in_any_case(client: Client) -> None:
    await register(client, "ann@example.com")
    status, body = await post_register(client, email="ANN@Example.COM")
    assert status == 409
    assert body == {
        "error": {"code": "conflict", "message": "an account with this email exists already"}
    }


async def test_register_refuses_display_name_with_control_characters(client: Client) -> None:
    for name in ("Ann\x07", "Ann\nSmith", "Ann\u202eevil"):
        status, body = await post_register(client, display_name=name)
        assert status == 422, repr(name)
        problem = body["error"]["fields"]["display_name"]
        assert problem == "must not contain control characters", repr(name)


async def test_register_refuses_blank_display_name(client: Client) -> None:
    status, body = await post_register(client, display_name="   ")
    assert status == 422
    assert body["error"]["fields"] == {"display_name": "must be 1 to 64 characters"}


async def test_register_names_every_wrong_field_at_once(client: Client) -> None:
    status, body = await post_register(client, email="nope", password="short", display_name="")
    assert status == 422
    assert set(body["error"]["fields"]) == {"email", "password", "display_name"}
    assert body["error"]["message"] == "invalid display_name, email, password"


async def test_register_refuses_missing_fields(client: Client) -> None:
    resp = await client.post("/api/v1/auth/register", json={})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {
        "email": "is required",
        "password": "is required",
        "display_name": "is required",
    }


# -- login -----------------------------------------------------------------------------------


async def test_login_with_right_password_returns_a_working_new_token(client: Client) -> None:
    registered = await register(client)
    status, body = await login(client, "ann@example.com", PASSWORD)
    assert status == 200
    assert body["token"] != registered["token"]
    resp = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert resp.status == 200


async def test_login_ignores_email_case(client: Client) -> None:
    await register(client, "ann@example.com")
    status, body = await login(client, "Ann@EXAMPLE.com", PASSWORD)
    assert status == 200
    assert body["user"]["email"] == "ann@example.com"


async def test_login_with_wrong_password_is_refused(client: Client) -> None:
    await register(client)
    status, body = await login(client, "ann@example.com", "not the password")
    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": "invalid email or password"}}


async def test_login_with_unknown_email_answers_like_a_wrong_password(client: Client) -> None:
    await register(client)
    wrong_password = await login(client, "ann@example.com", "not the password")
    unknown_email = await login(client, "bob@example.com", PASSWORD)
    assert unknown_email == wrong_password
    assert unknown_email[0] == 401


async def test_login_without_password_is_invalid(client: Client) -> None:
    resp = await client.post("/api/v1/auth/login", json={"email": "ann@example.com"})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"password": "is required"}


# -- /me -------------------------------------------------------------------------------------


async def test_me_without_credentials_is_unauthorized(client: Client) -> None:
    resp = await client.get("/api/v1/me")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert await resp.json() == {
        "error": {"code": "unauthorized", "message": "authentication required"}
    }


async def test_me_describes_the_logged_in_user(client: Client) -> None:
    body = await register(client, "bob@example.com", display_name="Bob", creator=True)
    resp = await client.get("/api/v1/me", headers=bearer(body["token"]))
    user = (await resp.json())["user"]
    assert user == body["user"]
    assert set(user) == {"id", "email", "display_name", "role", "created_at"}
