"""HTTP side of livecore.admin: /api/v1/admin/users, suspensions, roles, creator requests,
and what an account reads of the decisions about it (`GET /api/v1/me/standing`).

`POST /api/v1/admin/users/{id}/suspension` {reason, until?}: suspend (until an ISO 8601
time with its offset, or until lifted); `DELETE` lifts it. `PUT /api/v1/admin/users/{id}/role`
{role}. `GET /api/v1/admin/creator-requests?state=`, `POST .../{id}/approve|decline`.
Admins only; every change is audited (livecore.admin.accounts).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final, get_args

from aiohttp import web

from livecore.admin.accounts import Accounts, SelfSuspension, UnknownUser
from livecore.appkeys import AUDIT, AUTH, BUS, DB, USERS
from livecore.auth.requests import require_user
from livecore.auth.views import user_json
from livecore.errors import Conflict, Forbidden, Invalid, NotFound
from livecore.jsonbody import invalid_message, read_body
from livecore.store.admin_users import AdminUsers, LastAdmin
from livecore.store.creator_requests import CreatorRequest, CreatorRequests, RequestState
from livecore.store.suspensions import Suspension, Suspensions
from livecore.store.users import Role, User
from livecore.streams.ending import REASON_MAX_LEN, check_reason

# The longest timed suspension; longer ones are indefinite (lifted by an admin).
SUSPENSION_MAX: Final = timedelta(days=10 * 366)


def setup(app: web.Application) -> None:
    """Add the routes (the revocation listener: admin/setup.py)."""
    app.router.add_get("/api/v1/admin/users", get_users)
    app.router.add_post("/api/v1/admin/users/{user_id}/suspension", post_suspension)
    app.router.add_delete("/api/v1/admin/users/{user_id}/suspension", delete_suspension)
    app.router.add_put("/api/v1/admin/users/{user_id}/role", put_role)
    app.router.add_get("/api/v1/admin/creator-requests", get_creator_requests)
    app.router.add_post("/api/v1/admin/creator-requests/{request_id}/approve", post_approve)
    app.router.add_post("/api/v1/admin/creator-requests/{request_id}/decline", post_decline)
    app.router.add_get("/api/v1/me/standing", get_standing)


def _accounts(request: web.Request) -> Accounts:
    app = request.app
    return Accounts(app[DB], app[BUS], app[AUTH], app[USERS], app[AUDIT])


async def admin_user(request: web.Request) -> User:
    principal = await require_user(request)
    if principal.user.role != "admin":
        raise Forbidden("only admins may do this")
    return principal.user


def int_id(request: web.Request, name: str, what: str) -> int:
    text = request.match_info[name]
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"no such {what}")
    return int(text)


def suspension_json(suspension: Suspension | None) -> dict[str, Any] | None:
    if suspension is None:
        return None
    until = suspension.until
    return {
        "reason": suspension.reason,
        "until": until.isoformat() if until is not None else None,
        "since": suspension.created_at.isoformat(),
    }


def request_json(request: CreatorRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "user": {"id": request.user_id, "email": request.email,
                 "display_name": request.display_name},
        "state": request.state,
        "created_at": request.created_at.isoformat(),
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
    }  # fmt: skip


async def get_users(request: web.Request) -> web.Response:
    """Accounts by e-mail or display name (`q`, any part, any case), newest first, each with
    its suspension, stream count and whether two-factor sign-in is on (one query)."""
    await admin_user(request)
    query = request.query.get("q", "").strip()[:254]
    found = await AdminUsers(request.app[DB]).search(query)
    body = [
        {**user_json(f.user), "suspension": suspension_json(f.suspension),
         "stream_count": f.stream_count, "two_factor": f.two_factor}
        for f in found
    ]  # fmt: skip
    return web.json_response({"users": body})


def _until(text: str) -> tuple[datetime | None, str | None]:
    """The end of a timed suspension, or what is wrong with it."""
    try:
        until = datetime.fromisoformat(text)
    except ValueError:
        return None, "must be an ISO 8601 time"
    if until.tzinfo is None:
        return None, "must carry its UTC offset"
    now = datetime.now(UTC)
    if until <= now:
        return None, "must be in the future"
    if until - now > SUSPENSION_MAX:
        return None, f"must be within {SUSPENSION_MAX.days} days; leave it out for indefinite"
    return until.replace(microsecond=0), None


async def post_suspension(request: web.Request) -> web.Response:
    """Suspend an account: its sessions end on every node, its chat sockets close, its live
    broadcasts end; until `until`, or until lifted when it is left out."""
    actor = await admin_user(request)
    user_id = int_id(request, "user_id", "user")
    body = await read_body(request)
    reason = body.text("reason", max_len=REASON_MAX_LEN)
    until = None
    if "until" in body:
        until, problem = _until(body.text("until", max_len=64))
        if problem is not None:
            body.problems["until"] = problem
    body.check()
    if (problem := check_reason(reason)) is not None:
        raise Invalid(invalid_message({"reason": problem}), fields={"reason": problem})
    try:
        suspension, ended, unreached = await _accounts(request).suspend(
            actor, user_id, reason.strip(), until
        )
    except UnknownUser:
        raise NotFound("no such user") from None
    except SelfSuspension:
        raise Conflict("an admin cannot suspend themselves") from None
    # `unreached_streams`: Redis is out, and a node ingesting one of them may not have heard
    # the end; the admin ends it again (POST /api/v1/streams/{slug}/end) once it is back.
    answer = {"suspension": suspension_json(suspension), "ended_streams": ended,
              "unreached_streams": unreached}  # fmt: skip
    return web.json_response(answer, status=201)


async def delete_suspension(request: web.Request) -> web.Response:
    actor = await admin_user(request)
    user_id = int_id(request, "user_id", "user")
    try:
        lifted = await _accounts(request).unsuspend(actor, user_id)
    except UnknownUser:
        raise NotFound("no such user") from None
    if not lifted:
        raise NotFound("the account is not suspended")
    return web.Response(status=204)


async def put_role(request: web.Request) -> web.Response:
    """Make an account a viewer, a creator or an admin; never the last admin a non-admin."""
    actor = await admin_user(request)
    user_id = int_id(request, "user_id", "user")
    body = await read_body(request)
    role: Role = body.choice("role", get_args(Role))
    body.check()
    try:
        before = await _accounts(request).set_role(actor, user_id, role)
    except UnknownUser:
        raise NotFound("no such user") from None
    except LastAdmin:
        raise Conflict("this is the last admin: make another account admin first") from None
    return web.json_response({"role": role, "before": before})


async def get_creator_requests(request: web.Request) -> web.Response:
    """Creator requests oldest first: `state` pending, approved or declined (all without)."""
    await admin_user(request)
    state = request.query.get("state")
    if state is not None and state not in get_args(RequestState):
        problem = "must be one of " + ", ".join(get_args(RequestState))
        raise Invalid(invalid_message({"state": problem}), fields={"state": problem})
    found = await CreatorRequests(request.app[DB]).listing(state)  # type: ignore[arg-type]
    return web.json_response({"requests": [request_json(r) for r in found]})


async def _decide(request: web.Request, approve: bool) -> web.Response:
    actor = await admin_user(request)
    request_id = int_id(request, "request_id", "creator request")
    decided = await _accounts(request).decide(actor, request_id, approve)
    if decided is None:
        raise NotFound("no such pending creator request")
    return web.json_response({"request": request_json(decided)})


async def post_approve(request: web.Request) -> web.Response:
    return await _decide(request, True)


async def post_decline(request: web.Request) -> web.Response:
    return await _decide(request, False)


async def get_standing(request: web.Request) -> web.Response:
    """What the account reads on its page: its suspension (none while a session works) and
    its latest creator request."""
    principal = await require_user(request)
    user_id = principal.user.id
    latest = await CreatorRequests(request.app[DB]).latest_of(user_id)
    return web.json_response({
        "suspension": suspension_json(await Suspensions(request.app[DB]).active(user_id)),
        "creator_request": request_json(latest) if latest is not None else None,
    })  # fmt: skip
