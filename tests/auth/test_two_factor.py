"""Two-factor authentication over the API: enrol, confirm, the code step of a login (a TOTP
code or a recovery code, each good once), disable; refusals (wrong, replayed and expired
codes, throttled attempts, forged and expired pending logins) and the settings that require
2FA for admin routes and payouts.

Codes are made here with pyotp from the secret the enrolment hands out. A code of the
current time step and one of the next are both accepted by the server for at least 30 s
(one step of clock skew either side), which is what lets a test spend two codes at once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pyotp

from livecore.auth import totp
from livecore.config import Config
from livecore.store import Database
from livecore.store.audit import AuditLog
from livecore.store.users import Users
from tests.conftest import PASSWORD, Client, MakeClient, bearer, register

EMAIL = "ann@example.com"


def code(secret: str, *, steps: int = 0) -> str:
    """The code of the current time step plus `steps` (negative: the past)."""
    return pyotp.TOTP(secret).at(time.time() + steps * totp.STEP_S)


def wrong(secret: str) -> str:
    """Six digits that are none of the codes the server accepts now."""
    good = {code(secret, steps=s) for s in (-1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222") if c not in good)


async def enrol(client: Client, token: str) -> str:
    resp = await client.post("/api/v1/me/2fa/enrol", headers=bearer(token))
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    assert body["qr_svg"].startswith("<svg")
    return str(body["secret"])


async def turn_on(client: Client, token: str) -> tuple[str, list[str]]:
    """Enrol and confirm with the current code: (secret, recovery codes). The next code to
    spend is `code(secret, steps=1)`."""
    secret = await enrol(client, token)
    resp = await client.post(
        "/api/v1/me/2fa/confirm",
        json={"code": code(secret), "password": PASSWORD},
        headers=bearer(token),
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["two_factor"]["enabled"] is True
    return secret, list(body["recovery_codes"])


async def password_step(client: Client, email: str = EMAIL) -> str:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["two_factor_required"] is True
    assert "token" not in body
    assert "livecore_session" not in resp.cookies
    return str(body["pending_token"])


async def code_step(client: Client, pending: str, given: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/api/v1/auth/login/2fa", json={"pending_token": pending, "code": given}
    )
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def status(client: Client, token: str) -> dict[str, Any]:
    resp = await client.get("/api/v1/me/2fa", headers=bearer(token))
    assert resp.status == 200
    body: dict[str, Any] = (await resp.json())["two_factor"]
    return body


async def test_enrol_confirm_and_log_in_with_a_code(client: Client, db: Database) -> None:
    ann = await register(client, EMAIL)
    assert (await status(client, ann["token"]))["enabled"] is False
    secret = await enrol(client, ann["token"])
    # Not on until a code confirms it: the password alone still logs in.
    assert (await status(client, ann["token"]))["enrolling"] is True
    plain = await client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert plain.status == 200
    resp = await client.post(
        "/api/v1/me/2fa/confirm",
        json={"code": code(secret), "password": PASSWORD},
        headers=bearer(ann["token"]),
    )
    assert resp.status == 200
    recovery = (await resp.json())["recovery_codes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10
    state = await status(client, ann["token"])
    assert (state["enabled"], state["enrolling"], state["recovery_codes_left"]) == (True, False, 10)
    # Only hashes are stored.
    stored = await db.pool.fetch("SELECT code_hash FROM two_factor_recovery")
    assert len(stored) == 10 and all(r["code_hash"] not in recovery for r in stored)

    pending = await password_step(client)
    got, body = await code_step(client, pending, code(secret, steps=1))
    assert got == 200, body
    assert body["token"].startswith("lcs_") and body["user"]["email"] == EMAIL
    me = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status == 200
    actions = await AuditLog(db).actions_for("user", ann["user"]["id"])
    assert "user.2fa_enabled" in actions


async def test_a_code_is_good_once_and_never_after_a_newer_one(client: Client) -> None:
    ann = await register(client, EMAIL)
    secret = await enrol(client, ann["token"])
    first = code(secret)
    resp = await client.post(
        "/api/v1/me/2fa/confirm",
        json={"code": first, "password": PASSWORD},
        headers=bearer(ann["token"]),
    )
    assert resp.status == 200
    # The confirming code was spent on enrolment: it cannot log in.
    got, body = await code_step(client, await password_step(client), first)
    assert (got, body["error"]["message"]) == (401, "the code is wrong or expired")
    pending = await password_step(client)
    second = code(secret, steps=1)
    assert (await code_step(client, pending, second))[0] == 200
    # Replayed within its window: refused; and so is the first, older code.
    for again in (second, first):
        got, _ = await code_step(client, pending, again)
        assert got == 401


async def test_expired_and_wrong_codes_are_refused(client: Client) -> None:
    ann = await register(client, EMAIL)
    secret = await enrol(client, ann["token"])
    for stale in (code(secret, steps=-3), wrong(secret)):
        resp = await client.post(
            "/api/v1/me/2fa/confirm",
            json={"code": stale, "password": PASSWORD},
            headers=bearer(ann["token"]),
        )
        assert resp.status == 422
        assert (await resp.json())["error"]["fields"] == {"code": "is wrong or expired"}
    assert (await status(client, ann["token"]))["enabled"] is False
    await client.post(
        "/api/v1/me/2fa/confirm",
        json={"code": code(secret), "password": PASSWORD},
        headers=bearer(ann["token"]),
    )
    pending = await password_step(client)
    for stale in (code(secret, steps=-2), code(secret, steps=-10), "12345", "abcdef"):
        got, _ = await code_step(client, pending, stale)
        assert got == 401, stale


async def test_recovery_codes_log_in_once_each(client: Client) -> None:
    ann = await register(client, EMAIL)
    _, recovery = await turn_on(client, ann["token"])
    pending = await password_step(client)
    # As typed by a person: upper case, no dashes.
    got, body = await code_step(client, pending, recovery[0].upper().replace("-", ""))
    assert got == 200, body
    assert (await code_step(client, pending, recovery[0]))[0] == 401
    assert (await code_step(client, pending, recovery[1]))[0] == 200
    assert (await status(client, body["token"]))["recovery_codes_left"] == 8


async def test_new_recovery_codes_replace_the_old_ones(client: Client) -> None:
    ann = await register(client, EMAIL)
    secret, old = await turn_on(client, ann["token"])
    resp = await client.post(
        "/api/v1/me/2fa/recovery-codes", json={"code": code(secret, steps=1)},
        headers=bearer(ann["token"]),
    )  # fmt: skip
    assert resp.status == 200
    new = (await resp.json())["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    pending = await password_step(client)
    assert (await code_step(client, pending, old[0]))[0] == 401
    assert (await code_step(client, pending, new[0]))[0] == 200


async def test_disable_needs_a_current_code_or_the_password(client: Client, db: Database) -> None:
    ann = await register(client, EMAIL)
    auth = bearer(ann["token"])
    secret, _ = await turn_on(client, ann["token"])
    for proof, field in (
        ({"code": wrong(secret)}, "code"),
        ({"password": "not it at all"}, "password"),
    ):
        resp = await client.post("/api/v1/me/2fa/disable", json=proof, headers=auth)
        assert resp.status == 422
        assert field in (await resp.json())["error"]["fields"]
    assert (await client.post("/api/v1/me/2fa/disable", json={}, headers=auth)).status == 422
    resp = await client.post(
        "/api/v1/me/2fa/disable", json={"code": code(secret, steps=1)}, headers=auth
    )
    assert resp.status == 204
    assert (await status(client, ann["token"]))["enabled"] is False
    assert await db.pool.fetchval("SELECT count(*) FROM two_factor_recovery") == 0
    plain = await client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert plain.status == 200
    # Off already: 409. On again, then off with the password.
    assert (await client.post("/api/v1/me/2fa/disable", json={"password": PASSWORD},
                              headers=auth)).status == 409  # fmt: skip
    await turn_on(client, ann["token"])
    resp = await client.post("/api/v1/me/2fa/disable", json={"password": PASSWORD}, headers=auth)
    assert resp.status == 204
    actions = await AuditLog(db).actions_for("user", ann["user"]["id"])
    assert actions.count("user.2fa_disabled") == 2


async def test_confirming_needs_the_password_too(client: Client) -> None:
    ann = await register(client, EMAIL)
    secret = await enrol(client, ann["token"])
    for body in ({"code": code(secret)}, {"code": code(secret), "password": "not it at all"}):
        resp = await client.post("/api/v1/me/2fa/confirm", json=body, headers=bearer(ann["token"]))
        assert resp.status == 422
        assert "password" in (await resp.json())["error"]["fields"]
    assert (await status(client, ann["token"]))["enabled"] is False


async def test_enrolment_is_refused_while_on_and_confirm_without_one(client: Client) -> None:
    ann = await register(client, EMAIL)
    auth = bearer(ann["token"])
    resp = await client.post(
        "/api/v1/me/2fa/confirm", json={"code": "123456", "password": PASSWORD}, headers=auth
    )
    assert resp.status == 409
    await turn_on(client, ann["token"])
    assert (await client.post("/api/v1/me/2fa/enrol", headers=auth)).status == 409
    client.session.cookie_jar.clear()  # register's session cookie
    assert (await client.get("/api/v1/me/2fa")).status == 401


async def test_code_attempts_are_throttled_like_passwords(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(auth=replace(config.auth, login_max_failures=3))
    ann = await register(client, EMAIL)
    secret, _ = await turn_on(client, ann["token"])
    pending = await password_step(client)
    for _ in range(3):
        assert (await code_step(client, pending, wrong(secret)))[0] == 401
    resp = await client.post(
        "/api/v1/auth/login/2fa", json={"pending_token": pending, "code": code(secret, steps=1)}
    )
    # Even the right code waits now; a new password step does not reset the count.
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    again = await password_step(client)
    assert (await code_step(client, again, code(secret, steps=1)))[0] == 429


async def test_wrong_codes_from_one_address_are_throttled_across_accounts(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(
        auth=replace(config.auth, login_max_failures=10, login_ip_max_failures=2)
    )
    secrets = {}
    for email in (EMAIL, "bob@example.com"):
        account = await register(client, email)
        secrets[email], _ = await turn_on(client, account["token"])
    ann, bob = await password_step(client), await password_step(client, "bob@example.com")
    assert (await code_step(client, ann, wrong(secrets[EMAIL])))[0] == 401
    assert (await code_step(client, bob, wrong(secrets["bob@example.com"])))[0] == 401
    got, _ = await code_step(client, bob, code(secrets["bob@example.com"], steps=1))
    assert got == 429


async def test_forged_expired_and_outdated_pending_logins_are_refused(
    client: Client, db: Database, config: Config
) -> None:
    ann = await register(client, EMAIL)
    secret, recovery = await turn_on(client, ann["token"])
    pending = await password_step(client)
    user_id = ann["user"]["id"]
    stored = await Users(db).password_hash(user_id)
    assert stored is not None
    key = config.secret_key.encode()
    payload, mac = pending.removeprefix(totp.PENDING_PREFIX).split(".")
    forged = [
        "",
        "lc2_nonsense",
        f"{totp.PENDING_PREFIX}{payload}.{mac[:-2]}AA",  # signature changed
        totp.sign_pending(b"another deployment's key", user_id, stored)[0],
        totp.sign_pending(key, user_id, "another password hash")[0],
        totp.sign_pending(key, user_id + 1, stored)[0],  # someone else's
        # Signed correctly, but its five minutes are over.
        totp.sign_pending(key, user_id, stored, now=time.time() - totp.PENDING_TTL_S - 1)[0],
    ]
    for token in forged:
        got, body = await code_step(client, token, recovery[0])
        assert (got, body["error"]["code"]) == (401, "login_expired"), token
    # A password change voids a pending login made before it.
    resp = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "purple monkey dishwasher"},
        headers=bearer(ann["token"]),
    )
    assert resp.status == 204
    got, body = await code_step(client, pending, code(secret, steps=1))
    assert (got, body["error"]["code"]) == (401, "login_expired")
    # Nothing above spent the recovery code.
    assert (await status(client, ann["token"]))["recovery_codes_left"] == 10


async def _admin(client: Client, db: Database) -> tuple[dict[str, str], dict[str, Any]]:
    root = await register(client, "root@example.com")
    await db.pool.execute("UPDATE users SET role = 'admin' WHERE email = 'root@example.com'")
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    )
    body = await resp.json()
    return bearer(body["token"]), root


async def test_admins_need_2fa_for_admin_routes_when_required(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    client = await make_client(auth=replace(config.auth, require_2fa_admins=True))
    client.session.cookie_jar.clear()
    auth, _ = await _admin(client, db)
    resp = await client.get("/api/v1/admin/payouts", headers=auth)
    assert resp.status == 403
    assert await resp.json() == {
        "error": {
            "code": "two_factor_required",
            "message": "turn on two-factor authentication on your account page to use admin routes",
        }
    }
    # Other routes are not affected; a viewer still gets the usual refusal.
    assert (await client.get("/api/v1/me", headers=auth)).status == 200
    viewer = await register(client, "vic@example.com")
    resp = await client.get("/api/v1/admin/payouts", headers=bearer(viewer["token"]))
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "forbidden")
    await turn_on(client, auth["Authorization"].removeprefix("Bearer "))
    assert (await client.get("/api/v1/admin/payouts", headers=auth)).status == 200


async def test_admins_need_2fa_to_end_or_take_down_streams_when_required(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    client = await make_client(auth=replace(config.auth, require_2fa_admins=True))
    client.session.cookie_jar.clear()
    auth, _ = await _admin(client, db)
    body = {"reason": "rules"}
    for path in ("end", "takedown", "block"):
        method = client.delete if path == "block" else client.post
        resp = await method(f"/api/v1/streams/any/{path}", headers=auth, json=body)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "two_factor_required"
    await turn_on(client, auth["Authorization"].removeprefix("Bearer "))
    # With 2FA on, the request reaches the route (no such stream).
    resp = await client.post("/api/v1/streams/any/takedown", headers=auth, json=body)
    assert resp.status == 404


async def test_admin_routes_work_without_2fa_by_default(client: Client, db: Database) -> None:
    client.session.cookie_jar.clear()
    auth, _ = await _admin(client, db)
    assert (await client.get("/api/v1/admin/payouts", headers=auth)).status == 200


async def test_creators_need_2fa_for_payouts_when_required(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(auth=replace(config.auth, require_2fa_payouts=True))
    cara = await register(client, "cara@example.com", creator=True)
    auth = bearer(cara["token"])
    resp = await client.post("/api/v1/me/payouts", json={"currency": "usd"}, headers=auth)
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "two_factor_required"
    assert "before requesting a payout" in error["message"]
    await turn_on(client, cara["token"])
    resp = await client.post("/api/v1/me/payouts", json={"currency": "usd"}, headers=auth)
    # Past the 2FA check: refused only because nothing is owed yet.
    assert resp.status == 409
    assert "nothing to pay out" in (await resp.json())["error"]["message"]


async def test_a_login_that_rehashes_the_password_still_completes_with_a_code(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    client = await make_client()
    ann = await register(client, EMAIL)
    secret, _ = await turn_on(client, ann["token"])
    before = await Users(db).password_hash(ann["user"]["id"])
    # Another node with a higher Argon2 cost rehashes the password at this login.
    stronger = await make_client(auth=replace(config.auth, argon2_time_cost=2))
    pending = await password_step(stronger)
    assert await Users(db).password_hash(ann["user"]["id"]) != before
    got, body = await code_step(stronger, pending, code(secret, steps=1))
    assert got == 200, body
