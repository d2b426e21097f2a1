"""Who sent a request: `authenticate`, `require_user` and the `Principal` they give, for every
route module.

A request is authenticated by `Authorization: Bearer <token>` (API clients) or by the
session cookie (browsers). Cookie-authenticated requests that change state must carry the
CSRF token in `X-CSRF-Token`; bearer requests need none, since browsers never attach a
bearer header on their own. A bad bearer token is refused (401) wherever it is sent; a stale
cookie (logged out, revoked, expired) makes the visitor anonymous and is cleared, so public
pages keep working, while routes that need a login still answer 401.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import hdrs, web

from livecore.appkeys import AUTH, DB, SECRET_KEY
from livecore.auth.suspensions import Suspended, refusal
from livecore.auth.tokens import SESSION_PREFIX, csrf_matches, hash_secret
from livecore.errors import Forbidden, Unauthorized
from livecore.store.sessions import Session
from livecore.store.suspensions import Suspension, Suspensions
from livecore.store.users import User

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


async def clear_stale_cookie(request: web.Request, response: web.StreamResponse) -> None:
    # Headers, not response.del_cookie(): by the time this signal runs the response's
    # cookies have already been written into its headers. Runs for every answer, including
    # errors and the WebSocket handshake. Only a request that sent cookies can have a stale
    # one: the others (every HLS player's request) skip the lookup, which for a key a request
    # lacks raises and catches a KeyError.
    if hdrs.COOKIE in request.headers and request.get(_STALE_COOKIE):
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.headers.add("Set-Cookie", f'{name}=""; {_EXPIRED}')
