"""WHIP ingest (RFC 9725) and WHEP playback: POST an SDP offer, get the answer and a session.

`POST /whip/{stream}` with `Authorization: Bearer <stream key>` (or a publish token from
`POST /api/v1/streams/{slug}/publish-token`, livecore.auth.publish) and an `application/sdp`
offer answers `201 Created` with the SDP answer, the session's `Location`, and the ICE
servers as `Link` headers. `DELETE` on the session ends the broadcast; `PATCH` with
`application/trickle-ice-sdpfrag` adds trickled candidates (RFC 8840). CORS lets a page on
another origin publish.

`POST /whep/{stream}` (a recvonly offer; `Authorization: Bearer <playback token>` for
subscriber-only streams) answers with the stream's media forwarded as it is, no re-encoding;
`DELETE` on the session ends it, `PATCH` trickles candidates as for WHIP.

Several nodes (`serve_elsewhere`, livecore.cluster): a session's URL ends in `.<mark>` of the
node holding it, so any node can send a `PATCH` or `DELETE` on it to that node; a WHEP offer
for a stream live on another node goes to that node. Its answer (SDP with its ICE candidates,
Location, ETag, Link, errors) passes back as it is, and media flows between the client and
that node. A WHIP offer is taken where it lands.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol
from urllib.parse import quote

from aiohttp import web

from livecore.appkeys import (
    AUTH,
    CONFIG,
    DB,
    HUBS,
    NODE_STATE,
    PUBLISHERS,
    SECRET_KEY,
    STREAM_RECORDS,
    VIEWERS,
)
from livecore.auth.requests import bearer_token
from livecore.auth.suspensions import suspension_text
from livecore.errors import (
    BadRequest,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from livecore.sfu.offer import OfferError
from livecore.sfu.publisher import IceRestartUnsupported, UnknownSession
from livecore.sfu.viewers import TooManyViewers
from livecore.store.stream_ending import StreamEnding
from livecore.store.suspensions import Suspensions

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch",
    "Access-Control-Max-Age": "86400",
}


# Admits a viewer: (stream slug, bearer token or None); raises an ApiError to refuse.
WhepAdmit = Callable[[str, str | None], Awaitable[None]]
_WHEP_ADMIT: Final[web.AppKey[WhepAdmit]] = web.AppKey("whep_admit")


class Elsewhere(Protocol):
    """Streams and sessions held by other nodes (livecore.cluster's signaling edge). Its
    methods raise ApiErrors (the directory or the other node cannot be reached)."""

    @property
    def mark(self) -> str:
        """This node's mark: the end of its sessions' URLs (URL-safe, no '.')."""

    async def forwarded(self, request: web.Request) -> bytes | None:
        """The body of a request another node forwarded here (read whole and checked against
        the forward's signature), which is answered here and never forwarded again; None: no
        forward. Refuses a forged, stale or replayed forward."""

    async def stream_owner(self, slug: str) -> str | None:
        """The mark of another node holding live stream `slug`; None: no other node does."""

    async def forward(self, request: web.Request, mark: str, body: bytes) -> web.Response:
        """The answer of node `mark` to this request, with `body` as its body."""


_ELSEWHERE: Final[web.AppKey[Elsewhere]] = web.AppKey("signaling_elsewhere")
# A forwarded request's body, read (and checked) before anything else.
_FORWARDED_BODY: Final[web.RequestKey[bytes]] = web.RequestKey("forwarded_body", bytes)


def setup(app: web.Application, *, whep_admit: WhepAdmit) -> None:
    app[_WHEP_ADMIT] = whep_admit
    app.router.add_route("OPTIONS", "/whep/{stream}", options_whip)
    app.router.add_post("/whep/{stream}", post_whep)
    app.router.add_route("OPTIONS", "/whep/{stream}/{session}", options_whip)
    app.router.add_delete("/whep/{stream}/{session}", delete_whep_session)
    app.router.add_patch("/whep/{stream}/{session}", patch_whep_session)
    app.router.add_route("OPTIONS", "/whip/{stream}", options_whip)
    app.router.add_post("/whip/{stream}", post_whip)
    app.router.add_route("OPTIONS", "/whip/{stream}/{session}", options_whip)
    app.router.add_delete("/whip/{stream}/{session}", delete_whip_session)
    app.router.add_patch("/whip/{stream}/{session}", patch_whip_session)
    app.on_response_prepare.append(_add_cors)


def serve_elsewhere(app: web.Application, elsewhere: Elsewhere) -> None:
    """Send WHEP offers and session requests that belong to other nodes to `elsewhere`
    (before the app starts)."""
    app[_ELSEWHERE] = elsewhere


async def _elsewhere(request: web.Request) -> Elsewhere | None:
    """Where requests for other nodes go; None: one node, or a request another node forwarded
    here (answered here whatever it finds: a stale directory must not make a loop)."""
    elsewhere = request.app.get(_ELSEWHERE)
    if elsewhere is None:
        return None
    body = await elsewhere.forwarded(request)
    if body is not None:
        request[_FORWARDED_BODY] = body
        return None
    return elsewhere


def _session_path(request: web.Request, kind: str, slug: str, session_id: str) -> str:
    elsewhere = request.app.get(_ELSEWHERE)
    mark = f".{elsewhere.mark}" if elsewhere is not None else ""
    return f"/{kind}/{quote(slug)}/{session_id}{mark}"


def _local_session(request: web.Request) -> str:
    """The session id a session URL names on this node ("" when it names another node)."""
    session_id, dot, mark = request.match_info["session"].partition(".")
    elsewhere = request.app.get(_ELSEWHERE)
    if dot and (elsewhere is None or mark != elsewhere.mark):
        return ""
    return session_id


async def _to_session_owner(request: web.Request) -> web.Response | None:
    """The answer of the node a session URL names, when that is another node."""
    _, dot, mark = request.match_info["session"].partition(".")
    if not dot or (elsewhere := await _elsewhere(request)) is None or mark == elsewhere.mark:
        return None
    body = await _read_body(request, request.app[CONFIG].sfu.max_offer_bytes)
    return await elsewhere.forward(request, mark, body)


async def _add_cors(request: web.Request, response: web.StreamResponse) -> None:
    # Error answers need CORS too, or a browser page cannot read why it was refused.
    if request.path.startswith(("/whip/", "/whep/")):
        response.headers.update(_CORS)


async def options_whip(request: web.Request) -> web.Response:
    headers = {"Accept-Post": SDP} if "session" not in request.match_info else {}
    return web.Response(status=204, headers=headers)


def _ice_links(request: web.Request) -> list[str]:
    settings = request.app[CONFIG].sfu
    links = []
    for url in settings.ice_servers:
        link = f'<{url}>; rel="ice-server"'
        if url.startswith("turn") and settings.turn_username:
            link += (
                f'; username="{settings.turn_username}"; credential="{settings.turn_password}"'
                '; credential-type="password"'
            )
        links.append(link)
    return links


async def _read_sdp(request: web.Request, content_type: str, limit: int) -> str:
    if request.content_type != content_type:
        raise UnsupportedMediaType(f"the body must be {content_type}")
    try:
        return (await _read_body(request, limit)).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body must be at most {limit} bytes")
    body = request.get(_FORWARDED_BODY)  # read already: a forward
    if body is None:
        # read(n) answers with what has arrived so far: an offer in several TCP segments
        # needs several reads.
        read = bytearray()
        while len(read) <= limit and (chunk := await request.content.read(limit + 1 - len(read))):
            read += chunk
        body = bytes(read)
    if len(body) > limit:
        raise PayloadTooLarge(f"the body must be at most {limit} bytes")
    return body


async def post_whip(request: web.Request) -> web.Response:
    """Start ingest: SDP offer in; 201 with the SDP answer and a session Location out. A
    draining node sends the publisher to another node (307) or asks it to come back (503)."""
    slug = request.match_info["stream"]
    node = request.app[NODE_STATE]
    if node.draining:
        await _to_another_node(request)
    token = bearer_token(request)
    if not token:
        raise Unauthorized("invalid stream key", headers={"WWW-Authenticate": "Bearer"})
    auth = request.app[AUTH]
    # The stream key (OBS) or a short-lived publish token (the studio page).
    stream = await auth.stream_for_publisher(slug, token, request.app[SECRET_KEY])
    if stream is None:
        if await request.app[STREAM_RECORDS].by_slug(slug) is None:
            raise NotFound("no such stream")
        raise Unauthorized("invalid stream key", headers={"WWW-Authenticate": "Bearer"})
    # An admin's block (livecore.streams.ending): asked once the publisher is known, so
    # only the stream's owner learns the reason.
    block = await StreamEnding(request.app[DB]).active_block(stream.id)
    if block is not None:
        raise Forbidden(
            f"publishing is blocked until {block.until.isoformat()}: {block.reason}",
            headers={"Retry-After": str(max(1, int(block.until.timestamp() - time.time())))},
        )
    # A suspended owner's streams stay off the air (livecore.auth.suspensions).
    if (suspension := await Suspensions(request.app[DB]).active(stream.owner_id)) is not None:
        raise Forbidden(f"the stream's owner: {suspension_text(suspension)}")
    limit = request.app[CONFIG].sfu.max_offer_bytes
    offer = await _read_sdp(request, SDP, limit)
    # Whether this publish continues a broadcast begun on a node that drained or died.
    await node.before_publish(stream.id)
    try:
        session = await request.app[PUBLISHERS].start(stream.id, stream.slug, offer)
    except OfferError as exc:
        raise (BadRequest(str(exc)) if exc.malformed else Invalid(str(exc))) from None
    response = web.Response(status=201, text=session.answer_sdp, content_type=SDP)
    response.headers["Location"] = _session_path(request, "whip", stream.slug, session.id)
    response.headers["Accept-Patch"] = SDPFRAG
    response.headers["ETag"] = f'"{session.id}"'
    for link in _ice_links(request):
        response.headers.add("Link", link)
    return response


async def _to_another_node(request: web.Request) -> None:
    """Refuse a publish on a draining node: 307 to a node taking publishes (RFC 9725 on
    redirections: a WHIP client follows it; OBS reconnects by itself anyway), else 503."""
    target = await request.app[NODE_STATE].elsewhere()
    if target is not None:
        raise web.HTTPTemporaryRedirect(target + request.path_qs)
    raise Unavailable(
        "this node is shutting down; publish again in a moment", headers={"Retry-After": "5"}
    )


def _session_id(request: web.Request) -> str:
    publishers = request.app[PUBLISHERS]
    session_id = _local_session(request)
    publisher = publishers.session(session_id)
    if publisher is None or publisher.hub.slug != request.match_info["stream"]:
        raise NotFound("no such WHIP session")
    return session_id


async def delete_whip_session(request: web.Request) -> web.Response:
    """End the broadcast. The unguessable session URL is the capability (RFC 9725 §4.2)."""
    if (answer := await _to_session_owner(request)) is not None:
        return answer
    session_id = _session_id(request)
    await request.app[PUBLISHERS].stop(session_id)
    return web.Response(status=200)


async def patch_whip_session(request: web.Request) -> web.Response:
    """Trickle ICE: add candidates; an ICE restart is refused with 422 (RFC 9725 §4.3.1)."""
    if (answer := await _to_session_owner(request)) is not None:
        return answer
    session_id = _session_id(request)
    await _trickle(request, session_id, request.app[PUBLISHERS].add_candidates, "WHIP")
    return web.Response(status=204)


async def _trickle(
    request: web.Request, session_id: str, add: Callable[[str, str], Awaitable[None]], kind: str
) -> None:
    if_match = request.headers.get("If-Match")
    if if_match not in (None, "*", f'"{session_id}"'):
        raise PreconditionFailed("the session's ETag does not match If-Match")
    fragment = await _read_sdp(request, SDPFRAG, request.app[CONFIG].sfu.max_offer_bytes)
    try:
        await add(session_id, fragment)
    except UnknownSession:
        raise NotFound(f"no such {kind} session") from None
    except IceRestartUnsupported:
        raise Invalid("ICE restarts are not supported; start a new session") from None
    except ValueError:
        raise BadRequest("malformed ICE candidate") from None


async def post_whep(request: web.Request) -> web.Response:
    """Start playback: a recvonly SDP offer in; 201 with the answer and a session out."""
    slug = request.match_info["stream"]
    elsewhere = await _elsewhere(request)  # first: a forged forward is refused before anything
    await request.app[_WHEP_ADMIT](slug, bearer_token(request) or None)
    hub = request.app[HUBS].by_slug(slug)
    if hub is None:
        # Admitted here first, then again by the node holding the stream (the client's
        # Authorization goes with the offer): that node decides.
        mark = await elsewhere.stream_owner(slug) if elsewhere is not None else None
        if elsewhere is None or mark is None:
            raise NotFound("the stream is not live")
        offer = await _read_sdp(request, SDP, request.app[CONFIG].sfu.max_offer_bytes)
        return await elsewhere.forward(request, mark, offer.encode())
    offer = await _read_sdp(request, SDP, request.app[CONFIG].sfu.max_offer_bytes)
    try:
        session = await request.app[VIEWERS].start(hub, offer)
    except OfferError as exc:
        raise (BadRequest(str(exc)) if exc.malformed else Invalid(str(exc))) from None
    except TooManyViewers:
        raise Unavailable(
            "this node serves its maximum of WebRTC viewers; play over HLS",
            headers={"Retry-After": "10"},
        ) from None
    response = web.Response(status=201, text=session.answer_sdp, content_type=SDP)
    response.headers["Location"] = _session_path(request, "whep", slug, session.id)
    response.headers["Accept-Patch"] = SDPFRAG
    response.headers["ETag"] = f'"{session.id}"'
    for link in _ice_links(request):
        response.headers.add("Link", link)
    return response


def _viewer_session(request: web.Request) -> str:
    session_id = _local_session(request)
    if request.app[VIEWERS].session_stream(session_id) != request.match_info["stream"]:
        raise NotFound("no such WHEP session")
    return session_id


async def delete_whep_session(request: web.Request) -> web.Response:
    if (answer := await _to_session_owner(request)) is not None:
        return answer
    await request.app[VIEWERS].stop(_viewer_session(request))
    return web.Response(status=200)


async def patch_whep_session(request: web.Request) -> web.Response:
    """Trickle ICE for a viewer, as for a publisher."""
    if (answer := await _to_session_owner(request)) is not None:
        return answer
    session_id = _viewer_session(request)
    await _trickle(request, session_id, request.app[VIEWERS].add_candidates, "WHEP")
    return web.Response(status=204)
