"""Reports, the admins' review queue and its actions, the owner's stream queue, and
notifications.

`POST /api/v1/reports` files a report on a stream, a user, a recording or a chat line;
`GET /api/v1/admin/reports` is the platform queue (admins) and
`POST /api/v1/admin/reports/{id}/action` acts on it; `GET /api/v1/streams/{slug}/reports`
is the stream's own queue (its owner, its moderators, admins); `GET /api/v1/me/notifications`
tells reporters what came of their reports.
"""

from __future__ import annotations

import math
from typing import Any, Final

from aiohttp import web

from livecore.appkeys import REPORTS, STREAM_RECORDS
from livecore.auth.requests import require_user
from livecore.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooManyRequests,
    Unavailable,
)
from livecore.ids import path_id
from livecore.jsonbody import read_body
from livecore.safety.service import (
    ACTIONS,
    CATEGORIES,
    KINDS,
    ActionFailed,
    ActionRequest,
    AlreadyReported,
    NotApplicable,
    Throttled,
    UnknownTarget,
    applicable,
    line_target,
)
from livecore.store.reports import QueueFilter, Report
from livecore.store.users import User

_STATES: Final = ("open", "actioned", "dismissed")


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/reports", post_report)
    app.router.add_get("/api/v1/admin/reports", get_admin_reports)
    app.router.add_post("/api/v1/admin/reports/{id}/action", post_report_action)
    app.router.add_get("/api/v1/streams/{slug}/reports", get_stream_reports)
    app.router.add_get("/api/v1/me/notifications", get_notifications)
    app.router.add_post("/api/v1/me/notifications/{id}/read", post_notification_read)


def report_json(r: Report) -> dict[str, Any]:
    return {
        "id": r.id, "reporter_id": r.reporter_id,
        "source": "user" if r.reporter_id else "screening",
        "target_kind": r.target_kind, "target_id": r.target_id, "stream_id": r.stream_id,
        "subject_id": r.subject_id, "category": r.category, "note": r.note, "score": r.score,
        "state": r.state, "outcome": r.outcome, "created_at": r.created_at.isoformat(),
        "closed_at": r.closed_at.isoformat() if r.closed_at else None,
    }  # fmt: skip


async def _stream_id(request: web.Request, slug: str) -> int:
    stream = await request.app[STREAM_RECORDS].by_slug(slug)
    if stream is None:
        raise NotFound("no such stream")
    return stream.id


async def post_report(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await read_body(request)
    kind = body.choice("target_kind", KINDS)
    category = body.choice("category", CATEGORIES)
    note = body.text("note", max_len=2000, default="")
    slug = body.text("stream", max_len=64) if kind in ("stream", "line") else None
    item: int | None = None
    if kind in ("user", "recording", "line"):
        item = body.integer({"user": "user_id", "recording": "recording_id"}.get(kind, "line_id"),
                            minimum=1)  # fmt: skip
    body.check()
    service = request.app[REPORTS]
    stream_id = await _stream_id(request, slug) if slug is not None else None
    try:
        target = await service.target(kind, stream_id, item)
    except UnknownTarget:
        raise NotFound(f"no such {kind}") from None
    if kind == "line":
        assert stream_id is not None and item is not None
        target_id = line_target(stream_id, item)
    else:
        target_id = str(stream_id if kind == "stream" else item)
    try:
        report = await service.file(principal.user, kind, target_id, target, category, note)
    except AlreadyReported:
        raise Conflict(f"you have an open report on this {kind} already") from None
    except Throttled as throttled:
        wait = math.ceil(throttled.retry_after_s)
        raise TooManyRequests(
            f"too many reports: try again in {wait} seconds", retry_after_s=wait
        ) from None
    return web.json_response({"report": report_json(report)}, status=201)


async def _admin(request: web.Request) -> User:
    principal = await require_user(request)
    if principal.user.role != "admin":
        raise Forbidden("only admins may use the review queue")
    return principal.user


def _age(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise Invalid(f"invalid {name}", fields={name: "must be whole seconds"})
    return int(raw)


def _choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in choices:
        raise Invalid(f"invalid {name}", fields={name: f"must be one of {', '.join(choices)}"})
    return value


async def get_admin_reports(request: web.Request) -> web.Response:
    """The platform queue, oldest first, each report with its target's context."""
    await _admin(request)
    state = _choice(request, "state", (*_STATES, "all")) or "open"
    f = QueueFilter(
        state=None if state == "all" else state,
        category=_choice(request, "category", CATEGORIES),
        target_kind=_choice(request, "target_kind", KINDS),
        min_age_s=_age(request, "min_age_s"), max_age_s=_age(request, "max_age_s"),
    )  # fmt: skip
    service = request.app[REPORTS]
    reports = await service.queue(f)
    # Each report says which actions fit its target, so the console offers only those.
    items = [
        {**report_json(r), "actions": applicable(r.target_kind),
         "context": await service.context(r)}
        for r in reports
    ]  # fmt: skip
    return web.json_response({"reports": items, "actions": list(ACTIONS)})


async def post_report_action(request: web.Request) -> web.Response:
    actor = await _admin(request)
    report_id = path_id(request, "id", "report")
    body = await read_body(request)
    action = body.choice("action", ACTIONS)
    reason = body.text("reason", max_len=500, default="")
    seconds = None
    if action == "timeout":
        seconds = body.integer("seconds", minimum=1, maximum=14 * 24 * 3600)
    elif action == "suspend_account" and "seconds" in body:
        seconds = body.integer("seconds", minimum=1, maximum=10 * 366 * 24 * 3600)
    slug = body.text("stream", max_len=64) if "stream" in body else None
    body.check()
    service = request.app[REPORTS]
    report = await service.store.get(report_id)
    if report is None:
        raise NotFound("no such report")
    stream_id = await _stream_id(request, slug) if slug is not None else None
    try:
        closed = await service.act(report, ActionRequest(action, reason, seconds, stream_id), actor)
    except NotApplicable as exc:
        raise Invalid(str(exc), fields={"action": str(exc)}) from None
    except LookupError:  # UnknownTarget, or the chat's unknown user or stream
        raise NotFound("the reported item is gone") from None
    except ActionFailed as exc:
        raise Unavailable(str(exc)) from None
    return web.json_response({"action": action, "closed": [r.id for r in closed]})


async def get_stream_reports(request: web.Request) -> web.Response:
    """The stream's queue: reports on it, its lines and its recordings, with the reports
    filed through the chat moderation API (`source: "chat"`)."""
    principal = await require_user(request)
    streams = request.app[STREAM_RECORDS]
    stream = await streams.by_slug(request.match_info["slug"])
    if stream is None:
        raise NotFound("no such stream")
    user = principal.user
    staff = user.role == "admin" or user.id == stream.owner_id
    if not staff and not await streams.is_moderator(stream.id, user.id):
        raise Forbidden("only the stream's owner, its moderators and admins may do this")
    state = _choice(request, "state", _STATES) or "open"
    service = request.app[REPORTS]
    reports = [report_json(r) for r in await service.store.for_stream(stream.id, state)]
    # The chat API's reports keep their own states: resolved there is actioned here.
    chat_state = {"actioned": "resolved"}.get(state, state)
    for c in await service.store.chat_line_reports(stream.id, chat_state):
        reports.append({
            "id": c.id, "source": "chat", "reporter_id": c.reporter_id, "target_kind": "line",
            "target_id": line_target(stream.id, c.message_id), "stream_id": stream.id,
            "category": None, "note": c.reason, "state": state,
            "created_at": c.created_at.isoformat(),
        })  # fmt: skip
    reports.sort(key=lambda r: str(r["created_at"]))
    return web.json_response({"reports": reports})


async def get_notifications(request: web.Request) -> web.Response:
    principal = await require_user(request)
    unread = request.query.get("unread") in ("1", "true")
    found = await request.app[REPORTS].store.notifications(principal.user.id, unread_only=unread)
    return web.json_response(
        {
            "notifications": [
                {"id": n.id, "kind": n.kind, **n.body, "created_at": n.created_at.isoformat(),
                 "read": n.read_at is not None}
                for n in found
            ]
        }
    )  # fmt: skip


async def post_notification_read(request: web.Request) -> web.Response:
    principal = await require_user(request)
    notification_id = path_id(request, "id", "notification")
    if not await request.app[REPORTS].store.mark_read(principal.user.id, notification_id):
        raise NotFound("no such notification")
    return web.Response(status=204)
