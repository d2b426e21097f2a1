"""Recordings as VOD: `GET /vod/{broadcast}/vod.m3u8` and the files it names.

A finished broadcast's recording holds `vod.m3u8` (every segment, EXT-X-ENDLIST), its init
segments and its segments; all are immutable once the broadcast has ended. A recording in
legs (its broadcast moved between nodes: recordings.layout) is served as one playlist, the
legs' joined with a discontinuity between them (`joined.py`, made once per node), naming
`/vod/{broadcast}/leg-<k>/...` for the files of leg k. Recordings are
found through the database (kept, finished ones only) and read from the app's
`RecordingStorage` (appkeys.RECORDINGS): sent from the local file when the storage has one
(the local disk), else streamed through this node as it arrives from the storage (a bucket),
with byte ranges (RFC 9110 14) either way. Streaming rather than redirecting to a presigned
bucket URL keeps the bucket private, one origin for players (no CORS on the bucket), the
subscriber gate on every request, and immutable caching at a CDN in front of /vod/.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from livecore.appkeys import DB, RECORDINGS
from livecore.errors import NotFound, Unavailable
from livecore.ids import parse_int
from livecore.recordings.joined import JoinedPlaylists, join
from livecore.recordings.layout import LEG_DIR, VOD_FILE, VOD_PLAYLIST, leg_path
from livecore.recordings.storage import ByteRange, StorageUnavailable, UnsatisfiableRange
from livecore.store.broadcasts import Broadcasts

Gate = Callable[[web.Request, str], Awaitable[str]]

_TYPES = {
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".m3u8": "application/vnd.apple.mpegurl",
}
CORS = {"Access-Control-Allow-Origin": "*"}


@dataclass(frozen=True, slots=True)
class _Vod:
    gate: Gate | None
    cdn_base_url: str
    joined: JoinedPlaylists


_VOD: Final[web.AppKey[_Vod]] = web.AppKey("vod", _Vod)


def setup(app: web.Application, *, gate: Gate | None = None, cdn_base_url: str = "") -> None:
    """Add the /vod/ routes; `gate(request, stream slug)` admits each request and returns ""
    or "?..." to append to every URI of the playlist (subscriber-only recordings).
    `cdn_base_url` makes the playlist's URIs absolute under it (a CDN in front of /vod/), so
    players fetch segments through the CDN even when they got the playlist from a node."""
    app[_VOD] = _Vod(gate, cdn_base_url.rstrip("/"), JoinedPlaylists())
    app.router.add_get("/vod/{broadcast}/{file}", get_vod_file)
    app.router.add_get("/vod/{broadcast}/{leg}/{file}", get_vod_file)


async def get_vod_file(request: web.Request) -> web.StreamResponse:
    vod = request.app[_VOD]
    broadcast, name = request.match_info["broadcast"], request.match_info["file"]
    broadcast_id = parse_int(broadcast, minimum=1)
    leg_dir = request.match_info.get("leg")
    leg = 0 if leg_dir is None else _leg(leg_dir)
    if broadcast_id is None or leg is None or not VOD_FILE.fullmatch(name):
        raise NotFound("no such recording", headers=CORS)
    found = await Broadcasts(request.app[DB]).recording_location(broadcast_id)
    if found is None or (leg_dir is not None and leg not in found[2]):
        raise NotFound("no such recording", headers=CORS)
    slug, recording, legs = found
    query = await vod.gate(request, slug) if vod.gate is not None else ""
    storage = request.app[RECORDINGS]
    suffix = name[name.rindex(".") :]
    headers = {**CORS, "Cache-Control": "public, max-age=31536000, immutable"}
    joined = leg_dir is None and name == VOD_PLAYLIST and legs != [0]
    if joined or (name == VOD_PLAYLIST and (query or vod.cdn_base_url)):
        # Subscriber-only recordings: every URI in the playlist carries the viewer's token;
        # behind a CDN, every URI is absolute under cdn_base_url.
        base = f"/vod/{broadcast_id}/{'' if leg_dir is None else leg_dir + '/'}"
        prefix = vod.cdn_base_url + base if vod.cdn_base_url else ""
        if joined:
            text = await _joined(request, broadcast_id, recording, legs)
        else:
            text = await _read_text(request, leg_path(recording, leg), name)
        if not query and not prefix:
            return web.Response(text=text, content_type=_TYPES[suffix], headers=headers)
        lines = [
            prefix + line + query
            if line and not line.startswith("#")
            else _map_uri(line, prefix, query)
            for line in text.splitlines()
        ]
        if query:
            headers["Cache-Control"] = "private, max-age=60"
        return web.Response(
            text="\n".join(lines) + "\n", content_type=_TYPES[suffix], headers=headers
        )
    recording = leg_path(recording, leg)
    local = storage.local_file(recording, name)
    if local is None:
        return await _stream(request, recording, name, _TYPES[suffix], headers)
    # A file missing on disk becomes aiohttp's 404, which the error middleware answers.
    response = web.FileResponse(local, headers=headers)
    response.content_type = _TYPES[suffix]
    return response


async def _stream(
    request: web.Request, recording: str, name: str, content_type: str, headers: dict[str, str]
) -> web.StreamResponse:
    """Send an object (or the asked range of it) as the storage streams it."""
    try:
        byte_range = _byte_range(request)
    except ValueError:
        byte_range = None  # a malformed Range is ignored (RFC 9110 14.2): the whole object
    try:
        stream = await request.app[RECORDINGS].stream(recording, name, byte_range)
    except FileNotFoundError:
        raise NotFound("no such recording", headers=CORS) from None
    except StorageUnavailable:
        raise _unavailable() from None
    except UnsatisfiableRange as exc:
        # 416 carries no JSON body; the error middleware passes statuses under 400 only.
        return web.Response(status=416, headers={**CORS, "Content-Range": f"bytes */{exc.size}"})
    response = web.StreamResponse(
        status=206 if byte_range is not None else 200,
        headers={**headers, "Accept-Ranges": "bytes"},
    )
    response.content_type = content_type
    response.content_length = stream.last - stream.first + 1
    if byte_range is not None:
        response.headers["Content-Range"] = f"bytes {stream.first}-{stream.last}/{stream.size}"
    try:
        await response.prepare(request)
        async for chunk in stream.chunks:
            await response.write(chunk)
    finally:
        await stream.chunks.aclose()
    await response.write_eof()
    return response


def _byte_range(request: web.Request) -> ByteRange | None:
    """The request's single byte range; ValueError when it is malformed."""
    if "Range" not in request.headers:
        return None
    span = request.http_range  # slice: stop exclusive; "bytes=-n" gives start -n
    if span.start is None and span.stop is None:
        return None
    if span.start is not None and span.start < 0:
        return ByteRange(suffix=-span.start)
    first = span.start or 0
    return ByteRange(first, None if span.stop is None else span.stop - 1)


def _leg(directory: str) -> int | None:
    """The leg a URL's leg directory names ("leg-2": 2); None: not a leg's directory."""
    match = LEG_DIR.fullmatch(directory)
    return int(match.group(1)) if match is not None else None


async def _joined(request: web.Request, broadcast_id: int, recording: str, legs: list[int]) -> str:
    """The recording's legs as one playlist, made on the first request and kept after it: a
    listed recording's legs are all finished and never change."""

    async def make() -> str:
        playlists = []
        for leg in legs:
            try:
                text = await _read_text(request, leg_path(recording, leg), VOD_PLAYLIST)
            except NotFound:
                continue  # a leg with no playlist stored: nothing of it is complete
            playlists.append((leg, text))
        return join(playlists)

    return await request.app[_VOD].joined.get_or_make(broadcast_id, legs, make)


def _map_uri(line: str, prefix: str, query: str) -> str:
    return re.sub(r'URI="([^"]+)"', lambda m: f'URI="{prefix}{m.group(1)}{query}"', line)


async def _read(request: web.Request, recording: str, name: str) -> bytes:
    try:
        return await request.app[RECORDINGS].read(recording, name)
    except FileNotFoundError:
        raise NotFound("no such recording", headers=CORS) from None
    except StorageUnavailable:
        raise _unavailable() from None


def _unavailable() -> Unavailable:
    # The bucket is down or slow: the recording is still there, so ask again soon.
    headers = {**CORS, "Retry-After": "5"}
    return Unavailable("recordings are unavailable for now, try again", headers=headers)


async def _read_text(request: web.Request, recording: str, name: str) -> str:
    return (await _read(request, recording, name)).decode("utf-8")
