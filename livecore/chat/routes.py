"""`GET /ws/{stream}` (the chat WebSocket) and the chat moderation API.

Protocol (JSON text frames). The server sends arrays of events, one array per tick. The
first array holds `hello` (the user, the room mode and the recent history). Clients send
objects: `{"type": "chat", "text": "...", "nonce": "..."}` (answered by an `ack` with the
event id, or an `error` with a code, each carrying the nonce), `{"type": "ping"}` (answered
by `pong`), and `{"type": "auth", "token": "..."}` for clients without the session cookie.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import WSMsgType, web

from livecore.appkeys import AUTH, CONFIG
from livecore.auth.origins import OriginPolicy
from livecore.auth.routes import authenticate, require_user
from livecore.auth.service import AuthService
from livecore.chat.limits import TokenBucket
from livecore.chat.metrics import ChatMetrics
from livecore.chat.room import Outbox, Room, Rooms, Transport
from livecore.chat.service import Badge, ChatService, Refused, UnknownUser
from livecore.chat.state import settings_json
from livecore.clientip import client_ip
from livecore.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)
from livecore.events.bus import EventBus
from livecore.ids import path_id
from livecore.jsonbody import read_body
from livecore.store import UniqueViolation
from livecore.store.chat import RoomSettings
from livecore.store.streams import Stream
from livecore.store.users import User
from livecore.text import name_key

logger = logging.getLogger(__name__)

# Who may read a stream's chat (subscriber-only streams); wired by app.py.
MayRead = Callable[[User | None, Stream], Awaitable[bool]]

CLOSE_TOO_SLOW = 1013
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003
_FLOOD_STRIKES = 20  # frames refused for flooding before the socket is closed


@dataclass
class Chat:
    bus: EventBus
    auth: AuthService
    service: ChatService
    rooms: Rooms
    metrics: ChatMetrics
    may_read: MayRead
    per_ip: defaultdict[str, int]
    sockets: set[web.WebSocketResponse]
    # Which pages may use the session cookie on a socket (cross-site WebSocket hijacking).
    origins: OriginPolicy


CHAT: Final = web.AppKey("chat", Chat)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/ws/{stream}", get_ws)
    base = "/api/v1/streams/{slug}/chat"
    app.router.add_delete(base + "/messages/{message_id}", delete_chat_message)
    app.router.add_post(base + "/messages/{message_id}/reports", post_chat_report)
    app.router.add_post(base + "/timeouts", post_chat_timeout)
    app.router.add_post(base + "/bans", post_chat_ban)
    app.router.add_delete(base + "/bans/{user_id}", delete_chat_ban)
    app.router.add_get(base + "/settings", get_chat_settings)
    app.router.add_patch(base + "/settings", patch_chat_settings)
    app.router.add_get(base + "/reports", get_chat_reports)
    app.router.add_post(base + "/reports/{report_id}", post_chat_report_resolution)
    app.router.add_get(base + "/bans", get_chat_bans)
    app.router.add_get("/api/v1/streams/{slug}/moderators", get_moderators)
    app.router.add_post("/api/v1/streams/{slug}/moderators", post_moderator)
    app.router.add_put("/api/v1/streams/{slug}/moderators/{user_id}", put_moderator)
    app.router.add_delete("/api/v1/streams/{slug}/moderators/{user_id}", delete_moderator)


def _frame(*objects: dict[str, Any]) -> bytes:
    return json.dumps(list(objects), separators=(",", ":"), ensure_ascii=False).encode()


def _error(
    code: str, message: str, nonce: str | None = None, retry_after_s: float | None = None
) -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if nonce is not None:
        body["nonce"] = nonce
    if retry_after_s is not None:
        body["retry_after_s"] = round(retry_after_s, 1)
    return _frame(body)


async def _stream(request: web.Request, key: str = "slug") -> Stream:
    stream = await request.app[AUTH].streams.by_slug(request.match_info[key])
    if stream is None:
        raise NotFound("no such stream")
    return stream


# -- the WebSocket ----------------------------------------------------------------------------


async def get_ws(request: web.Request) -> web.StreamResponse:
    chat = request.app[CHAT]
    config = request.app[CONFIG].chat
    stream = await _stream(request, "stream")
    ip = client_ip(request)
    # Admission before the upgrade: a clear HTTP refusal the client can retry.
    if chat.metrics.connected >= config.max_connections:
        raise Unavailable("this node is full; try again", headers={"Retry-After": "5"})
    if chat.per_ip[ip] >= config.max_connections_per_ip:
        raise Unavailable("too many connections from this address", headers={"Retry-After": "30"})
    # Another site's page gets the socket its visitor would get logged out, never their
    # session: refusing instead would tell that page whether its visitor is logged in here,
    # and the public chat is open to anyone anyway.
    cookie = chat.origins.allows_cookie(request.headers.get("Origin"), request.host)
    principal = await authenticate(request, cookie=cookie)
    user = principal.user if principal else None
    if not await chat.may_read(user, stream):
        raise Forbidden("this chat is for subscribers")

    # Pings come from the node's one heartbeat task (livecore/chat/heartbeat.py), not from a
    # timer per socket; pongs are seen here, so the socket answers pings itself.
    ws = web.WebSocketResponse(autoping=False, max_msg_size=config.max_frame_bytes, compress=False)
    try:
        await ws.prepare(request)
    except ConnectionResetError:
        return ws  # the client left during the handshake: nothing to serve, not an error
    chat.sockets.add(ws)
    chat.per_ip[ip] += 1
    chat.metrics.opened()

    identity = f"u{user.id}" if user else f"a{ip}"
    transport = cast(Transport | None, request.transport)
    outbox = Outbox(transport, config.outbox_bytes, user.id if user else None, identity)
    room = chat.rooms.join(stream.id, outbox)
    # Live events from here on, history for what came before: no gap between the two.
    await chat.bus.joined(stream.id)
    watcher = asyncio.create_task(_close_when_told(ws, outbox, chat.metrics))
    try:
        session = _Session(chat, room, stream, user, outbox, config.inbound_per_s)
        await session.hello()
        async for message in ws:
            outbox.unanswered = False  # anything from the client answers the heartbeat
            if message.type == WSMsgType.PONG:
                continue
            if message.type == WSMsgType.PING:
                await ws.pong(message.data)
            elif message.type == WSMsgType.TEXT:
                await session.handle(message.data)
                if session.strikes >= _FLOOD_STRIKES:
                    # Said directly, not queued: the close would overtake the queue.
                    await ws.send_frame(
                        _error("flooding", "too many frames; closing"), WSMsgType.TEXT
                    )
                    await ws.close(code=CLOSE_POLICY, message=b"flooding")
            elif message.type == WSMsgType.BINARY:
                await ws.send_frame(
                    _error("unsupported", "binary frames are not accepted"), WSMsgType.TEXT
                )
                await ws.close(code=CLOSE_UNSUPPORTED, message=b"binary frames not accepted")
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        chat.rooms.leave(stream.id, outbox)
        outbox.finish()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        chat.sockets.discard(ws)
        chat.per_ip[ip] -= 1
        if chat.per_ip[ip] <= 0:
            del chat.per_ip[ip]
        chat.metrics.closed()
    return ws


async def _close_when_told(ws: web.WebSocketResponse, outbox: Outbox, metrics: ChatMetrics) -> None:
    await outbox.closed.wait()
    if outbox.silent:
        outbox.drop()  # nobody there to answer a closing handshake
    elif outbox.slow:
        metrics.slow_consumers.inc()
        await ws.close(code=CLOSE_TOO_SLOW, message=b"too slow to keep up")
    elif outbox.close_reason is not None:
        await ws.close(code=CLOSE_POLICY, message=outbox.close_reason)


class _Session:
    """One socket's conversation: who it is and what it may send."""

    def __init__(
        self,
        chat: Chat,
        room: Room,
        stream: Stream,
        user: User | None,
        outbox: Outbox,
        inbound_per_s: float,
    ) -> None:
        self._chat = chat
        self._room = room
        self._stream = stream
        self._user = user
        self._outbox = outbox
        self._badges: list[Badge] = []
        self._inbound = TokenBucket(
            capacity=max(1.0, inbound_per_s * 2), refill_per_s=inbound_per_s
        )
        self.strikes = 0

    async def hello(self) -> None:
        service = self._chat.service
        state = await service.state(self._room)
        if self._user is not None:
            self._badges = await service.badges(self._user, self._stream)
        history = await service.history(self._stream.id)
        hello = {
            "type": "hello",
            "user": self._user_json(),
            "room_mode": settings_json(state.settings),
        }
        # History bodies are pre-encoded JSON: spliced in, not decoded and encoded again.
        head = json.dumps(hello, separators=(",", ":"), ensure_ascii=False)[:-1].encode()
        self._outbox.offer(b"[" + head + b',"history":[' + b",".join(history) + b"]}]")

    def _user_json(self) -> dict[str, Any] | None:
        if self._user is None:
            return None
        return {"id": self._user.id, "name": self._user.display_name, "badges": self._badges}

    async def handle(self, raw: str) -> None:
        if self._inbound.take() > 0:
            self.strikes += 1
            self._outbox.offer(_error("flooding", "slow down: too many frames"))
            return
        try:
            data = json.loads(raw)
        except ValueError:
            self._outbox.offer(_error("bad_json", "frames must be JSON"))
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self._outbox.offer(_error("bad_message", "frames must be objects with a type"))
            return
        nonce = data.get("nonce")
        if nonce is not None and (not isinstance(nonce, str) or len(nonce) > 64):
            self._outbox.offer(_error("bad_message", "nonce must be a string of at most 64"))
            return
        kind = data["type"]
        if kind == "ping":
            self._outbox.offer(_frame({"type": "pong", "nonce": nonce}))
        elif kind == "auth":
            await self._auth(data.get("token"), nonce)
        elif kind == "chat":
            await self._send_chat(data.get("text"), nonce)
        else:
            self._outbox.offer(_error("unknown_type", f"unknown type {kind[:32]!r}", nonce))

    async def _auth(self, token: object, nonce: str | None) -> None:
        session = None
        if isinstance(token, str) and len(token) <= 128:
            found = await self._chat.auth.authenticate(token)
            session = found.user if found is not None else None
        if session is None:
            self._outbox.offer(_error("unauthorized", "invalid or expired token", nonce))
            return
        if not await self._chat.may_read(session, self._stream):
            self._outbox.offer(_error("forbidden", "this chat is for subscribers", nonce))
            return
        self._user = session
        self._outbox.user_id = session.id
        self._badges = await self._chat.service.badges(session, self._stream)
        self._outbox.offer(_frame({"type": "ack", "nonce": nonce, "user": self._user_json()}))

    async def _send_chat(self, text: object, nonce: str | None) -> None:
        metrics = self._chat.metrics
        if self._user is None:
            metrics.refused.labels("login_required").inc()
            self._outbox.offer(_error("login_required", "log in to chat", nonce))
            return
        if not isinstance(text, str):
            self._outbox.offer(_error("bad_message", "text must be a string", nonce))
            return
        text = text.replace("\r\n", "\n")  # Windows line ends are line ends, not control chars
        metrics.messages_in.inc()
        started = time.perf_counter()
        try:
            event_id = await self._chat.service.send(
                self._room, self._stream, self._user, self._badges, text, nonce or ""
            )
        except Refused as refused:
            metrics.refused.labels(refused.code).inc()
            self._outbox.offer(_error(refused.code, refused.message, nonce, refused.retry_after_s))
            return
        metrics.publish_latency.observe(time.perf_counter() - started)
        self._outbox.offer(_frame({"type": "ack", "nonce": nonce, "id": event_id}))


# -- moderation API ---------------------------------------------------------------------------


async def _staff(request: web.Request) -> tuple[User, Stream]:
    principal = await require_user(request)
    stream = await _stream(request)
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
    stream = await _stream(request)
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
    users = await request.app[AUTH].users.get_many(unique) if unique else []
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
    ids = await request.app[AUTH].streams.moderators(stream.id)
    names = await _names(request, ids)
    users = [{"id": i, "display_name": names[i]} for i in ids if i in names]
    return web.json_response({"moderators": ids, "users": users})


async def _owner(request: web.Request) -> tuple[User, Stream]:
    principal = await require_user(request)
    stream = await _stream(request)
    if principal.user.role != "admin" and principal.user.id != stream.owner_id:
        raise Forbidden("only the stream's owner or an admin may change its moderators")
    return principal.user, stream


async def put_moderator(request: web.Request) -> web.Response:
    actor, stream = await _owner(request)
    user_id = _int(request, "user_id")
    auth = request.app[AUTH]
    if await auth.users.get(user_id) is None:
        raise NotFound("no such user")
    await _add_moderator(request, actor, stream, user_id)
    return web.Response(status=204)


async def post_moderator(request: web.Request) -> web.Response:
    """Make someone a moderator by their display name or e-mail address, as the studio asks."""
    actor, stream = await _owner(request)
    body = await read_body(request)
    who = body.text("user", max_len=254).strip()
    body.check()
    users = request.app[AUTH].users
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
    auth = request.app[AUTH]
    await auth.streams.add_moderator(stream.id, user_id)
    await auth.audit.record(
        "stream.moderator_add", "stream", stream.id, actor_id=actor.id,
        details={"user_id": user_id},
    )  # fmt: skip


async def delete_moderator(request: web.Request) -> web.Response:
    actor, stream = await _owner(request)
    user_id = _int(request, "user_id")
    auth = request.app[AUTH]
    if not await auth.streams.remove_moderator(stream.id, user_id):
        raise NotFound("that user is not a moderator of this stream")
    await auth.audit.record(
        "stream.moderator_remove", "stream", stream.id, actor_id=actor.id,
        details={"user_id": user_id},
    )  # fmt: skip
    return web.Response(status=204)
