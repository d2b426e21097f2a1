"""WHEP and WHIP/WHEP sessions across nodes: node B forwards the signaling of a stream or
session held by node A to A, and the media flows between the client and A."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc import RTCSessionDescription
from prometheus_client import CollectorRegistry

from livecore.appkeys import PUBLISHERS, VIEWERS
from livecore.cluster.metrics import ClusterMetrics
from livecore.cluster.node import NodeInfo
from livecore.cluster.redis_directory import RedisDirectory
from livecore.cluster.signaling_edge_routes import FORWARDED_BY, SignalingEdge, node_mark
from livecore.sfu.media import h264_is_keyframe
from livecore.sfu.passthrough import EncodedFrame
from tests.cluster.conftest import Node, creator_stream, owner_becomes
from tests.conftest import bearer, create_stream, register, wait_state
from tests.support.clock import ManualClock
from tests.support.edge_requests import directory_reads
from tests.support.services import free_port
from tests.support.whep import SDP, forwards, publish_on, viewer_offer

FRAG = {"Content-Type": "application/trickle-ice-sdpfrag"}
CANDIDATE = "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"


def trickle(offer: str) -> str:
    ufrag = next(line for line in offer.splitlines() if line.startswith("a=ice-ufrag:"))
    return f"{ufrag}\r\na=mid:0\r\n{CANDIDATE}\r\n"


async def test_whep_on_another_node_plays_from_the_owner_and_its_session_follows(
    node: Node, redis_url: str
) -> None:
    a = await node("node-a", redis_url)
    b = await node("node-b", redis_url)
    _, key = await creator_stream(a, "cooking")
    pub = await publish_on(a, "cooking", key)
    pc, video, audio = viewer_offer()
    try:
        await owner_becomes(b, "cooking", NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}"))
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        resp = await b.post("/whep/cooking", data=offer, headers=SDP)
        assert resp.status == 201, await resp.text()
        # A's session, named so that any node finds A: A answered and A sends the media.
        location, etag = resp.headers["Location"], resp.headers["ETag"]
        assert location.startswith("/whep/cooking/")
        assert location.endswith("." + node_mark("node-a"))
        assert resp.headers["Accept-Patch"] == FRAG["Content-Type"]
        assert resp.headers["Access-Control-Expose-Headers"]  # B's CORS on A's answer
        assert (a.app[VIEWERS].count, b.app[VIEWERS].count) == (1, 0)
        await pc.setRemoteDescription(RTCSessionDescription(await resp.text(), "answer"))
        async with asyncio.timeout(20):
            first = await video.receiver.track.recv()
            sound = await audio.receiver.track.recv()
        assert isinstance(first, EncodedFrame) and h264_is_keyframe(first.data)
        assert isinstance(sound, EncodedFrame) and sound.codec == "opus"

        # Trickle ICE and the session's errors through B are A's.
        frag = trickle(offer)
        resp = await b.patch(location, data=frag, headers=FRAG | {"If-Match": etag})
        assert resp.status == 204
        resp = await b.patch(location, data=frag, headers=FRAG | {"If-Match": '"stale"'})
        assert resp.status == 412
        assert (await resp.json())["error"]["code"] == "precondition_failed"

        # DELETE through B ends the viewer on A.
        assert (await b.delete(location)).status == 200
        assert a.app[VIEWERS].count == 0
        resp = await b.delete(location)
        assert resp.status == 404
        assert (await resp.json())["error"]["message"] == "no such WHEP session"
        assert await forwards(b, "forwarded") == 5

        # The publisher's trickle and DELETE sent to B reach A's WHIP session.
        publisher_frag = trickle(pub.pc.localDescription.sdp)
        assert (await b.patch(pub.location, data=publisher_frag, headers=FRAG)).status == 204
        assert (await b.delete(pub.location)).status == 200
        assert a.app[PUBLISHERS].session(pub.location.rpartition("/")[2].split(".")[0]) is None
        await wait_state(a, "cooking", "offline")
        await owner_becomes(b, "cooking", None)
        assert (await b.post("/whep/cooking", data=offer, headers=SDP)).status == 404
    finally:
        await pc.close()
        await pub.close()


async def test_whep_for_a_stream_not_live_or_not_allowed_is_answered_alike_on_every_node(
    node: Node, redis_url: str
) -> None:
    a = await node("node-a", redis_url)
    b = await node("node-b", redis_url)
    creator = await register(a, "members@example.com", creator=True)
    key = await create_stream(a, creator["token"], "members", visibility="subscribers")
    await creator_stream(a, "quiet")
    pc, _, _ = viewer_offer()
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp

        async def same(path: str, headers: dict[str, str]) -> int:
            answers = [await c.post(path, data=offer, headers=headers) for c in (a, b)]
            bodies = [await r.json() for r in answers]
            assert answers[0].status == answers[1].status
            assert bodies[0] == bodies[1]
            return answers[0].status

        assert await same("/whep/quiet", SDP) == 404  # offline
        assert await same("/whep/nosuch", SDP) == 404  # no such stream
        pub = await publish_on(a, "members", key)
        try:
            owner = NodeInfo("node-a", f"http://127.0.0.1:{a.server.port}")
            await owner_becomes(b, "members", owner)
            # Subscriber-only: B refuses as A does; neither made a viewer.
            assert await same("/whep/members", SDP) == 403
            assert await same("/whep/members", SDP | bearer("forged.token")) == 403
            assert (a.app[VIEWERS].count, b.app[VIEWERS].count) == (0, 0)
        finally:
            await a.delete(pub.location)
            await pub.close()
    finally:
        await pc.close()


async def test_an_owner_that_went_away_is_a_502_then_a_404(node: Node, redis_url: str) -> None:
    b = await node("node-b", redis_url)
    stream_id, _ = await creator_stream(b, "cooking")
    # A node that died a moment ago: its entries are still in the directory, nothing listens.
    ghost = NodeInfo("node-gone", f"http://127.0.0.1:{free_port()}")
    gone = RedisDirectory(
        redis_url, ghost, ttl_s=60.0, heartbeat_s=30.0, metrics=ClusterMetrics(CollectorRegistry())
    )
    session = f"/whep/cooking/somesession.{node_mark('node-gone')}"
    pc, _, _ = viewer_offer()
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        await gone.claim(stream_id, "cooking")
        await owner_becomes(b, "cooking", ghost)
        for resp in (
            await b.post("/whep/cooking", data=offer, headers=SDP),
            await b.delete(session),
            await b.patch(session, data=trickle(offer), headers=FRAG),
        ):
            assert resp.status == 502
            assert await resp.json() == {"error": {
                "code": "bad_gateway",
                "message": "the node holding this stream or session did not answer"}}  # fmt: skip
        assert await forwards(b, "unreachable") == 3
        await gone.close()  # its entries go, as they expire when a node dies
        await owner_becomes(b, "cooking", None)
        resp = await b.post("/whep/cooking", data=offer, headers=SDP)
        assert resp.status == 404
        assert (await resp.json())["error"]["message"] == "the stream is not live"
        resp = await b.delete(session)
        assert resp.status == 404
        gone_text = "no such session or live stream: the node that held it is gone"
        assert await resp.json() == {"error": {"code": "not_found", "message": gone_text}}
        assert await forwards(b, "gone") == 1
    finally:
        await pc.close()
        await gone.close()


async def test_forged_forwards_are_refused(node: Node, redis_url: str) -> None:
    a = await node("node-a", redis_url)
    b = await node("node-b", redis_url)
    _, key = await creator_stream(a, "cooking")
    # A server a forged session URL might try to make B call: it is never asked.
    asked: list[str] = []

    async def record(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=200)

    bystander = web.Application()
    bystander.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(bystander, host="127.0.0.1")
    await server.start_server()
    pub = await publish_on(a, "cooking", key)
    try:
        session = pub.location.rpartition("/")[2].partition(".")[0]
        for mark in (node_mark(str(server.make_url(""))), node_mark("no-such-node"), "%%%"):
            resp = await b.delete(f"/whip/cooking/{session}.{mark}")
            assert resp.status == 404
        assert asked == []

        # A forward that this deployment did not sign: refused, the session stays.
        marks = (f"{node_mark('node-b')}.{'0' * 64}", "nonsense", "x.\u00e9t\u00e9", "\u00e9.x")
        for forged in marks:
            resp = await a.delete(pub.location, headers={FORWARDED_BY: forged})
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "forbidden"
        assert await forwards(a, "forged") == 4
        assert a.app[PUBLISHERS].session(session) is not None
        assert (await b.delete(pub.location)).status == 200  # B's signed forward is taken
        assert a.app[PUBLISHERS].session(session) is None
    finally:
        await pub.close()
        await server.close()


async def test_a_crowd_of_session_requests_reads_the_directory_once(
    node: Node, redis_url: str
) -> None:
    """Requests on sessions held by node A that arrive at node B together cost B one read of
    A's directory entry, not one each (one each ran Redis' connection pool dry)."""
    a = await node("node-a", redis_url)
    b = await node("node-b", redis_url, edge_owner_cache_s=60.0)
    await creator_stream(a, "cooking")
    before = await directory_reads(redis_url)
    sessions = [f"/whep/cooking/s{i}.{node_mark('node-a')}" for i in range(30)]
    answers = await asyncio.gather(*(b.delete(path) for path in sessions))
    # Each reached A, which holds no such session.
    assert {resp.status for resp in answers} == {404}
    assert await forwards(b, "forwarded") == 30
    assert await directory_reads(redis_url) - before == 1


class _WatchedDirectory(RedisDirectory):
    """The real Redis directory, with each finished owner lookup counted and signalled."""

    reads = 0
    read = asyncio.Event()

    async def owner(self, stream: int | str) -> NodeInfo | None:
        found = await super().owner(stream)
        self.reads += 1
        self.read.set()
        return found


async def test_an_owner_due_for_refresh_is_answered_at_once_and_read_again_behind(
    redis_url: str,
) -> None:
    """In the last half of its cache life, a stream's owner is answered from the cache at
    once while one directory read replaces it: a crowd of WHEP offers never waits for it,
    and a stream that moved is followed before the cached owner expires."""
    clock = ManualClock()
    metrics = ClusterMetrics(CollectorRegistry())
    node_a, node_b = NodeInfo("node-a", "http://a:1"), NodeInfo("node-b", "http://b:1")
    a = RedisDirectory(redis_url, node_a, ttl_s=60.0, heartbeat_s=30.0, metrics=metrics)
    b = _WatchedDirectory(redis_url, node_b, ttl_s=60.0, heartbeat_s=30.0, metrics=metrics)
    b.read = asyncio.Event()
    edge = SignalingEdge(node_b, owner_cache_s=2.0, clock=clock)
    edge.start(b, metrics, b"secret")
    try:
        for directory in (a, b):
            await directory.start()
        await a.claim(7, "cooking")
        assert await edge.stream_owner("cooking") == node_mark("node-a")
        assert b.reads == 1
        clock.now = 0.9  # not due yet
        assert await edge.stream_owner("cooking") == node_mark("node-a")
        assert b.reads == 1
        await a.release(7)  # the stream ended on A
        b.read.clear()
        clock.now = 1.5  # due: answered from the cache, read again behind
        answers = await asyncio.gather(*(edge.stream_owner("cooking") for _ in range(20)))
        assert set(answers) == {node_mark("node-a")}
        async with asyncio.timeout(10):
            await b.read.wait()
        assert b.reads == 2  # one read for the twenty
        assert await edge.stream_owner("cooking") is None
    finally:
        await edge.close()
        for directory in (a, b):
            await directory.close()
