"""Recent media files in memory, and HTTP answers from bytes (conditional and Range).

When a part appears, every player at the live edge asks for it within milliseconds: the
first request reads the file once (in a thread) and the others wait for that read and get the
same bytes. Only files that never change once listed (init segments, segments and parts)
are kept, the most recently used first, within a byte budget. Imports nothing from livecore.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web


@dataclass(frozen=True, slots=True)
class CachedFile:
    body: bytes
    etag: str


class FileCache:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._files: OrderedDict[Path, CachedFile] = OrderedDict()
        self._loading: dict[Path, asyncio.Future[CachedFile]] = {}

    async def get(self, path: Path) -> CachedFile:
        """The file's bytes; OSError (FileNotFoundError...) when it cannot be read."""
        cached = self._files.get(path)
        if cached is not None:
            self._files.move_to_end(path)
            return cached
        loading = self._loading.get(path)
        if loading is None:
            loading = asyncio.ensure_future(self._load(path))
            self._loading[path] = loading
            loading.add_done_callback(lambda _: self._loading.pop(path, None))
        # Shielded: one waiter giving up must not cancel the read the others wait for.
        return await asyncio.shield(loading)

    async def _load(self, path: Path) -> CachedFile:
        file = await asyncio.to_thread(_read, path)  # hashing a segment is CPU: not here
        body = file.body
        if len(body) <= self._max_bytes // 4:  # one huge file must not empty the cache
            self._files[path] = file
            self._bytes += len(body)
            while self._bytes > self._max_bytes:
                _, old = self._files.popitem(last=False)
                self._bytes -= len(old.body)
        return file

    @property
    def size_bytes(self) -> int:
        return self._bytes


def _read(path: Path) -> CachedFile:
    body = path.read_bytes()
    return CachedFile(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')


def bytes_response(
    request: web.Request, body: bytes, etag: str, headers: Mapping[str, str]
) -> web.Response:
    """200 with the body; 304 when If-None-Match names it; 206 with the one range asked for
    (RFC 9110 14.2), 416 when that range starts past the end. A malformed or multi-range
    Range header is ignored: the whole body is the answer."""
    out = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=out)
    size = len(body)
    if "Range" in request.headers and request.headers.get("If-Range", etag) == etag:
        try:
            rng = request.http_range
        except ValueError:
            rng = None
        if rng is not None and (rng.start is not None or rng.stop is not None):
            start, stop = rng.start, rng.stop
            if start is None:  # never: aiohttp gives a suffix as a negative start
                start = 0
            if start < 0:  # bytes=-N: the last N bytes
                start = max(0, size + start)
                stop = size
            stop = size if stop is None else min(stop, size)
            if start >= size or start >= stop:
                out["Content-Range"] = f"bytes */{size}"
                return web.Response(status=416, headers=out)
            out["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            return web.Response(status=206, body=body[start:stop], headers=out)
    return web.Response(body=body, headers=out)
