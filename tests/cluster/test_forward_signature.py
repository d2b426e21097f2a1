"""Forwards between nodes are signed over their time, a nonce, the node they are for, their
method, path, body and headers: a forward seen on the internal network cannot be sent again,
later, with another body or other credentials."""

from __future__ import annotations

import time

import pytest
from aiohttp import web

from livecore.appkeys import PUBLISHERS, SECRET_KEY, VIEWERS
from livecore.cluster.forward_signature import WINDOW_S, ForwardCheck, ForwardRefused, sign
from livecore.cluster.node import NodeInfo
from livecore.cluster.signaling_edge_routes import FORWARDED_BY, node_mark
from livecore.errors import Handler
from tests.cluster.conftest import Node, creator_stream, owner_becomes
from tests.conftest import Client, bearer
from tests.support.whep import SDP, forwards, publish_on, viewer_offer

SECRET = b"k" * 32
A, B = node_mark("node-a"), node_mark("node-b")


def signed(
    at_s: float, *, method: str = "DELETE", path: str = "/whep/s/x", body: bytes = b"",
    headers: dict[str, str] | None = None, nonce: str | None = None, target: str = A,
    secret: bytes = SECRET,
) -> str:  # fmt: skip
    return sign(secret, sender=B, target=target, method=method, path=path,
                headers=headers or {}, body=body, at_s=at_s, nonce=nonce)  # fmt: skip


def check(
    checker: ForwardCheck, header: str, now_s: float, *, method: str = "DELETE",
    path: str = "/whep/s/x", body: bytes = b"", headers: dict[str, str] | None = None,
) -> str:  # fmt: skip
    return checker.check(header, method=method, path=path, headers=headers or {}, body=body,
                         now_s=now_s)  # fmt: skip


def test_a_forward_is_taken_once_within_the_window_and_only_as_signed() -> None:
    checker = ForwardCheck(SECRET, A)
    now = 1_000_000.0
    # Clocks a little apart either way are allowed.
    assert check(checker, signed(now - WINDOW_S + 1), now) == B
    assert check(checker, signed(now + WINDOW_S - 1), now) == B
    refusals = {
        "stale": [signed(now - WINDOW_S - 1), signed(now + WINDOW_S + 1)],
        "forged": [
            signed(now, target=B),  # meant for another node
            signed(now, method="PATCH"),
            signed(now, path="/whep/s/y"),
            signed(now, body=b"other"),
            signed(now, headers={"Authorization": "Bearer t"}),
            signed(now, headers={"If-Match": ""}),  # sent empty is not left out
            signed(now, secret=b"another deployment's key"),
            signed(now).replace(".", "..", 1),
            "nonsense",
        ],
    }
    for reason, headers in refusals.items():
        for header in headers:
            with pytest.raises(ForwardRefused) as refused:
                check(checker, header, now)
            assert refused.value.reason == reason, header
    replay = signed(now, nonce="n1")
    assert check(checker, replay, now) == B
    with pytest.raises(ForwardRefused, match="already taken") as refused:
        check(checker, replay, now + WINDOW_S - 1)
    assert refused.value.reason == "replayed"
    # Once out of the window, its nonce is forgotten: the time alone refuses it now.
    with pytest.raises(ForwardRefused) as refused:
        check(checker, replay, now + WINDOW_S + 1)
    assert refused.value.reason == "stale"


def test_a_node_that_took_too_many_forwards_in_the_window_refuses_more() -> None:
    checker = ForwardCheck(SECRET, A, max_seen=3)
    now = 1_000_000.0
    for i in range(3):
        check(checker, signed(now, nonce=f"n{i}"), now)
    with pytest.raises(ForwardRefused) as refused:
        check(checker, signed(now, nonce="n3"), now + 1)
    assert refused.value.reason == "overloaded"
    # The first ones leave the window: there is room again.
    assert check(checker, signed(now + WINDOW_S + 1, nonce="n4"), now + WINDOW_S + 1) == B


class Tap:
    """Node A's view of the forwards it receives (a middleware): their headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if FORWARDED_BY in request.headers:
            self.seen.append((request.method, request.path, dict(request.headers)))
        return await handler(request)

    def last(self, method: str) -> dict[str, str]:
        return [h for m, _, h in self.seen if m == method][-1]


def replayable(headers: dict[str, str]) -> dict[str, str]:
    keep = (FORWARDED_BY, "Content-Type", "Authorization", "If-Match", "X-Request-Id")
    return {k: v for k, v in headers.items() if k in keep}


async def two_nodes(node: Node, redis_url: str, tap: Tap) -> tuple[Client, Client, str]:
    a = await node("node-a", redis_url, middlewares=(tap.middleware,))
    b = await node("node-b", redis_url)
    _, key = await creator_stream(a, "cooking")
    return a, b, key


async def test_a_forward_seen_on_the_network_cannot_be_replayed(node: Node, redis_url: str) -> None:
    tap = Tap()
    a, b, key = await two_nodes(node, redis_url, tap)
    pub = await publish_on(a, "cooking", key)
    pc, _, _ = viewer_offer()
    try:
        await owner_becomes(b, "cooking", NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}"))
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        resp = await b.post("/whep/cooking", data=offer, headers=SDP)
        assert resp.status == 201, await resp.text()
        location = resp.headers["Location"]
        assert a.app[VIEWERS].count == 1

        # The offer B forwarded, sent again to A as it was seen: refused, no second viewer.
        resp = await a.post("/whep/cooking", data=offer, headers=replayable(tap.last("POST")))
        assert resp.status == 403
        taken = "this forward between nodes was already taken"
        assert await resp.json() == {"error": {"code": "forbidden", "message": taken}}
        assert a.app[VIEWERS].count == 1

        # The viewer's DELETE through B ends it; the DELETE seen, sent again, is refused.
        assert (await b.delete(location)).status == 200
        assert a.app[VIEWERS].count == 0
        resp = await a.delete(location, headers=replayable(tap.last("DELETE")))
        assert resp.status == 403
        assert (await resp.json())["error"]["message"] == taken
        assert await forwards(a, "replayed") == 2
        assert await forwards(b, "forwarded") == 2
    finally:
        await pc.close()
        await pub.close()


async def test_a_forward_with_another_body_or_credentials_is_refused(
    node: Node, redis_url: str
) -> None:
    tap = Tap()
    a, b, key = await two_nodes(node, redis_url, tap)
    pub = await publish_on(a, "cooking", key)
    pc, _, _ = viewer_offer()
    other, _, _ = viewer_offer()
    try:
        await owner_becomes(b, "cooking", NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}"))
        await pc.setLocalDescription(await pc.createOffer())
        await other.setLocalDescription(await other.createOffer())
        # B forwards an offer to A; what B sent is then sent to A again, changed.
        resp = await b.post("/whep/cooking", data=pc.localDescription.sdp, headers=SDP)
        assert resp.status == 201
        seen = replayable(tap.last("POST"))
        assert a.app[VIEWERS].count == 1
        for body, headers in (
            (other.localDescription.sdp, seen),  # another offer
            (pc.localDescription.sdp, seen | bearer("someone else's token")),
            (pc.localDescription.sdp, seen | {"Content-Type": "text/plain"}),
        ):
            resp = await a.post("/whep/cooking", data=body, headers=headers)
            assert resp.status == 403
            assert (await resp.json())["error"]["message"] == (
                "this forward between nodes is not signed by this deployment"
            )
        assert a.app[VIEWERS].count == 1
        assert await forwards(a, "forged") == 3
    finally:
        await pc.close()
        await other.close()
        await pub.close()


async def test_a_forward_signed_too_long_ago_or_ahead_is_refused_and_changes_nothing(
    node: Node, redis_url: str
) -> None:
    a, _, key = await two_nodes(node, redis_url, Tap())
    pub = await publish_on(a, "cooking", key)
    try:
        session = pub.location.rpartition("/")[2].partition(".")[0]

        def delete_signed(at_s: float) -> dict[str, str]:
            header = sign(
                a.app[SECRET_KEY], sender=B, target=A, method="DELETE", path=pub.location,
                headers={}, body=b"", at_s=at_s,
            )  # fmt: skip
            return {FORWARDED_BY: header}

        for at_s, side in ((time.time() - 120, "before"), (time.time() + 120, "after")):
            resp = await a.delete(pub.location, headers=delete_signed(at_s))
            assert resp.status == 403
            message = (await resp.json())["error"]["message"]
            assert message.startswith("this forward between nodes was signed 12")
            assert message.endswith(f"s {side} this node's time (more than the 30 s allowed)")
        assert await forwards(a, "stale") == 2
        assert a.app[PUBLISHERS].session(session) is not None  # still live
        # The same DELETE signed now, by a node whose clock is a little behind, is taken.
        resp = await a.delete(pub.location, headers=delete_signed(time.time() - 10))
        assert resp.status == 200
        assert a.app[PUBLISHERS].session(session) is None
    finally:
        await pub.close()
