"""One recording across a handover: node A (a real `livecore serve` process) records the first
leg of a broadcast, its publisher moves to node B (A drains, or A is killed), B records the
next leg into the same storage, and the broadcast's recording plays end to end from another
node, A's media then B's after one EXT-X-DISCONTINUITY. Storage is a real S3-compatible
server (moto), or the data directory the two nodes share (the processes of one box)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av

from livecore.appkeys import DRAIN
from livecore.cluster.routes import DIRECTORY
from livecore.config import Config, StorageConfig
from livecore.recordings.bucket import Bucket
from livecore.store import Database
from tests.cluster.conftest import FAST, Node, creator_stream
from tests.cluster.serve import Services, bucket_env, served_node
from tests.cluster.test_drain import HLS, NODE_A, broadcasts, carried_by, not_ready
from tests.conftest import Client, wait_state
from tests.support import media
from tests.support.rtc import Publication, publish
from tests.web.browser import Chromium
from tests.web.conftest import chromium  # noqa: F401  (fixture)

Read = Callable[[str], Awaitable[str]]  # a leg's stored playlist, by its recording path


def in_bucket(bucket: Bucket) -> Read:
    async def read(path: str) -> str:
        try:
            return (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
        except FileNotFoundError:
            return ""

    return read


def on_disk(data_dir: Path) -> Read:
    async def read(path: str) -> str:
        try:
            return await asyncio.to_thread((data_dir / path / "vod.m3u8").read_text)
        except FileNotFoundError:
            return ""

    return read


async def recording_path(db: Database, broadcast_id: int) -> str:
    path: str = await db.pool.fetchval(
        "SELECT recording_path FROM broadcasts WHERE id = $1", broadcast_id
    )
    return path


async def segments_stored(read: Read, path: str, count: int) -> None:
    """Wait (60 s at most) until the recording's playlist at `path` lists `count` segments
    (storage tells nothing when an object arrives: it is read again and again)."""
    async with asyncio.timeout(60):
        while True:
            if (await read(path)).count("#EXTINF") >= count:
                return
            await asyncio.sleep(0.2)


async def listed(client: Client, broadcast_id: int) -> None:
    """Wait (90 s at most) until the stream lists the recording (every leg finished)."""
    async with asyncio.timeout(90):
        while True:
            body = await (await client.get("/api/v1/streams/cooking/recordings")).json()
            if [r["id"] for r in body["recordings"]] == [broadcast_id]:
                return
            await asyncio.sleep(0.2)


def packets(url: str, options: dict[str, str] | None = None) -> list[tuple[int, bool]]:
    """(pts, keyframe) of each video packet FFmpeg demuxes from a VOD playlist, end to end.
    Blocks: run it in a thread."""
    opts = {"http_persistent": "0", **(options or {})}
    with av.open(url, "r", options=opts, timeout=10) as container:
        video = container.streams.video[0]
        return [(p.pts, p.is_keyframe) for p in container.demux(video) if p.pts is not None]


def frames(url: str) -> int:
    """Video frames FFmpeg decodes from a VOD playlist. Blocks: run it in a thread."""
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def split_at_leg_one(text: str, base: str, tmp: Path) -> list[Path]:
    """The joined playlist's two legs as playlists of their own (split where leg 1 starts,
    the EXT-X-DISCONTINUITY there dropped), URIs absolute under `base`."""
    head, body = [], []
    for line in text.splitlines():
        if line.startswith(("#EXTM3U", "#EXT-X-VERSION", "#EXT-X-TARGETDURATION",
                            "#EXT-X-PLAYLIST-TYPE", "#EXT-X-MEDIA-SEQUENCE",
                            "#EXT-X-INDEPENDENT")):  # fmt: skip
            head.append(line)
        elif line != "#EXT-X-ENDLIST":
            body.append(line)
    boundary = leg_boundary(body)
    rest = body[boundary:]
    legs = [body[:boundary], rest[1:] if rest[0] == "#EXT-X-DISCONTINUITY" else rest]
    paths = []
    for i, lines in enumerate(legs):
        absolute = [
            line.replace('URI="', f'URI="{base}', 1) if line.startswith("#EXT-X-MAP:")
            else line if line.startswith("#") else base + line
            for line in lines
        ]  # fmt: skip
        path = tmp / f"leg{i}.m3u8"
        path.write_text("\n".join([*head, *absolute, "#EXT-X-ENDLIST"]) + "\n")
        paths.append(path)
    return paths


def leg_boundary(lines: list[str]) -> int:
    """Where leg 1 starts: the line after the last segment of leg 0."""
    uris = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    first_b = next(i for i in uris if line_leg(lines[i]) == 1)
    return max(i for i in uris if i < first_b) + 1


def line_leg(uri: str) -> int:
    return 1 if uri.startswith("leg-1/") else 0


async def plays_both_legs(http: aiohttp.ClientSession, url: str, tmp: Path) -> dict[str, Any]:
    """The recording's VOD at `url` (…/vod.m3u8): A's segments, then an EXT-X-DISCONTINUITY,
    then B's (under leg-1/, with its own init segment), and FFmpeg demuxes all of it: every
    packet of A's leg and of B's leg demuxed apart, in order, each of them some."""
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    lines = text.splitlines()
    uris = [line for line in lines if line and not line.startswith("#")]
    legs = [line_leg(uri) for uri in uris]
    assert legs == sorted(legs) and legs.count(0) >= 2 and legs.count(1) >= 2, text
    boundary = leg_boundary(lines)
    switch = lines[boundary : lines.index(uris[legs.index(1)])]
    assert "#EXT-X-DISCONTINUITY" in switch and any('URI="leg-1/init-' in t for t in switch), text
    whole = await asyncio.to_thread(packets, url)
    parts = await asyncio.to_thread(split_at_leg_one, text, url.removesuffix("vod.m3u8"), tmp)
    local = {"protocol_whitelist": "file,http,tcp"}
    apart = [await asyncio.to_thread(packets, str(p), local) for p in parts]
    # The whole is A's leg, then B's: every packet of each, in order, each leg starting at a
    # keyframe and B's timeline starting again (the discontinuity).
    assert len(apart) == 2 and all(leg and leg[0][1] for leg in apart), apart
    assert whole == apart[0] + apart[1]
    assert apart[1][0][0] < apart[0][-1][0]
    # And it decodes on past the switch into B's media.
    decoded = await asyncio.to_thread(frames, url)
    assert decoded > len(apart[0]), (decoded, len(apart[0]), len(apart[1]))
    return {"packets": [len(leg) for leg in apart], "decoded": decoded}


async def test_a_drained_nodes_recording_goes_on_on_the_next_node_as_one_recording_in_the_bucket(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path,
    storage: StorageConfig, bucket: Bucket,
) -> None:  # fmt: skip
    b, c = [await node(name, redis_url, changes={**HLS, "storage": storage}, handover_s=30.0,
                       **FAST) for name in ("node-b", "node-c")]  # fmt: skip
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    read = in_bucket(bucket)
    async with (
        served_node("node-a", tmp_path, services, node={**NODE_A, "drain_grace_s": "120"},
                    env=bucket_env(storage)) as a,
        aiohttp.ClientSession() as http,
    ):  # fmt: skip
        pubs: list[Publication] = []
        try:
            pubs.append(await publish(http, f"{a.url}/whip/cooking", key, media.clip()))
            await wait_state(b, "cooking", "live")
            [first] = await broadcasts(db, stream_id)
            path = await recording_path(db, first["id"])
            await segments_stored(read, path, 2)
            a.terminate()
            await not_ready(http, a)
            await pubs[0].close()
            pubs.append(await publish(http, f"http://127.0.0.1:{b.server.port}/whip/cooking",
                                      key, media.clip()))  # fmt: skip
            assert await a.exited() == 0, a.log()
            await carried_by(db, stream_id, "node-b")
            await segments_stored(read, f"{path}/leg-1", 2)
            # B's publisher ends the broadcast.
            async with http.delete(f"http://127.0.0.1:{b.server.port}{pubs[1].location}") as r:
                assert r.status == 200
        finally:
            for pub in pubs:
                await pub.close()
    await listed(c, first["id"])
    assert [b["id"] for b in await broadcasts(db, stream_id)] == [first["id"]]
    vod = f"http://127.0.0.1:{c.server.port}/vod/{first['id']}/vod.m3u8"
    async with aiohttp.ClientSession() as http:
        await plays_both_legs(http, vod, tmp_path)
    legs = await db.pool.fetch(
        "SELECT leg, node_id, finished, bytes FROM recording_legs WHERE broadcast_id = $1"
        " ORDER BY leg",
        first["id"],
    )
    assert [(r["leg"], r["node_id"], r["finished"]) for r in legs] == [
        (0, "node-a", True), (1, "node-b", True)
    ]  # fmt: skip
    assert all(r["bytes"] > 0 for r in legs)
    total = await db.pool.fetchval(
        "SELECT recording_bytes FROM broadcasts WHERE id = $1", first["id"]
    )
    assert total == sum(r["bytes"] for r in legs)


async def test_a_killed_nodes_leg_is_finished_from_the_bucket_and_the_next_node_records_the_rest(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path,
    storage: StorageConfig, bucket: Bucket,
) -> None:  # fmt: skip
    # The publisher reaches B within `handover_s` of A's death: B continues the broadcast.
    b, c = [await node(name, redis_url, changes={**HLS, "storage": storage}, handover_s=20.0,
                       **FAST) for name in ("node-b", "node-c")]  # fmt: skip
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    read = in_bucket(bucket)
    b_url = f"http://127.0.0.1:{b.server.port}"
    async with (
        served_node("node-a", tmp_path, services, node=NODE_A, env=bucket_env(storage)) as a,
        aiohttp.ClientSession() as http,
    ):
        pubs = [await publish(http, f"{a.url}/whip/cooking", key, media.clip())]
        try:
            await wait_state(b, "cooking", "live")
            [first] = await broadcasts(db, stream_id)
            path = await recording_path(db, first["id"])
            await segments_stored(read, path, 2)
            await a.kill_hard()
            await pubs[0].close()
            async with asyncio.timeout(30):  # A's entries expire (its TTL)
                while True:
                    if await b.app[DIRECTORY].node_status("node-a") is None:
                        break
                    await asyncio.sleep(0.05)
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await carried_by(db, stream_id, "node-b")
            await segments_stored(read, f"{path}/leg-1", 2)
            async with http.delete(b_url + pubs[1].location) as resp:
                assert resp.status == 200
        finally:
            for pub in pubs:
                await pub.close()
    # A survivor finished A's leg from what reached the bucket; B finished its own.
    await listed(c, first["id"])
    assert [b["id"] for b in await broadcasts(db, stream_id)] == [first["id"]]
    async with aiohttp.ClientSession() as http:
        await plays_both_legs(http, f"http://127.0.0.1:{c.server.port}/vod/{first['id']}/vod.m3u8",
                              tmp_path)  # fmt: skip
    legs = await db.pool.fetch(
        "SELECT leg, node_id, finished FROM recording_legs WHERE broadcast_id = $1 ORDER BY leg",
        first["id"],
    )
    assert [tuple(r) for r in legs] == [(0, "node-a", True), (1, "node-b", True)]


async def test_a_recording_on_the_disk_two_processes_share_goes_on_in_the_next_process(
    node: Node, redis_url: str, dsn: str, db: Database, config: Config, tmp_path: Path
) -> None:
    shared = tmp_path / "box"  # the data directory of `livecore serve --processes 2`
    b = await node("node-b", redis_url, changes={**HLS, "data_dir": str(shared)},
                   handover_s=30.0, **FAST)  # fmt: skip
    stream_id, key = await creator_stream(b, "cooking")
    services = Services(dsn, redis_url, config.secret_key)
    read = on_disk(shared)
    b_url = f"http://127.0.0.1:{b.server.port}"
    async with (
        served_node("node-a", tmp_path, services, node={**NODE_A, "drain_grace_s": "120"},
                    env={"LIVECORE_DATA_DIR": str(shared)}) as a,
        aiohttp.ClientSession() as http,
    ):  # fmt: skip
        pubs = [await publish(http, f"{a.url}/whip/cooking", key, media.clip())]
        try:
            await wait_state(b, "cooking", "live")
            [first] = await broadcasts(db, stream_id)
            path = await recording_path(db, first["id"])
            await segments_stored(read, path, 2)
            a.terminate()
            await not_ready(http, a)
            await pubs[0].close()
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            assert await a.exited() == 0, a.log()
            await carried_by(db, stream_id, "node-b")
            await segments_stored(read, f"{path}/leg-1", 2)
            async with http.delete(b_url + pubs[1].location) as resp:
                assert resp.status == 200
        finally:
            for pub in pubs:
                await pub.close()
    await listed(b, first["id"])
    async with aiohttp.ClientSession() as http:
        await plays_both_legs(http, f"{b_url}/vod/{first['id']}/vod.m3u8", tmp_path)


_VOD_PAGE = """<!doctype html>
<meta charset="utf-8"><title>vod</title>
<video id="v" muted playsinline></video>
<script src="/static/vendor/hls.min.js"></script>
<script>
const v = document.getElementById("v");
const errors = [], fragments = [];
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) errors.push(`${d.type} ${d.details}`); });
hls.on(Hls.Events.FRAG_CHANGED, (_, d) => fragments.push(d.frag.relurl));
hls.loadSource(SOURCE);
hls.attachMedia(v);
v.playbackRate = 2;
v.play().catch((e) => errors.push(String(e)));
window.state = () => ({ time: v.currentTime, ended: v.ended, errors, fragments });
</script>
"""


async def test_hlsjs_plays_a_recording_in_legs_across_the_discontinuity(
    node: Node, redis_url: str, db: Database, tmp_path: Path,
    chromium: Chromium,  # noqa: F811  (the fixture imported above)
) -> None:  # fmt: skip
    shared = {**HLS, "data_dir": str(tmp_path / "box")}
    a, b = [await node(name, redis_url, changes=shared, handover_s=30.0, **FAST)
            for name in ("node-a", "node-b")]  # fmt: skip
    a_url, b_url = (f"http://127.0.0.1:{n.server.port}" for n in (a, b))
    stream_id, key = await creator_stream(b, "cooking")
    read = on_disk(tmp_path / "box")
    async with aiohttp.ClientSession() as http:
        pubs = [await publish(http, f"{a_url}/whip/cooking", key, media.clip())]
        try:
            await wait_state(b, "cooking", "live")
            [first] = await broadcasts(db, stream_id)
            path = await recording_path(db, first["id"])
            await segments_stored(read, path, 2)
            drained = asyncio.create_task(a.app[DRAIN].run(asyncio.Event()))
            await not_ready(http, a_url)
            async with http.delete(a_url + pubs[0].location) as resp:
                assert resp.status == 200
            await pubs[0].close()
            await drained
            pubs.append(await publish(http, f"{b_url}/whip/cooking", key, media.clip()))
            await carried_by(db, stream_id, "node-b")
            await segments_stored(read, f"{path}/leg-1", 2)
            async with http.delete(b_url + pubs[1].location) as resp:
                assert resp.status == 200
        finally:
            for pub in pubs:
                await pub.close()
    await listed(b, first["id"])
    vod = f"/vod/{first['id']}/vod.m3u8"
    text = await (await b.get(vod)).text()
    a_part = text.split("#EXT-X-DISCONTINUITY\n")[0]
    a_duration = sum(float(line[8:].rstrip(",")) for line in a_part.splitlines()
                     if line.startswith("#EXTINF:"))  # fmt: skip
    page_url = f"{b_url}/__test/vod"
    html = _VOD_PAGE.replace("SOURCE", json.dumps(vod))
    async with chromium.tab(b_url) as tab:
        await tab.page.route(page_url, lambda route: route.fulfill(
            status=200, content_type="text/html", body=html))  # fmt: skip
        await tab.page.goto(page_url)
        async with asyncio.timeout(60):  # to its end, through B's leg
            while True:
                state = await tab.page.evaluate("window.state()")
                assert not state["errors"], state
                if state["ended"]:
                    break
                await asyncio.sleep(0.2)
    assert state["time"] > a_duration + 1, (state, a_duration)
    assert any(f.startswith("leg-1/seg-") for f in state["fragments"]), state
    assert any(not f.startswith("leg-") for f in state["fragments"]), state
