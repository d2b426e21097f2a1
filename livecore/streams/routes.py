"""/api/v1/streams: create, list, read, edit, delete streams and rotate their keys."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from livecore.appkeys import (
    AUDIT,
    DB,
    INGEST,
    LISTINGS,
    PLAYBACK,
    RECORDINGS,
    SEARCHES,
    SECRET_KEY,
    STREAM_RECORDS,
    STREAMS,
    VIEWER_COUNTS,
)
from livecore.auth.publish import new_publish_token
from livecore.auth.requests import authenticate, require_user
from livecore.auth.service import InvalidInput
from livecore.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from livecore.ids import path_id
from livecore.jsonbody import invalid_message, iso, read_body
from livecore.recordings.takedown import take_down
from livecore.store.broadcasts import Broadcast, Broadcasts
from livecore.store.streams import Stream, StreamState, Visibility
from livecore.streams.health import IngestReport
from livecore.streams.playback import PlaybackRefused
from livecore.streams.service import (
    NotAllowed,
    SlugTaken,
    StreamIsLive,
    check_search,
    may_manage,
)

# Public stream listings (appkeys.LISTINGS), by state filter: a listing as sent, its ETag
# and its JSON body.
Listing = tuple[str, bytes]
LISTING_TTL_S = 1.0
# Recordings listed with each offline stream (the home page's channels); the rest are on
# its watch page.
LISTED_RECORDINGS = 3
VISIBILITIES: tuple[Visibility, ...] = ("public", "subscribers")
STATES: tuple[StreamState, ...] = ("offline", "live")


def setup(app: web.Application) -> None:
    """Add the routes (the services: streams/setup.py)."""
    app.router.add_post("/api/v1/streams", post_streams)
    app.router.add_get("/api/v1/streams", get_streams)
    app.router.add_get("/api/v1/streams/{slug}", get_stream)
    app.router.add_patch("/api/v1/streams/{slug}", patch_stream)
    app.router.add_delete("/api/v1/streams/{slug}", delete_stream)
    app.router.add_post("/api/v1/streams/{slug}/publish-token", post_publish_token)
    app.router.add_post("/api/v1/streams/{slug}/playback", post_stream_playback)
    app.router.add_get("/api/v1/streams/{slug}/health", get_stream_health)
    app.router.add_get("/api/v1/streams/{slug}/audit", get_stream_audit)
    app.router.add_get("/api/v1/streams/{slug}/broadcasts", get_stream_broadcasts)
    app.router.add_get("/api/v1/streams/{slug}/recordings", get_stream_recordings)
    app.router.add_delete("/api/v1/streams/{slug}/recordings/{id}", delete_stream_recording)


def stream_json(stream: Stream) -> dict[str, Any]:
    return {
        "id": stream.id,
        "slug": stream.slug,
        "title": stream.title,
        "visibility": stream.visibility,
        "state": stream.state,
        "owner": {"id": stream.owner_id, "display_name": stream.owner_name},
        "started_at": iso(stream.started_at),
        "ended_at": iso(stream.ended_at),
        "created_at": stream.created_at.isoformat(),
    }


def recording_json(recording: Broadcast) -> dict[str, Any]:
    return {
        "id": recording.id,
        "started_at": iso(recording.started_at),
        "ended_at": iso(recording.ended_at),
        "width": recording.width,
        "height": recording.height,
        "url": f"/vod/{recording.id}/vod.m3u8",
    }


async def _listing(app: web.Application, streams: list[Stream]) -> list[dict[str, Any]]:
    """The streams as listed: live ones with their viewer count, offline ones with their
    newest recordings. Two lookups for the whole list, none per stream."""
    live = [s.id for s in streams if s.state == "live"]
    offline = [s.id for s in streams if s.state == "offline"]
    viewer_counts = app.get(VIEWER_COUNTS)
    counts = await viewer_counts(live) if live and viewer_counts is not None else {}
    past = (
        await Broadcasts(app[DB]).recent_recordings(offline, LISTED_RECORDINGS) if offline else {}
    )
    listed = []
    for stream in streams:
        item = stream_json(stream)
        if stream.state == "live":
            item["viewers"] = counts.get(stream.id, 0)
        else:
            item["recordings"] = [recording_json(r) for r in past.get(stream.id, [])]
        listed.append(item)
    return listed


async def _stream(request: web.Request) -> Stream:
    stream = await request.app[STREAMS].get(request.match_info["slug"])
    if stream is None:
        raise NotFound("no such stream")
    return stream


async def post_streams(request: web.Request) -> web.Response:
    """Create a stream; the answer carries its stream key, shown this once only."""
    principal = await require_user(request)
    body = await read_body(request)
    slug = body.text("slug", max_len=64)
    title = body.text("title", max_len=1000, default="")
    visibility = body.choice("visibility", VISIBILITIES, default="public")
    body.check()
    try:
        created = await request.app[STREAMS].create(principal.user, slug, title, visibility)
    except NotAllowed as exc:
        raise Forbidden(str(exc)) from None
    except InvalidInput as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except SlugTaken:
        raise Conflict("a stream with this slug exists already") from None
    body_out = {"stream": stream_json(created.stream), "stream_key": created.stream_key}
    headers = {"Location": f"/api/v1/streams/{created.stream.slug}"}
    return web.json_response(body_out, status=201, headers=headers)


async def get_streams(request: web.Request) -> web.Response:
    """List streams: `?state=live` for what is on now, `?owner=me` for one's own, `?q=` for
    those whose title, slug or creator's name holds the text."""
    raw_state = request.query.get("state")
    state = next((s for s in STATES if s == raw_state), None)
    if raw_state is not None and state is None:
        raise Invalid("invalid state", fields={"state": "must be one of live, offline"})
    owner_id = None
    if (owner := request.query.get("owner")) is not None:
        if owner != "me":
            raise Invalid("invalid owner", fields={"owner": "must be me"})
        owner_id = (await require_user(request)).user.id
    search = request.query.get("q", "").strip()
    if (problem := check_search(search)) is not None:
        raise Invalid("invalid search", fields={"q": problem})
    service = request.app[STREAMS]
    app = request.app

    async def load() -> Listing:
        streams = await service.list(state=state, owner_id=owner_id, search=search or None)
        body = json.dumps({"streams": await _listing(app, streams)}).encode()
        return f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"', body

    if owner_id is not None:
        etag, body = await load()
    elif search:
        etag, body = await app[SEARCHES].get((state, search), load)
    else:
        # Everyone asks for the same public list (a premiere brings thousands at once):
        # one query and one encoding per node per TTL, shared by all of them.
        etag, body = await app[LISTINGS].get(state, load)
    # Pages that look every few seconds revalidate (their browser sends If-None-Match by
    # itself): while nothing changed, the answer is a 304 without a body.
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if owner_id is not None:
        headers.update({"Cache-Control": "private, no-cache", "Vary": "Cookie, Authorization"})
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


async def get_stream(request: web.Request) -> web.Response:
    return web.json_response({"stream": stream_json(await _stream(request))})


async def patch_stream(request: web.Request) -> web.Response:
    principal = await require_user(request)
    stream = await _stream(request)
    body = await read_body(request)
    title = body.text("title", max_len=1000) if "title" in body else None
    visibility = body.choice("visibility", VISIBILITIES) if "visibility" in body else None
    body.check()
    try:
        updated = await request.app[STREAMS].update(
            principal.user, stream, title=title, visibility=visibility
        )
    except NotAllowed as exc:
        raise Forbidden(str(exc)) from None
    except InvalidInput as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except LookupError:
        raise NotFound("no such stream") from None
    return web.json_response({"stream": stream_json(updated)})


async def delete_stream(request: web.Request) -> web.Response:
    principal = await require_user(request)
    stream = await _stream(request)
    try:
        await request.app[STREAMS].delete(principal.user, stream)
    except NotAllowed as exc:
        raise Forbidden(str(exc)) from None
    except StreamIsLive:
        raise Conflict("stream is live; end the broadcast before deleting it") from None
    return web.Response(status=204)


async def post_publish_token(request: web.Request) -> web.Response:
    """A short-lived token the owner's page publishes with over WHIP instead of the stream
    key (which is stored hashed and cannot be shown again); the key keeps working."""
    principal = await require_user(request)
    stream = await _stream(request)
    if not may_manage(principal.user, stream):
        raise Forbidden("only the stream's owner or an admin may do this")
    token, expires_at = new_publish_token(request.app[SECRET_KEY], stream.id, principal.user.id)
    return web.json_response(
        {"token": token, "expires_at": expires_at, "whip_url": f"/whip/{stream.slug}"}
    )


async def get_stream_health(request: web.Request) -> web.Response:
    """The live stream's ingest figures for its owner, moderators and admins. `ingest` is
    null when the stream is offline, or live on another node (each node knows the publishers
    it ingests)."""
    principal = await require_user(request)
    stream = await _stream(request)
    user = principal.user
    if not may_manage(user, stream) and not await request.app[STREAM_RECORDS].is_moderator(
        stream.id, user.id
    ):
        raise Forbidden("only the stream's owner, its moderators and admins may do this")
    probe = request.app.get(INGEST)
    report = await probe.report(stream.id) if probe is not None else None
    return web.json_response(
        {"state": stream.state, "started_at": iso(stream.started_at), "ingest": ingest_json(report)}
    )


def ingest_json(report: IngestReport | None) -> dict[str, Any] | None:
    """Ingest figures as the health route (and the admin console's listing) answer them."""
    if report is None:
        return None
    return {
        **dataclasses.asdict(report),
        "fps": round(report.fps, 2),
        "packet_loss": round(report.packet_loss, 4),
        "keyframe_interval_s": None
        if report.keyframe_interval_s is None
        else round(report.keyframe_interval_s, 2),
        "last_media_s": round(report.last_media_s, 2),
    }


async def get_stream_audit(request: web.Request) -> web.Response:
    """The audit of actions on the stream, newest first (owner, admins): its settings, keys,
    moderators, chat moderation and recordings. `?before=ID` pages back, 100 at a time."""
    principal = await require_user(request)
    stream = await _stream(request)
    if not may_manage(principal.user, stream):
        raise Forbidden("only the stream's owner or an admin may do this")
    before = request.query.get("before")
    if before is not None and not (before.isdigit() and 0 < len(before) < 19):
        raise Invalid("invalid before", fields={"before": "must be an entry id"})
    entries = await request.app[AUDIT].for_stream(
        stream.id, before_id=int(before) if before else None
    )
    return web.json_response(
        {
            "entries": [
                {
                    "id": e.id, "at": e.at.isoformat(), "action": e.action,
                    "actor": {"id": e.actor_id, "display_name": e.actor_name}
                    if e.actor_id is not None else None,
                    "target_type": e.target_type, "target_id": e.target_id,
                    "details": e.details, "user_name": e.user_name,
                }
                for e in entries
            ]
        }
    )  # fmt: skip


async def get_stream_broadcasts(request: web.Request) -> web.Response:
    """The stream's past broadcasts with their audience (owner, admins), newest first."""
    principal = await require_user(request)
    stream = await _stream(request)
    if not may_manage(principal.user, stream):
        raise Forbidden("only the stream's owner or an admin may do this")
    past = await Broadcasts(request.app[DB]).audience(stream.id)
    return web.json_response(
        {
            "broadcasts": [
                {
                    "id": b.id, "started_at": iso(b.started_at), "ended_at": iso(b.ended_at),
                    "peak_viewers": b.peak_viewers, "unique_viewers": b.unique_viewers,
                    "recording": f"/vod/{b.id}/vod.m3u8" if b.recording else None,
                }
                for b in past
            ]
        }
    )  # fmt: skip


async def post_stream_playback(request: web.Request) -> web.Response:
    """Where to play the stream; for subscriber-only streams a signed, expiring token."""
    principal = await authenticate(request)
    stream = await _stream(request)
    try:
        ticket = await request.app[PLAYBACK].ticket(principal.user if principal else None, stream)
    except PlaybackRefused:
        if principal is None:
            raise Unauthorized("log in to watch this stream") from None
        raise Forbidden("this stream is for subscribers") from None
    query = f"?token={ticket.token}" if ticket.token else ""
    return web.json_response(
        {
            "url": f"/hls/{stream.slug}/master.m3u8{query}",
            "token": ticket.token,
            "expires_at": ticket.expires_at,
        }
    )


async def get_stream_recordings(request: web.Request) -> web.Response:
    """Finished broadcasts of the stream whose recordings are kept, newest first."""
    stream = await _stream(request)
    recordings = await Broadcasts(request.app[DB]).recordings(stream.id)
    return web.json_response({"recordings": [recording_json(r) for r in recordings]})


async def delete_stream_recording(request: web.Request) -> web.Response:
    """The owner or an admin takes a recording down: every node stops listing and serving it
    at once; its files go from this disk now, or from the recording node's at its next
    retention sweep."""
    principal = await require_user(request)
    stream = await _stream(request)
    if not may_manage(principal.user, stream):
        raise Forbidden("only the stream's owner or an admin may do this")
    broadcast_id = path_id(request, "id", "recording")
    if not await take_down(request.app[DB], request.app[RECORDINGS], stream.id, broadcast_id):
        raise NotFound("no such recording")
    await request.app[AUDIT].record(
        "recording.delete", "broadcast", broadcast_id, actor_id=principal.user.id,
        details={"stream": stream.slug},
    )  # fmt: skip
    return web.Response(status=204)


async def hls_gate(request: web.Request, stream: str) -> str:
    """Admit an HLS request: subscriber-only streams need a valid `?token=`."""
    try:
        return await request.app[PLAYBACK].admit(stream, request.query.get("token"))
    except PlaybackRefused:
        raise Forbidden(
            "a valid playback token is required", headers={"Access-Control-Allow-Origin": "*"}
        ) from None


def whep_admit(app: web.Application) -> Callable[[str, str | None], Awaitable[None]]:
    """Admit a WHEP viewer (stream slug, bearer token): subscriber-only streams need a valid
    playback token."""

    async def admit(slug: str, token: str | None) -> None:
        try:
            await app[PLAYBACK].admit(slug, token)
        except PlaybackRefused:
            raise Forbidden("a valid playback token is required") from None

    return admit
