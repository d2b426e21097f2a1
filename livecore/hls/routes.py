"""HLS HTTP handlers: multivariant and media playlists (with LL-HLS blocking reload), init
segments, segments and parts, with CDN-correct caching and CORS.

Streams are found through `HlsDirectory` (hls.views), which hls/setup.py implements; this module
imports no store/ or auth/. A request for a stream that is not live here goes to the fallback
given to `serve_elsewhere` (the cluster's edge: the stream's owner answers it), else 404.
Routes:

    GET /hls/{stream}/master.m3u8
    GET /hls/{stream}/{rendition}/index.m3u8[?_HLS_msn=M[&_HLS_part=P]]
    GET /hls/{stream}/{rendition}/{init-N.mp4 | seg-M.m4s | part-M-P.m4s | vod.m3u8}
    OPTIONS /hls/...   (CORS preflight)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from aiohttp import web

from livecore.config import HlsConfig
from livecore.errors import BadRequest, NotFound, Unavailable
from livecore.hls.filecache import FileCache, bytes_response
from livecore.hls.metrics import HlsMetrics, RequestKind
from livecore.hls.playlist import render_media, render_multivariant
from livecore.hls.state import VariantInfo
from livecore.hls.views import HlsDirectory, RenditionView
from livecore.ids import parse_int
from livecore.recordings.layout import LIVE_FILE

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
INIT_TYPE = "video/mp4"
SEGMENT_TYPE = "video/iso.segment"
IMMUTABLE = "public, max-age=31536000, immutable"
# An ended playlist no longer changes, but the same URL serves the stream's next broadcast.
ENDED_MAX_AGE_S = 60
CORS = {"Access-Control-Allow-Origin": "*"}
EXPOSE = {"Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Age"}

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_PLAYLISTS = 1024


# Admits a request for a stream (raising an ApiError, e.g. 403, when it may not play it) and
# returns the query to append to every URI of the answer ("" or "?token=...").
Gate = Callable[[web.Request, str], Awaitable[str]]
# Answers an admitted request for a stream that is not live on this node.
Fallback = Callable[[web.Request], Awaitable[web.StreamResponse]]
_URI_QUERY: Final[web.RequestKey[str]] = web.RequestKey("hls_uri_query", str)


@dataclass(frozen=True, slots=True)
class _Hls:
    directory: HlsDirectory
    config: HlsConfig
    metrics: HlsMetrics | None
    cdn_base_url: str
    gate: Gate | None
    files: FileCache
    fallback: Fallback | None = None
    # A rendered media playlist (body, ETag) per rendition, version, prefix and URI query:
    # the players woken by one new part all get the one rendering.
    playlists: dict[tuple[RenditionView, int, str, str], tuple[bytes, str]] = field(
        default_factory=dict
    )


_HLS: Final[web.AppKey[_Hls]] = web.AppKey("hls", _Hls)


def setup(
    app: web.Application,
    directory: HlsDirectory,
    config: HlsConfig,
    *,
    metrics: HlsMetrics | None = None,
    cdn_base_url: str = "",
    gate: Gate | None = None,
) -> None:
    """Add the /hls/ routes. `cdn_base_url` makes playlist URIs absolute (CDN in front);
    `gate(request, stream)` admits each request and returns "" or "?..." to append to every
    URI (signed playback)."""
    files = FileCache(config.memory_cache_bytes)
    app[_HLS] = _Hls(directory, config, metrics, cdn_base_url.rstrip("/"), gate, files)
    # A player at the live edge asks for media playlists and parts many times a second: their
    # routes are tried first (aiohttp tries a path's candidates in the order they were
    # added; the master playlist and thumbnail have one path segment less, so never match
    # the same paths). index.m3u8 must stay before {file}, which would match it too.
    app.router.add_get("/hls/{stream}/{rendition}/index.m3u8", get_media_playlist)
    app.router.add_get("/hls/{stream}/{rendition}/{file}", get_media_file)
    app.router.add_get("/hls/{stream}/master.m3u8", get_master)
    app.router.add_get("/hls/{stream}/thumb.jpg", get_thumbnail)
    app.router.add_route("OPTIONS", "/hls/{tail:.*}", options_hls)
    # Any other GET under /hls/ is a 404, not the 405 the OPTIONS route above would make it.
    app.router.add_get("/hls/{tail:.*}", get_unknown)


def serve_elsewhere(app: web.Application, fallback: Fallback) -> None:
    """Send requests for streams not live on this node to `fallback` (before the app starts)."""
    app[_HLS] = replace(app[_HLS], fallback=fallback)


async def get_unknown(request: web.Request) -> web.Response:
    raise NotFound("no such file", headers=CORS)


async def options_hls(request: web.Request) -> web.Response:
    """CORS preflight: players on other origins may GET with a Range header."""
    headers = {
        **CORS,
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers": "Range, If-None-Match",
        "Access-Control-Max-Age": "86400",
    }
    return web.Response(status=204, headers=headers)


def _count(hls: _Hls, kind: RequestKind) -> None:
    if hls.metrics is not None:
        hls.metrics.requests.labels(kind).inc()


def _renditions(hls: _Hls, stream: str) -> Mapping[str, RenditionView] | None:
    """The stream's renditions; None: not live here, but another node may hold it."""
    renditions = hls.directory.lookup(stream) if _NAME.fullmatch(stream) else None
    if renditions is None and hls.fallback is not None and _NAME.fullmatch(stream):
        return None
    if not renditions:
        raise NotFound("no such live stream", headers=CORS)
    return renditions


def _rendition(hls: _Hls, request: web.Request) -> tuple[str, RenditionView] | None:
    stream, name = request.match_info["stream"], request.match_info["rendition"]
    renditions = _renditions(hls, stream)
    if renditions is None:
        return None
    view = renditions.get(name) if _NAME.fullmatch(name) else None
    if view is None:
        raise NotFound("no such rendition", headers=CORS)
    return stream, view


async def _elsewhere(hls: _Hls, request: web.Request) -> web.StreamResponse:
    assert hls.fallback is not None
    return await hls.fallback(request)


def _query(hls: _Hls, request: web.Request) -> str:
    return str(request.get(_URI_QUERY, ""))


async def _admit(hls: _Hls, request: web.Request) -> None:
    if hls.gate is not None:
        request[_URI_QUERY] = await hls.gate(request, request.match_info["stream"])


async def _await_ready(hls: _Hls, view: RenditionView) -> None:
    """A player may arrive just as the broadcast starts (a premiere's audience does): hold
    its request (bounded) until the playlist lists a complete segment. A playlist of parts
    alone is one players cannot start on: hls.js gives up on it for good (levelEmptyError)
    and FFmpeg finds no segment to read."""
    if view.ready:
        return
    try:
        async with asyncio.timeout(hls.config.blocking_reload_timeout_s):
            await view.wait_ready()
    except TimeoutError:
        pass
    if not view.ready:
        raise Unavailable("the stream has not started yet", headers={**CORS, "Retry-After": "1"})


def _max_age(hls: _Hls, ended: bool) -> str:
    if ended:
        return f"public, max-age={ENDED_MAX_AGE_S}"
    # About one part: a CDN may serve a playlist that much behind; blocking reloads carry
    # their own query string, so each is cached under its own key.
    return f"public, max-age={max(1, round(hls.config.part_target_s))}"


def _playlist_response(request: web.Request, text: str, cache_control: str) -> web.Response:
    body = text.encode()
    return _encoded_playlist_response(request, body, _etag(body), cache_control)


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _encoded_playlist_response(
    request: web.Request, body: bytes, etag: str, cache_control: str
) -> web.Response:
    headers = {**CORS, **EXPOSE, "Cache-Control": cache_control, "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=PLAYLIST_TYPE, headers=headers)


async def get_master(request: web.Request) -> web.StreamResponse:
    """The multivariant playlist listing every rendition of the stream."""
    hls = request.app[_HLS]
    await _admit(hls, request)
    stream = request.match_info["stream"]
    renditions = _renditions(hls, stream)
    if renditions is None:
        return await _elsewhere(hls, request)
    _count(hls, "master")
    prefix = f"{hls.cdn_base_url}/hls/{stream}/" if hls.cdn_base_url else ""
    # The first rendition (the source) is waited for; a rung still starting is left out
    # until a player could start on it, so every variant listed plays at once.
    views = list(renditions.items())
    await _await_ready(hls, views[0][1])
    variants: list[VariantInfo] = []
    for name, view in views:
        variant = view.variant(f"{prefix}{name}/index.m3u8") if view.ready else None
        if variant is not None:
            variants.append(variant)
    ended = all(v.ended for v in renditions.values())
    independent = all(v.media_state().independent_segments for v in renditions.values())
    text = render_multivariant(variants, uri_query=_query(hls, request), independent=independent)
    return _playlist_response(request, text, _max_age(hls, ended))


async def get_thumbnail(request: web.Request) -> web.StreamResponse:
    """The stream's latest thumbnail (a JPEG made every `thumbnail_interval_s`)."""
    hls = request.app[_HLS]
    await _admit(hls, request)
    stream = request.match_info["stream"]
    if _renditions(hls, stream) is None:  # 404 for unknown streams
        return await _elsewhere(hls, request)
    thumb = hls.directory.thumbnail(stream)
    if thumb is None:
        raise NotFound("no thumbnail yet", headers=CORS)
    max_age = max(1, int(hls.config.thumbnail_interval_s))
    headers = {**CORS, "ETag": thumb.etag, "Cache-Control": f"public, max-age={max_age}"}
    if request.headers.get("If-None-Match") == thumb.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=thumb.jpeg, content_type="image/jpeg", headers=headers)


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    value = parse_int(raw)
    if value is None:
        raise BadRequest(f"{name} must be a non-negative integer", headers=CORS)
    return value


async def get_media_playlist(request: web.Request) -> web.StreamResponse:
    """The live media playlist; with `_HLS_msn` (and `_HLS_part`) a blocking reload.

    RFC 8216bis 6.2.5.2: the response is held until the playlist has segment `_HLS_msn`
    (or part `_HLS_part` of it, or anything later). A request more than two segments
    ahead of the last, or further than the Advance Part Limit ahead in parts, or with
    `_HLS_part` but no `_HLS_msn`, is answered 400 at once. A request not satisfied within
    `blocking_reload_timeout_s` (three target durations by default) is answered 503, as the
    spec asks, so caches never store a playlist that lacks what was asked for. An ended
    stream is answered at once.
    """
    hls = request.app[_HLS]
    await _admit(hls, request)
    found = _rendition(hls, request)
    if found is None:
        return await _elsewhere(hls, request)
    stream, view = found
    msn = _int_param(request, "_HLS_msn")
    part = _int_param(request, "_HLS_part")
    if part is not None and msn is None:
        raise BadRequest("_HLS_part requires _HLS_msn", headers=CORS)
    await _await_ready(hls, view)
    if msn is not None and not view.ended and not view.has(msn, part):
        _check_not_too_far(hls, view, msn, part)
        _count(hls, "blocking")
        started = time.monotonic()
        try:
            async with asyncio.timeout(hls.config.blocking_reload_timeout_s):
                await view.wait_for(msn, part)
        except TimeoutError:
            raise Unavailable(
                "the requested segment or part is not available yet",
                headers={**CORS, "Retry-After": "1"},
            ) from None
        finally:
            if hls.metrics is not None:
                hls.metrics.blocking_wait.observe(time.monotonic() - started)
    else:
        _count(hls, "playlist")
    rendition = request.match_info["rendition"]
    prefix = f"{hls.cdn_base_url}/hls/{stream}/{rendition}/" if hls.cdn_base_url else ""
    key = (view, view.version, prefix, _query(hls, request))
    rendered = hls.playlists.get(key)
    if rendered is None:
        body = render_media(view.media_state(), prefix=prefix, uri_query=key[3]).encode()
        if len(hls.playlists) >= _MAX_PLAYLISTS:
            hls.playlists.clear()  # older versions are never asked for again
        rendered = hls.playlists[key] = (body, _etag(body))
    return _encoded_playlist_response(request, *rendered, _max_age(hls, view.ended))


def _check_not_too_far(hls: _Hls, view: RenditionView, msn: int, part: int | None) -> None:
    last = view.last_part
    assert last is not None
    last_msn, last_index = last
    if msn > last_msn + 2:
        raise BadRequest("_HLS_msn is too far ahead of the live edge", headers=CORS)
    if part is None:
        return
    # Advance Part Limit (RFC 8216bis 6.2.5.2): 3 / PART-TARGET parts below one second.
    target = hls.config.part_target_s
    limit = int(3 / target) if target < 1 else 3
    ahead = part - last_index if msn == last_msn else part + 1
    if ahead > limit:
        raise BadRequest("_HLS_part is too far ahead of the live edge", headers=CORS)


async def get_media_file(request: web.Request) -> web.StreamResponse:
    """An init segment, segment, part or the recording playlist, from disk.

    A request for the part named in EXT-X-PRELOAD-HINT is held until that part is written
    (or the next part shows the hint will never be fulfilled: 404)."""
    hls = request.app[_HLS]
    await _admit(hls, request)
    found = _rendition(hls, request)
    if found is None:
        return await _elsewhere(hls, request)
    _, view = found
    name = request.match_info["file"]
    match = LIVE_FILE.fullmatch(name)
    if match is None:
        raise NotFound("no such file", headers=CORS)
    init, seg, part_msn, part_index = match.groups()
    if init is not None:
        _count(hls, "init")
        known = view.has_init(int(init))
        content_type, cache = INIT_TYPE, IMMUTABLE
    elif seg is not None:
        _count(hls, "segment")
        known = view.has_segment(int(seg))
        content_type, cache = SEGMENT_TYPE, IMMUTABLE
    elif part_msn is not None:
        _count(hls, "part")
        msn, index = int(part_msn), int(part_index)
        if not view.has_part(msn, index) and view.preload_hint == (msn, index):
            await _await_hinted_part(hls, view, msn, index)
        known = view.has_part(msn, index)
        content_type, cache = SEGMENT_TYPE, IMMUTABLE
    else:
        _count(hls, "playlist")
        known = True
        content_type, cache = PLAYLIST_TYPE, _max_age(hls, view.ended)
    if not known:
        raise NotFound("no such file", headers=CORS)
    headers = {**CORS, **EXPOSE, "Cache-Control": cache, "Content-Type": content_type}
    if cache != IMMUTABLE:
        return web.FileResponse(view.directory / name, headers=headers)  # vod.m3u8 changes
    try:
        file = await hls.files.get(view.directory / name)
    except OSError:
        raise NotFound("no such file", headers=CORS) from None  # deleted since (retention)
    return bytes_response(request, file.body, file.etag, headers)


async def _await_hinted_part(hls: _Hls, view: RenditionView, msn: int, index: int) -> None:
    started = time.monotonic()
    try:
        async with asyncio.timeout(hls.config.blocking_reload_timeout_s):
            await view.wait_for(msn, index)
    except TimeoutError:
        pass
    finally:
        if hls.metrics is not None:
            hls.metrics.blocking_wait.observe(time.monotonic() - started)
