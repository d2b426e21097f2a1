"""`GET /ws/{stream}`: the chat WebSocket, one `_Session` per socket.

The frames it reads and writes are in `protocol.py`; what a line must pass to be said is
in `service.py`; fan-out to the room's other sockets is `room.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from aiohttp import WSMsgType, web

from livecore.appkeys import CHAT, CONFIG
from livecore.auth.requests import authenticate
from livecore.chat import protocol
from livecore.chat.admission import LineFull
from livecore.chat.limits import TokenBucket
from livecore.chat.metrics import ChatMetrics
from livecore.chat.node import Chat
from livecore.chat.protocol import (
    CLOSE_POLICY,
    CLOSE_TOO_SLOW,
    CLOSE_UNSUPPORTED,
    BadFrame,
    error,
    frame,
)
from livecore.chat.room import Outbox, Room, Transport
from livecore.chat.service import Badge, Refused
from livecore.clientip import client_ip
from livecore.errors import Forbidden, NotFound, Unavailable
from livecore.store.streams import Stream
from livecore.store.users import User

logger = logging.getLogger(__name__)

_FLOOD_STRIKES = 20  # frames refused for flooding before the socket is closed


async def get_ws(request: web.Request) -> web.StreamResponse:
    chat = request.app[CHAT]
    config = request.app[CONFIG].chat
    # No database round trip per join: the stream is read at most once a second per node.
    stream = await chat.find_stream(request.match_info["stream"])
    if stream is None:
        raise NotFound("no such stream")
    ip = client_ip(request)
    # Admission before the upgrade: a clear HTTP refusal the client can retry, its
    # Retry-After jittered so that the refused do not all come back in the same second.
    line = chat.admission
    if chat.metrics.connected >= config.max_connections:
        retry = line.refuse("node_full", 5)
        raise Unavailable("this node is full; try again", headers={"Retry-After": str(retry)})
    if chat.per_ip[ip] >= config.max_connections_per_ip:
        retry = line.refuse("address_full", 30)
        raise Unavailable(
            "too many connections from this address", headers={"Retry-After": str(retry)}
        )
    try:
        await line.enter()  # joins faster than the node takes them wait their turn here
    except LineFull as full:
        raise Unavailable(
            f"{full.waiting} viewers are in line to join; try again",
            headers={"Retry-After": str(full.retry_after_s)},
        ) from None
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
        # The client left during the handshake: nothing to serve, not an error. Not the
        # socket: if it broke after its headers were written, aiohttp would close it again and
        # log a RuntimeError; a plain response meets the closed transport and is dropped.
        return web.Response(status=499, reason="Client Closed Request")
    chat.sockets.add(ws)
    chat.per_ip[ip] += 1
    chat.metrics.opened()

    identity = f"u{user.id}" if user else f"a{ip}"
    transport = cast(Transport | None, request.transport)
    outbox = Outbox(transport, config.outbox_bytes, user.id if user else None, identity)
    closing: list[asyncio.Task[None]] = []  # a task only for a socket told to close

    def close_when_told() -> None:
        closing.append(asyncio.create_task(_close_as_told(ws, outbox, chat.metrics)))

    outbox.on_close = close_when_told
    room = chat.rooms.join(stream.id, outbox)
    try:
        # Live events from here on, history for what came before: no gap between the two.
        await chat.bus.joined(stream.id)
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
                        error("flooding", "too many frames; closing"), WSMsgType.TEXT
                    )
                    await ws.close(code=CLOSE_POLICY, message=b"flooding")
            elif message.type == WSMsgType.BINARY:
                await ws.send_frame(
                    error("unsupported", "binary frames are not accepted"), WSMsgType.TEXT
                )
                await ws.close(code=CLOSE_UNSUPPORTED, message=b"binary frames not accepted")
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        chat.rooms.leave(stream.id, outbox)
        outbox.finish()
        for task in closing:
            task.cancel()
        await asyncio.gather(*closing, return_exceptions=True)
        chat.sockets.discard(ws)
        chat.per_ip[ip] -= 1
        if chat.per_ip[ip] <= 0:
            del chat.per_ip[ip]
        chat.metrics.closed()
    return ws


async def get_chat_line(request: web.Request) -> web.Response:
    """The join line's state on this node: what the watch page shows a viewer whose socket
    was refused ("You're in line") and when it tries again."""
    chat = request.app[CHAT]
    state = chat.admission.state()
    full = chat.metrics.connected >= request.app[CONFIG].chat.max_connections
    is_open = state.open and not full
    retry_after_s = chat.admission.retry_after(5) if state.open else state.retry_after_s
    body = {
        "open": is_open, "waiting": state.waiting, "wait_s": round(state.wait_s, 1),
        "admit_per_s": state.admit_per_s, "retry_after_s": 0 if is_open else retry_after_s,
    }  # fmt: skip
    headers = {"Cache-Control": "no-store"}
    if not is_open:
        headers["Retry-After"] = str(retry_after_s)
    return web.json_response(body, headers=headers)


async def _close_as_told(ws: web.WebSocketResponse, outbox: Outbox, metrics: ChatMetrics) -> None:
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
        greeting = await service.greeting(self._room)
        if self._user is None:
            self._outbox.write_frame(greeting.anonymous_frame)  # encoded once for the room
            return
        self._badges = await service.badges(self._user, self._stream)
        self._outbox.offer(greeting.hello(self._user_json()))

    def _user_json(self) -> dict[str, Any] | None:
        if self._user is None:
            return None
        return {"id": self._user.id, "name": self._user.display_name, "badges": self._badges}

    async def handle(self, raw: str) -> None:
        if self._inbound.take() > 0:
            self.strikes += 1
            self._outbox.offer(error("flooding", "slow down: too many frames"))
            return
        try:
            message = protocol.parse(raw)
        except BadFrame as bad:
            self._outbox.offer(bad.answer)
            return
        kind, nonce, data = message.kind, message.nonce, message.data
        if kind == "ping":
            self._outbox.offer(frame({"type": "pong", "nonce": nonce}))
        elif kind == "auth":
            await self._auth(data.get("token"), nonce)
        elif kind == "chat":
            await self._send_chat(data.get("text"), nonce)
        else:
            self._outbox.offer(error("unknown_type", f"unknown type {kind[:32]!r}", nonce))

    async def _auth(self, token: object, nonce: str | None) -> None:
        session = None
        if isinstance(token, str) and len(token) <= 128:
            found = await self._chat.auth.authenticate(token)
            session = found.user if found is not None else None
        if session is None:
            self._outbox.offer(error("unauthorized", "invalid or expired token", nonce))
            return
        if not await self._chat.may_read(session, self._stream):
            self._outbox.offer(error("forbidden", "this chat is for subscribers", nonce))
            return
        self._user = session
        self._outbox.user_id = session.id
        self._badges = await self._chat.service.badges(session, self._stream)
        self._outbox.offer(frame({"type": "ack", "nonce": nonce, "user": self._user_json()}))

    async def _send_chat(self, text: object, nonce: str | None) -> None:
        metrics = self._chat.metrics
        if self._user is None:
            metrics.refused.labels("login_required").inc()
            self._outbox.offer(error("login_required", "log in to chat", nonce))
            return
        if not isinstance(text, str):
            self._outbox.offer(error("bad_message", "text must be a string", nonce))
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
            self._outbox.offer(error(refused.code, refused.message, nonce, refused.retry_after_s))
            return
        metrics.publish_latency.observe(time.perf_counter() - started)
        self._outbox.offer(frame({"type": "ack", "nonce": nonce, "id": event_id}))
