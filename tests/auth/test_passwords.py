"""Changing a password, and resetting a forgotten one with a mailed token."""

from __future__ import annotations

import re

import asyncpg

from tests.conftest import Client, bearer, register
from tests.support.fakes import CapturingMailSender

EMAIL = "ann@example.com"
OLD = "correct horse battery"
NEW = "purple monkey dishwasher"
RESET_ANSWER = {"status": "if an account with this email exists, a reset token has been sent"}
BAD_TOKEN = {
    "error": {
        "code": "invalid",
        "message": "reset token is invalid, used or expired",
        "fields": {"token": "is invalid or expired"},
    }
}


async def execute(dsn: str, query: str, *args: object) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.execute(query, *args)
    finally:
        await conn.close()


async def login_status(client: Client, password: str, email: str = EMAIL) -> int:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return resp.status


async def login_token(client: Client, password: str = OLD) -> str:
    resp = await client.post("/api/v1/auth/login", json={"email": EMAIL, "password": password})
    assert resp.status == 200
    token: str = (await resp.json())["token"]
    return token


async def me_status(client: Client, token: str) -> int:
    return (await client.get("/api/v1/me", headers=bearer(token))).status


async def change_password(client: Client, token: str, current: str, new: str) -> int:
    resp = await client.post(
        "/api/v1/auth/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(token),
    )
    return resp.status


async def reset_token(client: Client, mailer: CapturingMailSender, email: str = EMAIL) -> str:
    resp = await client.post("/api/v1/auth/password-reset", json={"email": email})
    assert resp.status == 202
    mail = await mailer.next_mail()
    match = re.search(r"lcr_[A-Za-z0-9_-]+", mail.body)
    assert match is not None, mail.body
    return match.group()


async def confirm(client: Client, token: str, password: str = NEW) -> int:
    resp = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": password}
    )
    return resp.status


# -- change ----------------------------------------------------------------------------------


async def test_change_password_answers_204_and_the_new_password_logs_in(client: Client) -> None:
    token = (await register(client))["token"]
    assert await change_password(client, token, OLD, NEW) == 204
    assert await login_status(client, NEW) == 200


async def test_change_password_makes_the_old_password_fail(client: Client) -> None:
    token = (await register(client))["token"]
    await change_password(client, token, OLD, NEW)
    assert await login_status(client, OLD) == 401


async def test_change_password_with_wrong_current_password_is_invalid(client: Client) -> None:
    token = (await register(client))["token"]
    resp = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not my password", "new_password": NEW},
        headers=bearer(token),
    )
    assert resp.status == 422
    assert await resp.json() == {
        "error": {
            "code": "invalid",
            "message": "current password is wrong",
            "fields": {"current_password": "is wrong"},
        }
    }
    assert await login_status(client, OLD) == 200


async def test_change_password_refuses_a_weak_new_password(client: Client) -> None:
    token = (await register(client))["token"]
    resp = await client.post(
        "/api/v1/auth/password",
        json={"current_password": OLD, "new_password": "password123"},
        headers=bearer(token),
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"new_password": "is too common"}
    assert await login_status(client, OLD) == 200


async def test_change_password_revokes_other_sessions(client: Client) -> None:
    current = (await register(client))["token"]
    other = await login_token(client)
    assert await me_status(client, other) == 200  # now cached by the app
    await change_password(client, current, OLD, NEW)
    assert await me_status(client, other) == 401


async def test_change_password_keeps_the_current_session(client: Client) -> None:
    current = (await register(client))["token"]
    await login_token(client)
    await change_password(client, current, OLD, NEW)
    assert await me_status(client, current) == 200


async def test_change_password_requires_authentication(client: Client) -> None:
    client.session.cookie_jar.clear()
    resp = await client.post(
        "/api/v1/auth/password", json={"current_password": OLD, "new_password": NEW}
    )
    assert resp.status == 401


async def test_change_password_is_audited(client: Client, dsn: str) -> None:
    body = await register(client)
    await change_password(client, body["token"], OLD, NEW)
    conn = await asyncpg.connect(dsn)
    try:
        actions = await conn.fetch(
            "SELECT action FROM audit_log WHERE target_type = 'user' AND target_id = $1",
            str(body["user"]["id"]),
        )
    finally:
        await conn.close()
    assert "user.password_changed" in [r["action"] for r in actions]


# -- reset -----------------------------------------------------------------------------------


async def test_reset_request_answers_202_for_an_existing_account(client: Client) -> None:
    await register(client)
    resp = await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    assert resp.status == 202
    assert await resp.json() == RESET_ANSWER


async def test_reset_request_answers_the_same_for_an_unknown_email(client: Client) -> None:
    await register(client)
    known = await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": "bob@example.com"})
    assert (unknown.status, await unknown.json()) == (known.status, await known.json())


async def test_reset_mail_goes_to_the_account_and_carries_a_token(
    client: Client, mailer: CapturingMailSender
) -> None:
    await register(client)
    await client.post("/api/v1/auth/password-reset", json={"email": "ANN@example.com"})
    mail = await mailer.next_mail()
    assert mail.to == EMAIL
    assert re.search(r"lcr_[A-Za-z0-9_-]{20,}", mail.body)


async def test_reset_mail_links_to_the_reset_page_with_the_token_in_the_fragment(
    client: Client, mailer: CapturingMailSender
) -> None:
    await register(client)
    await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    mail = await mailer.next_mail()
    # A page a person opens, not an API to call; the token never reaches a server log.
    link = re.search(
        r"http://127\.0\.0\.1:8080/reset-password#token=(lcr_[A-Za-z0-9_-]+)", mail.body
    )
    assert link is not None, mail.body
    assert "/api/" not in mail.body
    page = await client.get("/reset-password")
    assert page.status == 200 and page.content_type == "text/html"


async def test_reset_for_an_unknown_email_sends_no_mail(
    client: Client, mailer: CapturingMailSender
) -> None:
    await register(client)
    await client.post("/api/v1/auth/password-reset", json={"email": "bob@example.com"})
    await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    mail = await mailer.next_mail()
    assert mail.to == EMAIL
    assert mailer.sent == []


async def test_reset_token_sets_the_new_password(
    client: Client, mailer: CapturingMailSender
) -> None:
    await register(client)
    token = await reset_token(client, mailer)
    assert await confirm(client, token) == 204
    assert await login_status(client, NEW) == 200
    assert await login_status(client, OLD) == 401


async def test_reset_token_works_only_once(client: Client, mailer: CapturingMailSender) -> None:
    await register(client)
    token = await reset_token(client, mailer)
    assert await confirm(client, token) == 204
    resp = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "password": "another fine password"},
    )
    assert resp.status == 422
    assert await resp.json() == BAD_TOKEN
    assert await login_status(client, NEW) == 200


async def test_expired_reset_token_is_refused(
    client: Client, mailer: CapturingMailSender, dsn: str
) -> None:
    await register(client)
    token = await reset_token(client, mailer)
    await execute(dsn, "UPDATE password_resets SET expires_at = now() - interval '1 second'")
    resp = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW}
    )
    assert resp.status == 422
    assert await resp.json() == BAD_TOKEN
    assert await login_status(client, OLD) == 200


async def test_unknown_reset_token_is_refused(client: Client) -> None:
    await register(client)
    assert await confirm(client, "lcr_" + "x" * 43) == 422


async def test_reset_token_of_the_wrong_kind_is_refused(client: Client) -> None:
    session_token = (await register(client))["token"]
    assert await confirm(client, session_token) == 422


async def test_reset_revokes_existing_sessions(client: Client, mailer: CapturingMailSender) -> None:
    session = (await register(client))["token"]
    assert await me_status(client, session) == 200  # now cached by the app
    token = await reset_token(client, mailer)
    await confirm(client, token)
    assert await me_status(client, session) == 401


async def test_reset_refuses_a_weak_new_password(
    client: Client, mailer: CapturingMailSender
) -> None:
    await register(client)
    token = await reset_token(client, mailer)
    resp = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": "ann@example.com"}
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {
        "password": "must not contain your email address"
    }
    assert await login_status(client, OLD) == 200


async def test_reset_token_still_works_after_a_weak_password_was_refused(
    client: Client, mailer: CapturingMailSender
) -> None:
    await register(client)
    token = await reset_token(client, mailer)
    assert await confirm(client, token, "short") == 422
    assert await confirm(client, token) == 204


async def test_newer_reset_token_dies_when_an_older_one_is_used(
    client: Client, mailer: CapturingMailSender
) -> None:
    await register(client)
    first = await reset_token(client, mailer)
    second = await reset_token(client, mailer)
    assert await confirm(client, first) == 204
    assert await confirm(client, second) == 422


async def test_reset_request_with_malformed_body_is_invalid(client: Client) -> None:
    resp = await client.post("/api/v1/auth/password-reset", json={"email": 42})
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"email": "must be a string"}
