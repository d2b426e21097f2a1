"""HTTP side of accounts and sessions: /api/v1/auth/*, /api/v1/me, and request authentication.

A request is authenticated by `Authorization: Bearer <token>` (API clients) or by the
session cookie (browsers). Cookie-authenticated requests that change state must carry the
CSRF token in `X-CSRF-Token`; bearer requests need none, since browsers never attach a
bearer header on their own. A bad bearer token is refused (401) wherever it is sent; a stale
cookie (logged out, revoked, expired) makes the visitor anonymous and is cleared, so public
pages keep working, while routes that need a login still answer 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from livecore.appkeys import AUTH, CONFIG, DB, SECRET_KEY
from livecore.auth.service import (
    BadCredentials,
    DisplayNameTaken,
    EmailTaken,
    InvalidInput,
    LoginResult,
    Throttled,
)
from livecore.auth.suspensions import Suspended, refusal
from livecore.auth.tokens import SESSION_PREFIX, csrf_matches, csrf_token, hash_secret
from livecore.clientip import client_ip
from livecore.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from livecore.jsonbody import invalid_message, read_body
from livecore.store.creator_requests import CreatorRequests
from livecore.store.sessions import Session
from livecore.store.suspensions import Suspension, Suspensions
from livecore.store.users import Role, User

SESSION_COOKIE = "livecore_session"
CSRF_COOKIE = "livecore_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session: Session
    via_cookie: bool


_PRINCIPAL = web.RequestKey("principal", Principal)
# Set when the request's session cookie names no live session: the answer clears it.
_STALE_COOKIE = web.RequestKey("stale_session_cookie", bool)
# Set when the session cookie is a suspended user's: kept, so that they can read why.
_SUSPENDED = web.RequestKey("suspended_session_cookie", Suspended)
_EXPIRED = "expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"


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
    app.on_response_prepare.append(_clear_stale_cookie)


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer` header; None without one, "" when malformed."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def authenticate(request: web.Request, *, cookie: bool = True) -> Principal | None:
    """Who sent this request, or None for an anonymous one; checks CSRF for cookie writes.

    `cookie=False` ignores the session cookie (a chat socket opened by another site's page).
    """
    if _PRINCIPAL in request:
        return request[_PRINCIPAL]
    given = bearer_token(request)
    via_cookie = False
    if given is not None:
        token = given
        if not token:
            raise Unauthorized("authentication required", headers={"WWW-Authenticate": "Bearer"})
    else:
        token = request.cookies.get(SESSION_COOKIE, "") if cookie else ""
        via_cookie = True
    principal = None
    if token:
        session = await request.app[AUTH].authenticate(token.strip())
        if session is None:
            suspension = await _suspension_for(request, token.strip())
            if suspension is not None and not via_cookie:
                raise refusal(suspension)
            if suspension is not None:
                request[_SUSPENDED] = Suspended(suspension)
                return None  # public pages as for anyone; routes that need a login say why
            if not via_cookie:
                raise Unauthorized("session is invalid or expired")
            # The browser kept a cookie this server no longer honours (logged out on another
            # device, revoked, expired): that visitor is anonymous, not an intruder, and the
            # answer tells the browser to drop the cookie.
            request[_STALE_COOKIE] = True
            return None
        principal = Principal(session.user, session, via_cookie)
        if via_cookie and request.method not in _SAFE_METHODS:
            presented = request.headers.get(CSRF_HEADER, "")
            if not csrf_matches(request.app[SECRET_KEY], session.token_hash, presented):
                raise Forbidden(f"missing or wrong {CSRF_HEADER} header")
        request[_PRINCIPAL] = principal
    return principal


async def _suspension_for(request: web.Request, token: str) -> Suspension | None:
    """Why a session token that names no live session is refused, if its user is suspended
    (asked only then: a live session is never a suspended user's)."""
    if not token.startswith(SESSION_PREFIX) or len(token) > 128:
        return None
    return await Suspensions(request.app[DB]).for_token(hash_secret(token))


async def require_user(request: web.Request) -> Principal:
    principal = await authenticate(request)
    if principal is None:
        if _SUSPENDED in request:
            raise refusal(request[_SUSPENDED].suspension)
        if request.get(_STALE_COOKIE):
            raise Unauthorized("session is invalid or expired")
        raise Unauthorized("authentication required", headers={"WWW-Authenticate": "Bearer"})
    return principal


async def _clear_stale_cookie(request: web.Request, response: web.StreamResponse) -> None:
    # Headers, not response.del_cookie(): by the time this signal runs the response's
    # cookies have already been written into its headers. Runs for every answer, including
    # errors and the WebSocket handshake.
    if request.get(_STALE_COOKIE):
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.headers.add("Set-Cookie", f'{name}=""; {_EXPIRED}')


def _invalid(exc: InvalidInput) -> Invalid:
    return Invalid(invalid_message(exc.fields), fields=exc.fields)


def _login_response(request: web.Request, result: LoginResult, status: int) -> web.Response:
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
    return _login_response(request, result, 201)


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
    except Suspended as exc:
        raise refusal(exc.suspension) from None
    return _login_response(request, result, 200)


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
    sessions = await request.app[AUTH].sessions.of_user(principal.user.id)
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


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
