"""Acting on live streams: end a broadcast now, take a stream down, publishing blocks, the
owner's choice whether the stream's moderators may end its broadcasts, and key rotation
(which ends the live session the old key opened).

`POST /api/v1/streams/{slug}/end` {reason, block_for_s?}: the owner, the stream's
moderators when the owner allows it (`PUT .../end-settings`), admins; only admins block.
`POST /api/v1/streams/{slug}/takedown` {reason, block_for_s?}: admins. `DELETE
/api/v1/streams/{slug}/block`: admins lift a block. The rules are in livecore.streams.ending.
"""

from __future__ import annotations

from aiohttp import web

from livecore.appkeys import AUDIT, BUS, DB, STREAM_RECORDS, STREAMS
from livecore.auth.requests import require_user
from livecore.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from livecore.events.bus import BusUnavailable
from livecore.jsonbody import invalid_message, read_body
from livecore.store.broadcasts import Broadcasts
from livecore.store.stream_ending import StreamEnding
from livecore.store.streams import Stream
from livecore.streams.ending import (
    BLOCK_MAX_S,
    REASON_MAX_LEN,
    TAKEDOWN_BLOCK_S,
    Ended,
    Endings,
    EndRefused,
    NotLive,
    check_reason,
    end_after_key_rotation,
)
from livecore.streams.service import NotAllowed, may_manage


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/streams/{slug}/key", post_stream_key)
    app.router.add_post("/api/v1/streams/{slug}/end", post_stream_end)
    app.router.add_post("/api/v1/streams/{slug}/takedown", post_stream_takedown)
    app.router.add_delete("/api/v1/streams/{slug}/block", delete_stream_block)
    app.router.add_get("/api/v1/streams/{slug}/end-settings", get_end_settings)
    app.router.add_put("/api/v1/streams/{slug}/end-settings", put_end_settings)


def _endings(request: web.Request) -> Endings:
    app = request.app
    return Endings(
        app[BUS], app[STREAM_RECORDS], app[AUDIT], StreamEnding(app[DB]), Broadcasts(app[DB])
    )


async def _stream(request: web.Request) -> Stream:
    stream = await request.app[STREAMS].get(request.match_info["slug"])
    if stream is None:
        raise NotFound("no such stream")
    return stream


async def _reason_and_block(
    request: web.Request, default_block_s: int | None
) -> tuple[str, int | None]:
    body = await read_body(request)
    reason = body.text("reason", max_len=REASON_MAX_LEN)
    block_for_s = default_block_s
    if "block_for_s" in body:
        block_for_s = body.integer("block_for_s", minimum=1, maximum=BLOCK_MAX_S)
    body.check()
    if (problem := check_reason(reason)) is not None:
        raise Invalid(invalid_message({"reason": problem}), fields={"reason": problem})
    return reason.strip(), block_for_s


def _ended_json(ended: Ended) -> dict[str, object]:
    block = ended.block
    return {
        "ended_by": ended.ended_by,
        "blocked_until": block.until.isoformat() if block is not None else None,
    }


async def post_stream_key(request: web.Request) -> web.Response:
    """Rotate the stream key: the old key stops working, the new one is shown once, and a
    live broadcast ends (its publisher may hold a leaked key)."""
    principal = await require_user(request)
    stream = await _stream(request)
    try:
        key = await request.app[STREAMS].rotate_key(principal.user, stream)
    except NotAllowed as exc:
        raise Forbidden(str(exc)) from None
    if stream.state == "live":
        await end_after_key_rotation(request.app[BUS], stream.id)
    return web.json_response({"stream_key": key})


async def post_stream_end(request: web.Request) -> web.Response:
    """End the live broadcast now: the publisher's session closes on whichever node holds
    it, viewers are told why, and (admins) publishing is blocked for `block_for_s`."""
    principal = await require_user(request)
    stream = await _stream(request)
    reason, block_for_s = await _reason_and_block(request, None)
    try:
        ended = await _endings(request).end(principal.user, stream, reason, block_for_s)
    except EndRefused as exc:
        raise Forbidden(str(exc)) from None
    except NotLive:
        raise Conflict("the stream is not live") from None
    except BusUnavailable:
        raise Unavailable("the other nodes cannot be reached; try again") from None
    # 202: the ingesting node closes the session as it hears the end, an instant later.
    return web.json_response(_ended_json(ended), status=202)


async def post_stream_takedown(request: web.Request) -> web.Response:
    """Admins take a stream down: its live broadcast ends, its recording is never listed
    nor played, and publishing is blocked (`block_for_s`, a week unless given)."""
    principal = await require_user(request)
    stream = await _stream(request)
    if principal.user.role != "admin":
        raise Forbidden("only admins may take a stream down")
    reason, block_for_s = await _reason_and_block(request, TAKEDOWN_BLOCK_S)
    assert block_for_s is not None  # defaulted above
    try:
        ended = await _endings(request).take_down(principal.user, stream, reason, block_for_s)
    except EndRefused as exc:
        raise Forbidden(str(exc)) from None
    except BusUnavailable:
        raise Unavailable("the other nodes cannot be reached; try again") from None
    return web.json_response(_ended_json(ended))


async def delete_stream_block(request: web.Request) -> web.Response:
    """Admins lift a publishing block before its end."""
    principal = await require_user(request)
    stream = await _stream(request)
    try:
        lifted = await _endings(request).lift_block(principal.user, stream)
    except EndRefused as exc:
        raise Forbidden(str(exc)) from None
    if not lifted:
        raise NotFound("the stream is not blocked")
    return web.Response(status=204)


async def get_end_settings(request: web.Request) -> web.Response:
    principal = await require_user(request)
    stream = await _stream(request)
    if not may_manage(principal.user, stream):
        raise Forbidden("only the stream's owner or an admin may do this")
    allowed = await StreamEnding(request.app[DB]).moderators_may_end(stream.id)
    return web.json_response({"moderators_may_end": allowed})


async def put_end_settings(request: web.Request) -> web.Response:
    """The owner (or an admin) lets the stream's moderators end its broadcasts, or not."""
    principal = await require_user(request)
    stream = await _stream(request)
    if not may_manage(principal.user, stream):
        raise Forbidden("only the stream's owner or an admin may do this")
    body = await read_body(request)
    allowed = body.flag("moderators_may_end")
    if "moderators_may_end" not in body:
        body.problems["moderators_may_end"] = "is required"
    body.check()
    await StreamEnding(request.app[DB]).set_moderators_may_end(stream.id, allowed)
    await request.app[AUDIT].record(
        "stream.end_settings", "stream", stream.id, actor_id=principal.user.id,
        details={"stream_id": stream.id, "moderators_may_end": allowed},
    )  # fmt: skip
    return web.json_response({"moderators_may_end": allowed})
