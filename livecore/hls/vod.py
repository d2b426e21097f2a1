"""Recordings as VOD: `GET /vod/{broadcast}/vod.m3u8` and the files it names.

A finished broadcast's directory holds `vod.m3u8` (every segment, EXT-X-ENDLIST), its init
segments and its segments; all are immutable once the broadcast has ended.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from livecore.errors import NotFound
from livecore.ids import parse_int

# (stream slug, recording directory) of a kept recording, or None.
Resolve = Callable[[int], Awaitable[tuple[str, Path] | None]]
Gate = Callable[[web.Request, str], Awaitable[str]]

_FILE = re.compile(r"(?:init-[0-9]{1,18}\.mp4|seg-[0-9]{1,18}\.m4s|vod\.m3u8)")
_TYPES = {
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".m3u8": "application/vnd.apple.mpegurl",
}
CORS = {"Access-Control-Allow-Origin": "*"}


@dataclass(frozen=True, slots=True)
class _Vod:
    resolve: Resolve
    gate: Gate | None


_VOD: Final[web.AppKey[_Vod]] = web.AppKey("vod", _Vod)


def setup(app: web.Application, resolve: Resolve, *, gate: Gate | None = None) -> None:
    app[_VOD] = _Vod(resolve, gate)
    app.router.add_get("/vod/{broadcast}/{file}", get_vod_file)


async def get_vod_file(request: web.Request) -> web.StreamResponse:
    vod = request.app[_VOD]
    broadcast, name = request.match_info["broadcast"], request.match_info["file"]
    broadcast_id = parse_int(broadcast, minimum=1)
    if broadcast_id is None or not _FILE.fullmatch(name):
        raise NotFound("no such recording", headers=CORS)
    found = await vod.resolve(broadcast_id)
    if found is None:
        raise NotFound("no such recording", headers=CORS)
    slug, directory = found
    query = await vod.gate(request, slug) if vod.gate is not None else ""
    path = directory / name
    suffix = path.suffix
    headers = {**CORS, "Cache-Control": "public, max-age=31536000, immutable"}
    if name == "vod.m3u8" and query:
        # Subscriber-only recordings: every URI in the playlist carries the viewer's token.
        text = await _read_text(path)
        lines = [
            line + query if line and not line.startswith("#") else _map_uri(line, query)
            for line in text.splitlines()
        ]
        headers["Cache-Control"] = "private, max-age=60"
        return web.Response(
            text="\n".join(lines) + "\n", content_type=_TYPES[suffix], headers=headers
        )
    # A file missing on disk becomes aiohttp's 404, which the error middleware answers.
    response = web.FileResponse(path, headers=headers)
    response.content_type = _TYPES[suffix]
    return response


def _map_uri(line: str, query: str) -> str:
    return re.sub(r'URI="([^"]+)"', lambda m: f'URI="{m.group(1)}{query}"', line)


async def _read_text(path: Path) -> str:
    try:
        return await asyncio.to_thread(path.read_text, "utf-8")
    except FileNotFoundError:
        raise NotFound("no such recording", headers=CORS) from None
