"""HTTP side of accounts and sessions: /api/v1/auth/* and /api/v1/me.

Who sent a request (the bearer token or the session cookie, and CSRF) is decided in
`requests.py`, which every route module uses; this module holds the account routes only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from livecore.appkeys import AUTH, CONFIG, DB, SECRET_KEY, TWO_FACTOR
from livecore.auth.requests import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    clear_stale_cookie,
    require_user,
)
from livecore.auth.service import (
    BadCredentials,
    DisplayNameTaken,
    EmailTaken,
    InvalidInput,
    LoginResult,
    Throttled,
)
from livecore.auth.suspensions import Suspended, refusal
from livecore.auth.tokens import csrf_token
from livecore.auth.totp import SecondFactorRequired
from livecore.auth.views import user_json
from livecore.clientip import client_ip
from livecore.errors import (
    Conflict,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from livecore.jsonbody import invalid_message, read_body
from livecore.store.creator_requests import CreatorRequests
from livecore.store.users import Role


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/auth/register", post_register)
    app.router.add_post("/api/v1/auth/login", post_login)
    app.router.add_post("/api/v1/auth/logout", post_logout)
    app.router.add_post("/api/v1/auth/password", post_password)
    app.router.add_post("/api/v1/auth/password-reset", post_password_reset)
    app.router.add_post("/api/v1/auth/password-reset/confirm", post_password_reset_confirm)
    app.router.add_get("/api/v1/auth/sessions", get_sessions)
    app.router.add_delete("/api/v1/auth/sessions", delete_sessions)
    app.router.add_delete("/api/v1/auth/sessions/{session_id}", delete_session)
    app.router.add_get("/api/v1/me", get_me)
    app.on_response_prepare.append(clear_stale_cookie)


def _invalid(exc: InvalidInput) -> Invalid:
    return Invalid(invalid_message(exc.fields), fields=exc.fields)


def login_response(request: web.Request, result: LoginResult, status: int) -> web.Response:
    config = request.app[CONFIG]
    csrf = csrf_token(request.app[SECRET_KEY], result.session_hash)
    body = {
        "token": result.token,
        "csrf_token": csrf,
        "expires_at": result.expires_at.isoformat(),
        "user": user_json(result.user),
    }
    resp = web.json_response(body, status=status)
    max_age = config.auth.session_ttl_s
    secure = config.secure_cookies
    resp.set_cookie(
        SESSION_COOKIE, result.token, max_age=max_age, httponly=True, samesite="Lax",
        secure=secure, path="/",
    )  # fmt: skip
    # Readable by the page's own scripts, which echo it in X-CSRF-Token.
    resp.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, samesite="Lax", secure=secure, path="/")
    return resp


async def post_register(request: web.Request) -> web.Response:
    """Create an account (creator when asked) and log it in: 201 with the session."""
    body = await read_body(request)
    email = body.text("email", max_len=254)
    password = body.text("password", max_len=1024)
    display_name = body.text("display_name", max_len=64)
    creator = body.flag("creator")
    body.check()
    auth = request.app[AUTH]
    # Without open creator sign-up, a creator account is asked for (livecore.admin).
    ask_creator = creator and not request.app[CONFIG].auth.open_creator_signup
    try:
        role: Role = "creator" if creator and not ask_creator else "viewer"
        user = await auth.register(
            email, password, display_name, role, client_ip=client_ip(request)
        )
    except InvalidInput as exc:
        raise _invalid(exc) from None
    except EmailTaken:
        raise Conflict("an account with this email exists already") from None
    except DisplayNameTaken:
        raise Conflict("this display name is taken: choose another") from None
    except Throttled as exc:
        raise TooManyRequests(
            "too many sign-ups, try again later", retry_after_s=int(exc.retry_after_s) + 1
        ) from None
    if ask_creator:
        await CreatorRequests(request.app[DB]).create(user.id)
    # The password was just set: no second Argon2 verify, and the login throttle (failed
    # logins from this address) has nothing to say about a new account.
    result = await auth.start_session(user, request.headers.get("User-Agent", ""))
    return login_response(request, result, 201)


async def post_login(request: web.Request) -> web.Response:
    body = await read_body(request)
    email = body.text("email", max_len=254)
    password = body.text("password", max_len=1024)
    body.check()
    try:
        result = await request.app[AUTH].login(
            email, password, client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
        )  # fmt: skip
    except Throttled as exc:
        raise TooManyRequests(
            "too many failed logins, try again later", retry_after_s=int(exc.retry_after_s) + 1
        ) from None
    except BadCredentials:
        raise Unauthorized("invalid email or password") from None
    except SecondFactorRequired as exc:
        # No session yet: the code step (POST /api/v1/auth/login/2fa) finishes the login
        # with this token, so the password is never sent twice.
        token, expires_at = request.app[TWO_FACTOR].begin_login(exc)
        return web.json_response(
            {"two_factor_required": True, "pending_token": token,
             "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat()},
            status=202,
        )  # fmt: skip
    except Suspended as exc:
        raise refusal(exc.suspension) from None
    return login_response(request, result, 200)


async def post_logout(request: web.Request) -> web.Response:
    principal = await require_user(request)
    await request.app[AUTH].logout(principal.session)
    return _logged_out()


def _logged_out(status: int = 204) -> web.Response:
    resp = web.Response(status=status)
    resp.del_cookie(SESSION_COOKIE, path="/")
    resp.del_cookie(CSRF_COOKIE, path="/")
    return resp


async def get_sessions(request: web.Request) -> web.Response:
    """The user's live sessions, the one asking marked `current`."""
    principal = await require_user(request)
    sessions = await request.app[AUTH].sessions_of(principal.user)
    body = [
        {
            "id": s.id,
            "created_at": s.created_at.isoformat(),
            "last_seen_at": s.last_seen_at.isoformat(),
            "expires_at": s.expires_at.isoformat(),
            "user_agent": s.user_agent,
            "current": s.token_hash == principal.session.token_hash,
        }
        for s in sessions
    ]
    return web.json_response({"sessions": body})


async def delete_sessions(request: web.Request) -> web.Response:
    """Log out everywhere: every session of the user ends, this one included."""
    principal = await require_user(request)
    await request.app[AUTH].log_out_everywhere(principal.user)
    return _logged_out()


async def delete_session(request: web.Request) -> web.Response:
    """End one of your own sessions (another device); ending this one logs this browser out."""
    principal = await require_user(request)
    try:
        session_id = int(request.match_info["session_id"])
    except ValueError:
        raise NotFound("no such session") from None
    if not await request.app[AUTH].end_session(principal.user, session_id):
        raise NotFound("no such session")
    return _logged_out() if session_id == principal.session.id else web.Response(status=204)


async def get_me(request: web.Request) -> web.Response:
    principal = await require_user(request)
    return web.json_response({"user": user_json(principal.user)})


async def post_password(request: web.Request) -> web.Response:
    """Change the password; every other session of the user ends."""
    principal = await require_user(request)
    body = await read_body(request)
    current = body.text("current_password", max_len=1024)
    new = body.text("new_password", max_len=1024)
    body.check()
    try:
        await request.app[AUTH].change_password(principal.session, current, new)
    except BadCredentials:
        raise Invalid(
            "current password is wrong", fields={"current_password": "is wrong"}
        ) from None
    except InvalidInput as exc:
        raise _invalid(exc) from None
    return web.Response(status=204)


async def post_password_reset(request: web.Request) -> web.Response:
    """Mail a reset token if the account exists; the answer is the same either way."""
    body = await read_body(request)
    email = body.text("email", max_len=254)
    body.check()
    try:
        request.app[AUTH].request_reset(email, client_ip=client_ip(request))
    except Throttled as exc:
        raise TooManyRequests(
            "too many reset requests, try again later", retry_after_s=int(exc.retry_after_s) + 1
        ) from None
    return web.json_response(
        {"status": "if an account with this email exists, a reset token has been sent"},
        status=202,
    )


async def post_password_reset_confirm(request: web.Request) -> web.Response:
    body = await read_body(request)
    token = body.text("token", max_len=128)
    password = body.text("password", max_len=1024)
    body.check()
    try:
        await request.app[AUTH].confirm_reset(token, password)
    except BadCredentials:
        raise Invalid(
            "reset token is invalid, used or expired", fields={"token": "is invalid or expired"}
        ) from None
    except InvalidInput as exc:
        raise _invalid(exc) from None
    return web.Response(status=204)
