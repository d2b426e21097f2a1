"""The chat moderation API under `/api/v1/streams/{slug}/`: deleting lines, timeouts and
bans, the room's settings, reports, and the stream's moderators.

Staff (the stream's owner, its moderators and admins) moderate; only the owner or an admin
names moderators; any logged-in viewer may report a line.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livecore.appkeys import AUDIT, CHAT, STREAM_RECORDS, USERS
from livecore.auth.requests import require_user
from livecore.chat.context import stream_of
from livecore.chat.service import UnknownUser
from livecore.chat.state import settings_json
from livecore.errors import Conflict, Forbidden, Invalid, NotFound
from livecore.ids import path_id
from livecore.jsonbody import read_body
from livecore.store import UniqueViolation
from livecore.store.chat import RoomSettings
from livecore.store.streams import Stream
from livecore.store.users import User
from livecore.text import name_key


async def _staff(request: web.Request) -> tuple[User, Stream]:
    principal = await require_user(request)
    stream = await stream_of(request)
    if not await request.app[CHAT].service.is_staff(principal.user, stream):
        raise Forbidden("only the stream's owner, its moderators and admins may do this")
    return principal.user, stream


def _int(request: web.Request, name: str) -> int:
    return path_id(request, name, name.removesuffix("_id"))


async def delete_chat_message(request: web.Request) -> web.Response:
    actor, stream = await _staff(request)
    await request.app[CHAT].service.delete_message(stream, _int(request, "message_id"), actor)
    return web.Response(status=204)


async def post_chat_timeout(request: web.Request) -> web.Response:
    actor, stream = await _staff(request)
    body = await read_body(request)
    user_id = body.integer("user_id", minimum=1)
    seconds = body.integer("seconds", minimum=1, maximum=14 * 24 * 3600)
    reason = body.text("reason", max_len=500, default="")
    body.check()
    try:
        until = await request.app[CHAT].service.timeout(stream, user_id, seconds, actor, reason)
    except UnknownUser:
        raise NotFound("no such user") from None
    return web.json_response({"user_id": user_id, "until": until}, status=201)


async def post_chat_ban(request: web.Request) -> web.Response:
    actor, stream = await _staff(request)
    body = await read_body(request)
    user_id = body.integer("user_id", minimum=1)
    reason = body.text("reason", max_len=500, default="")
    body.check()
    if user_id == stream.owner_id:
        raise Invalid("the stream's owner cannot be banned", fields={"user_id": "is the owner"})
    try:
        await request.app[CHAT].service.ban(stream, user_id, actor, reason)
    except UnknownUser:
        raise NotFound("no such user") from None
    return web.json_response({"user_id": user_id}, status=201)


async def delete_chat_ban(request: web.Request) -> web.Response:
    actor, stream = await _staff(request)
    if not await request.app[CHAT].service.unban(stream, _int(request, "user_id"), actor):
        raise NotFound("that user is not banned or timed out here")
    return web.Response(status=204)


async def get_chat_bans(request: web.Request) -> web.Response:
    """Bans and timeouts in force (newest first), for the moderators' list with "Lift"."""
    _, stream = await _staff(request)
    bans = await request.app[CHAT].service.ban_list(stream)
    return web.json_response(
        {
            "bans": [
                {
                    "user_id": b.user_id, "display_name": b.user_name,
                    "until": b.until.isoformat() if b.until else None, "reason": b.reason,
                    "by": b.by_name, "created_at": b.created_at.isoformat(),
                }
                for b in bans
            ]
        }
    )  # fmt: skip


async def get_chat_settings(request: web.Request) -> web.Response:
    _, stream = await _staff(request)
    settings = await request.app[CHAT].service.settings(stream)
    return web.json_response(
        {**settings_json(settings), "banned_terms": list(settings.banned_terms)}
    )


def _settings_body(settings: RoomSettings) -> dict[str, Any]:
    # Staff see the banned terms themselves; viewers only ever see their count.
    return {**settings_json(settings), "banned_terms": list(settings.banned_terms)}


async def patch_chat_settings(request: web.Request) -> web.Response:
    actor, stream = await _staff(request)
    body = await read_body(request)
    changes: dict[str, Any] = {}
    if "slow_mode_s" in body:
        changes["slow_mode_s"] = body.integer("slow_mode_s", minimum=0, maximum=3600)
    if "subscribers_only" in body:
        changes["subscribers_only"] = body.flag("subscribers_only")
    if "links_allowed" in body:
        changes["links_allowed"] = body.flag("links_allowed")
    if "max_length" in body:
        changes["max_length"] = body.integer("max_length", minimum=1, maximum=2000)
    if "banned_terms" in body:
        changes["banned_terms"] = tuple(body.texts("banned_terms", max_items=1000, max_len=100))
    body.check()
    settings = await request.app[CHAT].service.update_settings(stream, actor, changes)
    return web.json_response(
        {**settings_json(settings), "banned_terms": list(settings.banned_terms)}
    )


async def post_chat_report(request: web.Request) -> web.Response:
    principal = await require_user(request)
    stream = await stream_of(request)
    body = await read_body(request)
    reason = body.text("reason", max_len=500, default="")
    body.check()
    service = request.app[CHAT].service
    message_id = _int(request, "message_id")
    try:
        report_id = await service.report(stream, message_id, principal.user, reason)
    except LookupError:
        raise NotFound("no such message") from None
    except UniqueViolation:
        raise Conflict("you reported this message already") from None
    return web.json_response({"id": report_id}, status=201)


async def get_chat_reports(request: web.Request) -> web.Response:
    _, stream = await _staff(request)
    state = request.query.get("state", "open")
    if state not in ("open", "resolved", "dismissed"):
        raise Invalid("invalid state", fields={"state": "must be open, resolved or dismissed"})
    reports = await request.app[CHAT].service.reports(stream, state)
    names = await _names(request, [r.reporter_id for r in reports] + [
        r.author_id for r in reports if r.author_id is not None
    ])  # fmt: skip
    return web.json_response(
        {
            "reports": [
                {
                    "id": r.id, "message_id": r.message_id, "reporter_id": r.reporter_id,
                    "reporter_name": names.get(r.reporter_id), "reason": r.reason,
                    "state": r.state, "text": r.text, "author_id": r.author_id,
                    "author_name": names.get(r.author_id) if r.author_id else None,
                    "created_at": r.created_at.isoformat(),
                }
                for r in reports
            ]
        }
    )  # fmt: skip


async def _names(request: web.Request, user_ids: list[int]) -> dict[int, str]:
    unique = list(dict.fromkeys(user_ids))
    users = await request.app[USERS].get_many(unique) if unique else []
    return {u.id: u.display_name for u in users if u is not None}


async def post_chat_report_resolution(request: web.Request) -> web.Response:
    actor, stream = await _staff(request)
    body = await read_body(request)
    action = body.choice("action", ("resolve", "dismiss"))
    body.check()
    state = "resolved" if action == "resolve" else "dismissed"
    service = request.app[CHAT].service
    if not await service.resolve_report(stream, _int(request, "report_id"), state, actor):
        raise NotFound("no such open report")
    return web.Response(status=204)


async def get_moderators(request: web.Request) -> web.Response:
    _, stream = await _staff(request)
    ids = await request.app[STREAM_RECORDS].moderators(stream.id)
    names = await _names(request, ids)
    users = [{"id": i, "display_name": names[i]} for i in ids if i in names]
    return web.json_response({"moderators": ids, "users": users})


async def _owner(request: web.Request) -> tuple[User, Stream]:
    principal = await require_user(request)
    stream = await stream_of(request)
    if principal.user.role != "admin" and principal.user.id != stream.owner_id:
        raise Forbidden("only the stream's owner or an admin may change its moderators")
    return principal.user, stream


async def put_moderator(request: web.Request) -> web.Response:
    actor, stream = await _owner(request)
    user_id = _int(request, "user_id")
    if await request.app[USERS].get(user_id) is None:
        raise NotFound("no such user")
    await _add_moderator(request, actor, stream, user_id)
    return web.Response(status=204)


async def post_moderator(request: web.Request) -> web.Response:
    """Make someone a moderator by their display name or e-mail address, as the studio asks."""
    actor, stream = await _owner(request)
    body = await read_body(request)
    who = body.text("user", max_len=254).strip()
    body.check()
    users = request.app[USERS]
    user = await users.by_email(who) if "@" in who else None
    if user is None:
        user = await users.by_name_key(name_key(who))
    if user is None:
        raise NotFound("no user has this name or e-mail address")
    if user.id == stream.owner_id:
        raise Invalid("the owner moderates the stream already", fields={"user": "is the owner"})
    await _add_moderator(request, actor, stream, user.id)
    return web.json_response({"user": {"id": user.id, "display_name": user.display_name}})


async def _add_moderator(request: web.Request, actor: User, stream: Stream, user_id: int) -> None:
    await request.app[STREAM_RECORDS].add_moderator(stream.id, user_id)
    await request.app[AUDIT].record(
        "stream.moderator_add", "stream", stream.id, actor_id=actor.id,
        details={"user_id": user_id},
    )  # fmt: skip


async def delete_moderator(request: web.Request) -> web.Response:
    actor, stream = await _owner(request)
    user_id = _int(request, "user_id")
    if not await request.app[STREAM_RECORDS].remove_moderator(stream.id, user_id):
        raise NotFound("that user is not a moderator of this stream")
    await request.app[AUDIT].record(
        "stream.moderator_remove", "stream", stream.id, actor_id=actor.id,
        details={"user_id": user_id},
    )  # fmt: skip
    return web.Response(status=204)
