"""An edge whose owner cache still names the node a stream has left: node C keeps node A as
the owner of a stream for far longer than the test lasts, and the stream moves to node B (A
drains, its publisher reconnects to B). A playlist request on C is answered with B's playlist
(C reads the directory again once A refuses, or says it does not hold the stream), not the
502 or 404 that ends FFmpeg's reading. A WHEP offer on C is answered by B the same way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from livecore.appkeys import DRAIN
from livecore.cluster.node import NodeInfo
from livecore.cluster.signaling_edge_routes import node_mark
from livecore.config import Config
from livecore.store import Database
from tests.cluster.conftest import FAST, Node, creator_stream, owner_becomes
from tests.cluster.serve import NODE_A, Services, not_ready, served_node
from tests.support import media
from tests.support.handover import HLS, carried_by
from tests.support.live_hls import PLAYLIST, playlist_with_segment
from tests.support.rtc import Publication, publish
from tests.support.whep import SDP, forwards, viewer_offer


async def test_an_edge_that_still_names_an_exited_owner_serves_the_node_the_stream_moved_to(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    b = await node("node-b", redis_url, changes=HLS, handover_s=30.0, **FAST)
    # C keeps the owner it read for the longest a node may: within the test it never reads
    # the directory again by itself.
    c = await node("node-c", redis_url, changes=HLS, edge_owner_cache_s=60.0, **FAST)
    b_url = f"http://127.0.0.1:{b.server.port}"
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    async with (
        served_node("node-a", tmp_path, services, node={**NODE_A, "drain_grace_s": "120"}) as a,
        aiohttp.ClientSession() as http,
    ):
        pubs: list[Publication] = []
        try:
            pubs.append(await publish(http, f"{a.url}/whip/cooking", key, media.clip()))
            await owner_becomes(c, "cooking", NodeInfo("node-a", a.url))
            # C reads A's playlist, and keeps A as the owner.
            resp = await c.get(PLAYLIST)
            assert resp.status == 200, await resp.text()
            assert "#EXT-X-DISCONTINUITY-SEQUENCE" not in await resp.text()

            a.terminate()
            await not_ready(http, a)
            await pubs[0].close()
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await owner_becomes(c, "cooking", NodeInfo("node-b", b_url))
            await carried_by(db, stream_id, "node-b")
            # Its publisher gone, A has nothing left to serve: it exits by itself.
            assert await a.exited() == 0, a.log()
            await playlist_with_segment(http, b_url + PLAYLIST)

            resp = await c.get(PLAYLIST)
            assert resp.status == 200, await resp.text()
            assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in await resp.text()
        finally:
            for pub in pubs:
                await pub.close()


async def test_an_edge_whose_owner_no_longer_holds_the_stream_serves_the_node_it_moved_to(
    node: Node, redis_url: str, db: Database
) -> None:
    # A and C keep what they read for the longest a node may: A keeps "nobody holds it" from
    # the moment between its publisher's leaving and B's claim, C keeps A.
    a, b, c = [
        await node(name, redis_url, changes=HLS, handover_s=30.0, edge_owner_cache_s=cache_s,
                   **FAST)
        for name, cache_s in (("node-a", 60.0), ("node-b", 1.0), ("node-c", 60.0))
    ]  # fmt: skip
    a_url, b_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b))
    stream_id, key = await creator_stream(b, "cooking")
    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await owner_becomes(c, "cooking", NodeInfo("node-a", a_url))
            await playlist_with_segment(http, a_url + PLAYLIST)
            assert (await c.get(PLAYLIST)).status == 200  # C keeps A as the owner

            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            async with http.delete(a_url + pubs[0].location) as resp:
                assert resp.status == 200
            await pubs[0].close()
            await drained
            await owner_becomes(c, "cooking", None)
            async with http.get(a_url + PLAYLIST) as resp:  # nobody holds it: A keeps that
                assert resp.status == 404

            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await owner_becomes(c, "cooking", NodeInfo("node-b", b_url))
            await carried_by(db, stream_id, "node-b")
            await playlist_with_segment(http, b_url + PLAYLIST)
            async with http.get(a_url + PLAYLIST) as resp:  # A still says nobody holds it
                assert resp.status == 404

            resp = await c.get(PLAYLIST)
            assert resp.status == 200, await resp.text()
            assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in await resp.text()
        finally:
            for pub in pubs:
                await pub.close()


async def test_a_whep_offer_on_an_edge_that_still_names_an_exited_owner_is_answered_by_the_next(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    b = await node("node-b", redis_url, changes=HLS, handover_s=30.0, **FAST)
    c = await node("node-c", redis_url, changes=HLS, edge_owner_cache_s=60.0, **FAST)
    b_url = f"http://127.0.0.1:{b.server.port}"
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    pc, _, _ = viewer_offer()
    async with (
        served_node("node-a", tmp_path, services, node={**NODE_A, "drain_grace_s": "120"}) as a,
        aiohttp.ClientSession() as http,
    ):
        pubs: list[Publication] = []
        try:
            pubs.append(await publish(http, f"{a.url}/whip/cooking", key, media.clip()))
            await owner_becomes(c, "cooking", NodeInfo("node-a", a.url))
            # An offer A refuses (no session on A) leaves C keeping A as the owner.
            resp = await c.post("/whep/cooking", data="v=0\r\n", headers=SDP)
            assert resp.status == 422, await resp.text()
            assert await forwards(c, "forwarded") == 1

            a.terminate()
            await not_ready(http, a)
            await pubs[0].close()
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await owner_becomes(c, "cooking", NodeInfo("node-b", b_url))
            await carried_by(db, stream_id, "node-b")
            assert await a.exited() == 0, a.log()

            await pc.setLocalDescription(await pc.createOffer())
            resp = await c.post("/whep/cooking", data=pc.localDescription.sdp, headers=SDP)
            assert resp.status == 201, await resp.text()
            assert resp.headers["Location"].endswith("." + node_mark("node-b"))
            async with http.delete(b_url + resp.headers["Location"]) as ended:
                assert ended.status == 200
        finally:
            await pc.close()
            for pub in pubs:
                await pub.close()


async def test_a_whep_offer_on_an_edge_whose_owner_no_longer_holds_the_stream_goes_to_the_next(
    node: Node, redis_url: str, db: Database
) -> None:
    a, b = [await node(name, redis_url, changes=HLS, handover_s=30.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    c = await node("node-c", redis_url, changes=HLS, edge_owner_cache_s=60.0, **FAST)
    a_url, b_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b))
    stream_id, key = await creator_stream(b, "cooking")
    pc, _, _ = viewer_offer()
    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await owner_becomes(c, "cooking", NodeInfo("node-a", a_url))
            resp = await c.post("/whep/cooking", data="v=0\r\n", headers=SDP)
            assert resp.status == 422, await resp.text()  # A's answer: C keeps A

            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            async with http.delete(a_url + pubs[0].location) as resp:
                assert resp.status == 200
            await pubs[0].close()
            await drained
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await owner_becomes(c, "cooking", NodeInfo("node-b", b_url))
            await carried_by(db, stream_id, "node-b")

            # A, still up, answers a signed offer itself: the stream is not live there.
            await pc.setLocalDescription(await pc.createOffer())
            resp = await c.post("/whep/cooking", data=pc.localDescription.sdp, headers=SDP)
            assert resp.status == 201, await resp.text()
            assert resp.headers["Location"].endswith("." + node_mark("node-b"))
            assert await forwards(c, "moved") == 1
            async with http.delete(b_url + resp.headers["Location"]) as ended:
                assert ended.status == 200
        finally:
            await pc.close()
            for pub in pubs:
                await pub.close()
