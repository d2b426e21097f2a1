"""Any node serves any live HLS stream: a request for a stream held by another node is
answered by fetching it from that node's internal URL.

One request upstream per URL at a time however many viewers ask (single flight), and recent
immutable files (init segments, segments, parts) and blocking-reload playlists are kept in a
small memory cache, so an edge asks the owner about once per part. Which node owns a stream is
read from the directory the same way: one read per stream at a time, kept `owner_cache_s`
(and forgotten as soon as that node answers 404 or fails), not one Redis round trip per
viewer request. An owner that has gone (refused, reset) or says it does not hold the stream
costs one more read before the answer, and the node it names now, if another, answers:
within `owner_cache_s` of a handover the old owner has often exited already. Blocking
reloads stay blocking: the query is forwarded and the owner holds the request. Range
requests are answered with the whole file (parts and segments are small).

A playlist from the owner names the part coming next (EXT-X-PRELOAD-HINT): the edge asks the
owner for it at once (the owner holds that request until the part is written), so the part
is here when the playlist's viewers ask for it, not one round trip to the owner later.

Every viewer request passes through `answer` (thousands a second at a few hundred viewers):
a known owner and a cached file are answered without awaiting anything, and the viewers of
a request in flight each wait on one future of their own, woken once when it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from prometheus_client import Counter

from livecore.cache import TtlCache
from livecore.cluster.directory import Directory, DirectoryUnavailable
from livecore.cluster.gone import node_gone
from livecore.cluster.metrics import ClusterMetrics
from livecore.cluster.node import NodeInfo
from livecore.errors import BadGateway, NotFound, Unavailable

logger = logging.getLogger(__name__)

CORS = {"Access-Control-Allow-Origin": "*"}
_HINT = b'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="'
_NOT_LIVE = b'"no such live stream"'
_OUTCOMES = ("upstream", "joined", "cached", "moved")
# What an answer from the owner keeps on its way to the viewer.
_KEPT = (
    "Content-Type", "Cache-Control", "ETag", "Retry-After",
    "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
)  # fmt: skip


@dataclass(slots=True)
class _Flight:
    """One request to the owner in flight, and the futures of the viewers waiting for it."""

    task: asyncio.Task[Fetched]
    waiters: list[asyncio.Future[Fetched]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes
    headers: dict[str, str]
    expires: float  # monotonic time; 0: not cached


class OwnerGone(BadGateway):
    """The node named as the owner refused or reset the connection: it has exited."""


class Edge:
    """The HLS fallback of this node (hls.routes.serve_elsewhere)."""

    def __init__(self, cache_bytes: int, timeout_s: float, owner_cache_s: float) -> None:
        self._cache_bytes = cache_bytes
        self._timeout_s = timeout_s
        self._cache: OrderedDict[str, Fetched] = OrderedDict()
        self._cached_bytes = 0
        self._flights: dict[str, _Flight] = {}
        # Which node holds each stream, as the directory said at most owner_cache_s ago: one
        # read per stream at a time however many viewers ask (a read per request, all at once,
        # ran Redis' 100-connection client pool dry).
        # Refreshed ahead in the second half of its life: the crowd never waits for a read.
        self._owners: TtlCache[str, NodeInfo | None] = TtlCache(
            owner_cache_s, max_keys=10_000, refresh_ahead_s=owner_cache_s / 2
        )
        self._directory: Directory | None = None
        self._session: aiohttp.ClientSession | None = None
        self._counters: dict[str, Counter] = {}

    def start(self, directory: Directory, metrics: ClusterMetrics) -> None:
        self._directory = directory
        self._counters = {o: metrics.edge_requests.labels(o) for o in _OUTCOMES}
        # One session (one pool of keep-alive connections to the other nodes) for all.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s), auto_decompress=False
        )

    async def close(self) -> None:
        tasks = [flight.task for flight in self._flights.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def answer(self, request: web.Request) -> web.StreamResponse:
        directory = self._directory
        if directory is None:
            raise NotFound("no such live stream", headers=CORS)
        stream = request.match_info["stream"]
        owner = await self._owner(directory, stream)
        path_qs = request.rel_url.path_qs
        try:
            fetched = await self._ask(stream, owner, path_qs)
        except OwnerGone:
            # Refused or reset: the node has exited (a handover, a restart), and the stream
            # may be live on another node already. FFmpeg stops reading at a failed reload.
            moved = await self._ask_where_it_went(directory, stream, owner, path_qs)
            if moved is None:
                raise
            fetched = moved
        else:
            if fetched.status == 404 and _not_held(fetched):  # it was told it holds it
                moved = await self._ask_where_it_went(directory, stream, owner, path_qs)
                fetched = moved or fetched
        etag = fetched.headers.get("ETag")
        if fetched.status == 200 and etag and etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=fetched.headers)
        return web.Response(status=fetched.status, body=fetched.body, headers=fetched.headers)

    async def _owner(self, directory: Directory, stream: str) -> NodeInfo:
        """The other node holding `stream`, as the cache (or else the directory) says."""
        if (known := self._owners.peek(stream)) is not None:
            owner = known[1]
        else:
            try:
                owner = await self._owners.get(stream, lambda: directory.owner(stream))
            except DirectoryUnavailable:
                raise Unavailable("the stream directory cannot be reached", headers=CORS) from None
        if owner is None or owner.id == directory.node.id:
            raise NotFound("no such live stream", headers=CORS)
        return owner

    async def _ask(self, stream: str, owner: NodeInfo, path_qs: str) -> Fetched:
        """`owner`'s answer for `path_qs` (cached, or joined to the request in flight); the
        owner is forgotten (the directory read again next time) when it failed or answered
        404: it may have died, or the broadcast ended or moved to another node."""
        url = owner.internal_url + path_qs
        fetched = self._cached(url)
        if fetched is None:
            try:
                fetched = await self._join(url)
            except BadGateway:
                self._owners.forget_if(stream, owner)
                raise
        if fetched.status == 404:
            self._owners.forget_if(stream, owner)
        return fetched

    async def _ask_where_it_went(
        self, directory: Directory, stream: str, failed: NodeInfo, path_qs: str
    ) -> Fetched | None:
        """The answer of the node the directory names now, read once afresh (single flight:
        the viewers of one failed answer share one read); None when it still names `failed`
        or no other node (the failed answer stands). Once per request: a second failure is
        answered as it is."""
        try:
            owner = await self._owner(directory, stream)
        except (NotFound, Unavailable):
            return None
        if owner.id == failed.id:
            self._owners.forget_if(stream, owner)  # as any failure: the next request reads
            return None
        self._counters["moved"].inc()
        return await self._ask(stream, owner, path_qs)

    def _cached(self, url: str) -> Fetched | None:
        hit = self._cache.get(url)
        if hit is not None and hit.expires > time.monotonic():
            self._cache.move_to_end(url)
            self._counters["cached"].inc()
            return hit
        return None

    def _join(self, url: str) -> asyncio.Future[Fetched]:
        """A future of this viewer's own, resolved when the request for `url` lands (made
        now if none is in flight). A viewer that goes away cancels only its own future."""
        flight = self._flights.get(url)
        if flight is None:
            flight = self._launch(url)
        else:
            self._counters["joined"].inc()
        waiter = asyncio.get_running_loop().create_future()
        flight.waiters.append(waiter)
        return waiter

    def _launch(self, url: str) -> _Flight:
        flight = self._flights[url] = _Flight(asyncio.create_task(self._get(url)))
        flight.task.add_done_callback(self._landed(url, flight))
        return flight

    def _landed(self, url: str, flight: _Flight) -> Callable[[asyncio.Task[Fetched]], None]:
        def done(task: asyncio.Task[Fetched]) -> None:
            if self._flights.get(url) is flight:
                del self._flights[url]
            if task.cancelled():
                for waiter in flight.waiters:
                    waiter.cancel()
                return
            exc = task.exception()  # retrieved: every viewer may have gone before it failed
            for waiter in flight.waiters:
                if waiter.done():
                    continue  # its viewer went away
                if exc is not None:
                    waiter.set_exception(exc)
                else:
                    waiter.set_result(task.result())

        return done

    async def _get(self, url: str) -> Fetched:
        assert self._session is not None
        self._counters["upstream"].inc()
        try:
            async with self._session.get(url) as resp:
                body = await resp.read()
                headers = {k: v for k in _KEPT if (v := resp.headers.get(k)) is not None}
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("edge: %s failed: %s", url, exc)
            # Refused or reset says the node is not there any more; a timeout does not (a
            # busy node): only the first is worth asking the directory again for.
            error = OwnerGone if node_gone(exc) else BadGateway
            raise error("the node holding the stream did not answer", headers=CORS) from None
        fetched = Fetched(resp.status, body, headers, self._expiry(url, resp.status, headers))
        if fetched.expires:
            self._store(url, fetched)
        if fetched.status == 200:
            self._prefetch_hinted(url, body)
        return fetched

    def _prefetch_hinted(self, url: str, body: bytes) -> None:
        """Ask the owner now for the part a playlist's EXT-X-PRELOAD-HINT names (a relative
        URI: one made absolute by a CDN base URL is not fetched through this node)."""
        if not url.split("?", 1)[0].endswith(".m3u8") or (at := body.rfind(_HINT)) < 0:
            return
        start = at + len(_HINT)
        end = body.find(b'"', start)
        uri = body[start:end].decode("ascii", "replace") if end > 0 else ""
        if not uri or "/" in uri.split("?", 1)[0]:
            return
        hinted = url.split("?", 1)[0].rsplit("/", 1)[0] + "/" + uri
        if hinted not in self._flights and self._cached_quietly(hinted) is None:
            self._launch(hinted)

    def _cached_quietly(self, url: str) -> Fetched | None:
        hit = self._cache.get(url)
        return hit if hit is not None and hit.expires > time.monotonic() else None

    def _expiry(self, url: str, status: int, headers: dict[str, str]) -> float:
        """Until when an answer may be reused: immutable files, and blocking reloads (any
        playlist that has the part asked for is a right answer) for their max-age. Other
        playlists and thumbnails are only shared by the requests in flight together."""
        if status != 200:
            return 0.0
        cache_control = headers.get("Cache-Control", "")
        if "immutable" in cache_control:
            return time.monotonic() + 3600.0
        if "_HLS_msn=" in url and (max_age := _max_age(cache_control)):
            return time.monotonic() + max_age
        return 0.0

    def _store(self, url: str, fetched: Fetched) -> None:
        size = len(fetched.body)
        if size > self._cache_bytes // 4:
            return  # one file must not flush the cache
        if (old := self._cache.pop(url, None)) is not None:
            self._cached_bytes -= len(old.body)
        self._cache[url] = fetched
        self._cached_bytes += size
        while self._cached_bytes > self._cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped.body)


def _not_held(fetched: Fetched) -> bool:
    """A 404 saying the node does not hold the stream (hls.routes' answer for a stream not
    live there), not one for a file a live stream does not have."""
    return _NOT_LIVE in fetched.body


def _max_age(cache_control: str) -> float:
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name == "max-age":
            with contextlib.suppress(ValueError):
                return float(value)
    return 0.0
