"""HTTP side of two-factor authentication: /api/v1/me/2fa/*, the code step of a login
(/api/v1/auth/login/2fa), and the settings that require it (`auth.require_2fa_admins` for
/api/v1/admin/*, `auth.require_2fa_payouts` for creators' payouts).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livecore.appkeys import AUTH, CONFIG, TWO_FACTOR
from livecore.auth.requests import authenticate, require_user
from livecore.auth.routes import login_response
from livecore.auth.secretbox import SecretUnreadable
from livecore.auth.service import BadCredentials, Throttled
from livecore.auth.twofactor import (
    AlreadyEnabled,
    CodeRejected,
    NotEnabled,
    NotEnrolling,
    PendingLoginInvalid,
    TwoFactorStatus,
)
from livecore.clientip import client_ip
from livecore.errors import Conflict, Forbidden, Handler, Invalid, TooManyRequests, Unauthorized
from livecore.jsonbody import iso, read_body
from livecore.store.users import User

ADMIN_PREFIX = "/api/v1/admin/"


class TwoFactorRequired(Forbidden):
    """403 with its own code, so a page can tell "turn 2FA on" from "not allowed"."""

    code = "two_factor_required"


class TwoFactorUnreadable(Conflict):
    """409: the account's stored secret does not decrypt with this server's secret key, so
    no code can pass until an admin resets the account's 2FA (never a pass without one)."""

    code = "two_factor_unreadable"


def unreadable() -> TwoFactorUnreadable:
    return TwoFactorUnreadable(
        "this account's two-factor secret cannot be read with the server's secret key (was"
        " the key replaced?): an admin can turn two-factor authentication off for the account"
        " (`livecore user 2fa-off EMAIL`), then set it up again"
    )


class LoginExpired(Unauthorized):
    """401: the pending login is forged or expired; the page goes back to the password."""

    code = "login_expired"


def setup(app: web.Application) -> None:
    """Add the routes and the admin routes' 2FA check (the service: auth/setup.py)."""
    if app[CONFIG].auth.require_2fa_admins:  # else a middleware every request would pass
        app.middlewares.append(admin_two_factor)
    app.router.add_get("/api/v1/me/2fa", get_two_factor)
    app.router.add_post("/api/v1/me/2fa/enrol", post_enrol)
    app.router.add_post("/api/v1/me/2fa/confirm", post_confirm)
    app.router.add_post("/api/v1/me/2fa/disable", post_disable)
    app.router.add_post("/api/v1/me/2fa/recovery-codes", post_recovery_codes)
    app.router.add_post("/api/v1/auth/login/2fa", post_login_code)


# Admins' powers over any stream, outside /api/v1/admin/: taking it down, lifting a block,
# ending its broadcast (livecore.streams.end_routes).
_STREAM_POWERS = ("/takedown", "/block", "/end")


def _admin_power(request: web.Request) -> bool:
    path = request.path
    if path.startswith(ADMIN_PREFIX):
        return True
    return path.startswith("/api/v1/streams/") and path.endswith(_STREAM_POWERS)


@web.middleware
async def admin_two_factor(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With `auth.require_2fa_admins`, an admin without 2FA is refused every admin route and
    every admin power over streams (an admin's own stream included)."""
    if _admin_power(request) and request.app[CONFIG].auth.require_2fa_admins:
        principal = await authenticate(request)
        if (
            principal is not None
            and principal.user.role == "admin"
            and not await request.app[TWO_FACTOR].enabled(principal.user.id)
        ):
            raise TwoFactorRequired(
                "turn on two-factor authentication on your account page to use admin routes"
            )
    return await handler(request)


async def require_two_factor_for_payouts(request: web.Request, user: User) -> None:
    """With `auth.require_2fa_payouts`, refuse a payout to an account without 2FA (403)."""
    if request.app[CONFIG].auth.require_2fa_payouts and not await request.app[TWO_FACTOR].enabled(
        user.id
    ):
        raise TwoFactorRequired(
            "turn on two-factor authentication on your account page before requesting a payout"
        )


def status_json(status: TwoFactorStatus) -> dict[str, Any]:
    return {
        "enabled": status.enabled,
        "enabled_at": iso(status.enabled_at),
        "enrolling": status.enrolling,
        "recovery_codes_left": status.recovery_codes_left,
    }


def _throttled(exc: Throttled) -> TooManyRequests:
    return TooManyRequests(
        "too many wrong codes, try again later", retry_after_s=int(exc.retry_after_s) + 1
    )


def _wrong_code() -> Invalid:
    return Invalid("the code is wrong or expired", fields={"code": "is wrong or expired"})


async def get_two_factor(request: web.Request) -> web.Response:
    """Whether 2FA is on for the logged-in account, and how many recovery codes are left."""
    principal = await require_user(request)
    status = await request.app[TWO_FACTOR].status(principal.user.id)
    return web.json_response({"two_factor": status_json(status)})


async def post_enrol(request: web.Request) -> web.Response:
    """Start enrolment: 201 with the secret, its otpauth:// URI and that URI as a QR code."""
    principal = await require_user(request)
    try:
        enrolment = await request.app[TWO_FACTOR].enrol(principal.user)
    except AlreadyEnabled:
        raise Conflict("two-factor authentication is on already: turn it off first") from None
    body = {
        "secret": enrolment.secret,
        "otpauth_uri": enrolment.otpauth_uri,
        "qr_svg": enrolment.qr_svg,
    }
    return web.json_response(body, status=201, headers={"Cache-Control": "no-store"})


async def post_confirm(request: web.Request) -> web.Response:
    """Turn 2FA on with a first code and the password; the answer holds the recovery codes,
    shown only here."""
    principal = await require_user(request)
    body = await read_body(request)
    code = body.text("code", max_len=64)
    password = body.text("password", max_len=1024)
    body.check()
    service = request.app[TWO_FACTOR]
    try:
        codes = await service.confirm(principal.user, code, password, client_ip=client_ip(request))
    except NotEnrolling:
        raise Conflict("no enrolment is waiting for a code: start one first") from None
    except CodeRejected:
        raise _wrong_code() from None
    except SecretUnreadable:
        raise unreadable() from None
    except BadCredentials:
        raise Invalid("the password is wrong", fields={"password": "is wrong"}) from None
    except Throttled as exc:
        raise _throttled(exc) from None
    status = await service.status(principal.user.id)
    return web.json_response(
        {"two_factor": status_json(status), "recovery_codes": codes},
        headers={"Cache-Control": "no-store"},
    )


async def post_disable(request: web.Request) -> web.Response:
    """Turn 2FA off, proven by a current code, a recovery code, or the password."""
    principal = await require_user(request)
    body = await read_body(request)
    code = body.text("code", max_len=64) if "code" in body else None
    password = body.text("password", max_len=1024) if "password" in body else None
    if code is None and password is None:
        body.problems["code"] = "is required (or the password)"
    body.check()
    try:
        await request.app[TWO_FACTOR].disable(
            principal.user, code=code, password=password, client_ip=client_ip(request)
        )
    except NotEnabled:
        raise Conflict("two-factor authentication is off already") from None
    except CodeRejected:
        raise _wrong_code() from None
    except SecretUnreadable:
        raise unreadable() from None
    except BadCredentials:
        raise Invalid("the password is wrong", fields={"password": "is wrong"}) from None
    except Throttled as exc:
        raise _throttled(exc) from None
    return web.Response(status=204)


async def post_recovery_codes(request: web.Request) -> web.Response:
    """New recovery codes for a current code from the app; the old ones stop working."""
    principal = await require_user(request)
    body = await read_body(request)
    code = body.text("code", max_len=64)
    body.check()
    try:
        codes = await request.app[TWO_FACTOR].renew_recovery_codes(
            principal.user, code, client_ip=client_ip(request)
        )
    except NotEnabled:
        raise Conflict("two-factor authentication is off") from None
    except CodeRejected:
        raise _wrong_code() from None
    except SecretUnreadable:
        raise unreadable() from None
    except Throttled as exc:
        raise _throttled(exc) from None
    return web.json_response({"recovery_codes": codes}, headers={"Cache-Control": "no-store"})


async def post_login_code(request: web.Request) -> web.Response:
    """Finish a login that answered `two_factor_required`: the pending token and a code
    from the app (or a recovery code) make the session."""
    body = await read_body(request)
    token = body.text("pending_token", max_len=256)
    code = body.text("code", max_len=64)
    body.check()
    try:
        user = await request.app[TWO_FACTOR].finish_login(token, code, client_ip=client_ip(request))
    except PendingLoginInvalid:
        raise LoginExpired("the login has expired: enter your password again") from None
    except CodeRejected:
        raise Unauthorized("the code is wrong or expired") from None
    except SecretUnreadable:
        raise unreadable() from None
    except Throttled as exc:
        raise _throttled(exc) from None
    result = await request.app[AUTH].start_session(user, request.headers.get("User-Agent", ""))
    return login_response(request, result, 200)
