"""WHEP and WHIP/WHEP sessions across nodes: signaling is forwarded to the node that holds the
stream or session, and media flows between the client and that node directly.

A node that does not hold a stream sends a WHEP offer for it to the owner's internal URL and
passes the owner's answer back as it is (SDP with the owner's ICE candidates, Location, ETag,
Link headers, errors). Every session URL ends in `.<mark>`, the base64url of the id of the node
that made it (signaling.routes), so a `PATCH` or `DELETE` landing on any node goes to that
node with one directory read (the node's entry, for its internal URL) and no session table.

Not an open relay: a mark is only ever turned into the internal URL of a node alive in the
directory, never into an address from the request. Each forward is signed with the
deployment's secret key (every node shares it) over its time, a nonce, the node it is for, its
method, path, body and headers (`forward_signature`); the receiving node answers a signed
forward itself, never forwarding it again (a stale directory cannot make a loop), and refuses
with 403 one with a bad signature, one signed too long ago (or too far ahead) and one it has
already taken (a replay). Authentication is not weakened: the edge admits a WHEP offer first,
and the client's Authorization goes with the forward so the owner decides again.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from livecore.cache import TtlCache
from livecore.cluster.directory import Directory, DirectoryUnavailable
from livecore.cluster.forward_signature import (
    SIGNED_HEADERS,
    ForwardCheck,
    ForwardRefused,
    sign,
)
from livecore.cluster.gone import node_gone
from livecore.cluster.metrics import ClusterMetrics
from livecore.cluster.node import NodeInfo
from livecore.errors import ApiError, BadGateway, Forbidden, NotFound, Unavailable

logger = logging.getLogger(__name__)

FORWARDED_BY = "X-Livecore-Forwarded-By"
# What goes to the owner with the body (all of it signed), and what of its answer comes back
# (CORS is added by this node's own signaling routes).
_SENT = SIGNED_HEADERS
_KEPT = (
    "Content-Type", "Location", "ETag", "Link", "Accept-Patch", "Accept-Post",
    "Retry-After", "WWW-Authenticate",
)  # fmt: skip
# The owner makes its SDP answer (ICE gathering on its own addresses) in well under this.
_TIMEOUT_S = 15.0


def node_mark(node_id: str) -> str:
    """A node's id as it ends a session URL: URL-safe, no '.', any id."""
    return base64.urlsafe_b64encode(node_id.encode()).decode().rstrip("=")


def _node_id(mark: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(mark + "=" * (-len(mark) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class _Gone(BadGateway):
    """The node refused or reset the connection: it has exited."""


class SignalingEdge:
    """This node's `signaling.routes.Elsewhere`."""

    def __init__(
        self, node: NodeInfo, owner_cache_s: float = 0.0, *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._node = node
        # Which node holds a stream, and a node's entry, as the directory said at most
        # owner_cache_s ago: one read per key at a time, however many viewers arrive together
        # (one read each ran Redis' connection pool dry under a crowd). Forgotten when the node
        # does not answer. A stream's owner, asked for by every WHEP offer, is read again in the
        # background in the last half of its life (as the HLS edge's is): a crowd of offers
        # never waits for that read, and a stream that moved is followed sooner.
        self._owners: TtlCache[str, NodeInfo | None] = TtlCache(
            owner_cache_s, max_keys=10_000, clock=clock, refresh_ahead_s=owner_cache_s / 2
        )
        self._nodes: TtlCache[str, NodeInfo | None] = TtlCache(
            owner_cache_s, max_keys=1_000, clock=clock
        )
        self._mark = node_mark(node.id)
        self._directory: Directory | None = None
        self._metrics: ClusterMetrics | None = None
        self._secret = b""
        self._check: ForwardCheck | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def mark(self) -> str:
        return self._mark

    def start(self, directory: Directory, metrics: ClusterMetrics, secret: bytes) -> None:
        self._directory, self._metrics, self._secret = directory, metrics, secret
        self._check = ForwardCheck(secret, self._mark)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forwarded(self, request: web.Request) -> bytes | None:
        header = request.headers.get(FORWARDED_BY)
        if header is None:
            return None
        # The whole body, before anything is done: its digest is signed. (A forward's body
        # is a bounded offer or fragment; anything else is bounded by client_max_size.)
        body = await request.read()
        try:
            if self._check is None:
                raise ForwardRefused("forged", "this node is starting; it takes no forwards yet")
            self._check.check(
                header, method=request.method, path=request.raw_path, headers=request.headers,
                body=body, now_s=time.time(),
            )  # fmt: skip
        except ForwardRefused as exc:
            self._count(exc.reason)
            logger.warning("refused a forward of %s %s (%s): %s", request.method, request.path,
                           exc.reason, exc)  # fmt: skip
            error: ApiError = (
                Unavailable(str(exc), headers={"Retry-After": "1"})
                if exc.reason == "overloaded"
                else Forbidden(str(exc))
            )
            raise error from None
        return body

    async def stream_owner(self, slug: str) -> str | None:
        try:
            directory = self._read()
            owner = await self._owners.get(slug, lambda: directory.owner(slug))
        except DirectoryUnavailable:
            raise self._unavailable() from None
        if owner is None or owner.id == self._node.id:
            return None
        return node_mark(owner.id)

    async def forward(self, request: web.Request, mark: str, body: bytes) -> web.Response:
        node_id = _node_id(mark)
        try:
            directory = self._read()
            node = (
                await self._nodes.get(node_id, lambda: directory.find_node(node_id))
                if node_id
                else None
            )
        except DirectoryUnavailable:
            raise self._unavailable() from None
        if node is None or node.id == self._node.id:
            # A node that left the directory took its streams and sessions with it (and a
            # mark naming no node at all is answered the same: nothing is relayed for it).
            self._count("gone")
            raise NotFound("no such session or live stream: the node that held it is gone")
        # A WHEP offer whose owner (as cached) refuses or resets the connection (it exited),
        # or says the stream is not live there, goes once to the node the directory names
        # now: within owner_cache_s of a handover the old owner has often gone (the HLS
        # edge's rule).
        slug = request.match_info.get("stream") if request.method == "POST" else None
        try:
            answer = await self._send(request, node, body)
        except _Gone:
            if slug is None or (moved := await self._moved(slug, node.id)) is None:
                raise
            return await self._send(request, moved, body)
        if (
            answer.status == 404
            and slug is not None
            and (moved := await self._moved(slug, node.id)) is not None
        ):
            return await self._send(request, moved, body)
        return answer

    async def _send(self, request: web.Request, node: NodeInfo, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {k: v for k in _SENT if (v := request.headers.get(k)) is not None}
        headers[FORWARDED_BY] = sign(
            self._secret, sender=self._mark, target=node_mark(node.id), method=request.method,
            path=request.raw_path, headers=headers, body=body, at_s=time.time(),
        )  # fmt: skip
        url = URL(node.internal_url + request.raw_path, encoded=True)
        try:
            # Exactly the signed headers: no Content-Type made up for a body sent without one.
            sent = self._session.request(
                request.method, url, data=body, headers=headers, allow_redirects=False,
                skip_auto_headers=("Content-Type",),
            )  # fmt: skip
            async with sent as resp:
                answer = await resp.read()
                kept = CIMultiDict((k, v) for k in _KEPT for v in resp.headers.getall(k, []))
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._count("unreachable")
            self._nodes.forget(node.id)  # it may have died: read the directory again
            self._forget_owner(request)
            logger.warning("%s %s: node %s did not answer: %s", request.method, request.path,
                           node.id, exc)  # fmt: skip
            error = _Gone if node_gone(exc) else BadGateway
            raise error("the node holding this stream or session did not answer") from None
        self._count("forwarded")
        return web.Response(status=resp.status, body=answer, headers=kept)

    async def _moved(self, slug: str, failed_id: str) -> NodeInfo | None:
        """The other node holding `slug` as the directory says now, read once afresh (one read
        for the offers that saw the same owner fail); None if it names `failed_id` still, this
        node, or none (the failure stands)."""
        directory = self._read()
        try:
            owner = await self._owners.get(slug, lambda: directory.owner(slug))
            if owner is not None and owner.id == failed_id:
                self._owners.forget_if(slug, owner)
                owner = await self._owners.get(slug, lambda: directory.owner(slug))
        except DirectoryUnavailable:
            return None
        if owner is None or owner.id in (failed_id, self._node.id):
            if owner is not None:
                self._owners.forget_if(slug, owner)  # as any failure: the next offer reads
            return None
        self._count("moved")
        return owner

    def _forget_owner(self, request: web.Request) -> None:
        slug = request.match_info.get("stream")
        if slug is not None:
            self._owners.forget(slug)

    def _read(self) -> Directory:
        if self._directory is None:
            raise Unavailable("this node is starting; try again")
        return self._directory

    def _unavailable(self) -> Unavailable:
        self._count("unavailable")
        return Unavailable("the stream directory cannot be reached; try again")

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.signaling_forwards.labels(outcome).inc()
