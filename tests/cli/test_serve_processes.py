"""`livecore serve --processes 2` on the embedded defaults, as an operator starts it: two
nodes behind one port serving WHIP, HLS, WHEP and chat (each reaching the other's stream and
sessions), and nothing left running after SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiortc import RTCRtpReceiver, RTCSessionDescription

from livecore.sfu.media import h264_is_keyframe
from livecore.sfu.passthrough import EncodedFrame, install_passthrough
from tests.support import media
from tests.support.rtc import loopback_pc, publish
from tests.support.serve_box import PASSWORD
from tests.support.serve_box import box_env as _env
from tests.support.serve_box import clean_up as _clean_up
from tests.support.serve_box import create_admin as _create_admin
from tests.support.serve_box import describe as _describe
from tests.support.serve_box import is_alive as _is_alive
from tests.support.serve_box import ready as _ready
from tests.support.serve_box import start as _start
from tests.support.services import free_port

Json = dict[str, Any]


def _started_by(pid: int, data_dir: Path) -> list[psutil.Process]:
    """The processes a running `serve --processes 2` started: checked to be there."""
    parent = psutil.Process(pid)
    direct = parent.children()
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    # pg_ctl's postgres is not serve's child: it is known by its PID file.
    ours = [*parent.children(recursive=True), psutil.Process(postmaster)]
    assert _describe(ours[-1]).startswith("postgres")
    redis_servers = [p for p in direct if _describe(p).startswith("redis-server")]
    assert len(redis_servers) == 1, [_describe(p) for p in direct]
    assert sum("--supervised" in _describe(p) for p in direct) == 2
    return ours


def _process(pid: int, index: int) -> int | None:
    """The PID of serve's process `index` (1, 2)."""
    for child in psutil.Process(pid).children():
        if f"--supervised {index}," in _describe(child):
            return child.pid
    return None


def _kill_process(pid: int, index: int) -> int:
    killed = _process(pid, index)
    assert killed is not None
    process = psutil.Process(killed)
    process.kill()
    process.wait(30)  # gone (reaped by serve), so no request can reach it any more
    return killed


def _left_running(ours: list[psutil.Process]) -> list[str]:
    # postgres and redis-server are stopped before serve exits; only reaping may lag.
    deadline = time.monotonic() + 10
    while any(map(_is_alive, ours)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [f"{p.pid} {_describe(p)}" for p in ours if _is_alive(p)]


async def _json(resp: aiohttp.ClientResponse, status: int = 200) -> Json:
    assert resp.status == status, await resp.text()
    body: Json = await resp.json()
    return body


async def _nodes(http: aiohttp.ClientSession, base: str, token: str) -> list[Json]:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{base}/api/v1/admin/nodes", headers=headers) as resp:
        nodes: list[Json] = (await _json(resp))["nodes"]
        return nodes


async def _owner(http: aiohttp.ClientSession, base: str, token: str, slug: str) -> Json:
    async with asyncio.timeout(30):
        while True:
            for node in await _nodes(http, base, token):
                if any(s["slug"] == slug for s in node["streams"]):
                    return node
            await asyncio.sleep(0.1)


async def _edge_upstream(http: aiohttp.ClientSession, node: Json) -> float:
    """How many HLS requests this process answered by asking the stream's owner."""
    async with http.get(f"{node['internal_url']}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('livecore_edge_requests_total{outcome="upstream"}'))  # fmt: skip


async def _state(http: aiohttp.ClientSession, base: str, slug: str) -> str:
    async with http.get(f"{base}/api/v1/streams/{slug}") as resp:
        state: str = (await _json(resp))["stream"]["state"]
        return state


async def _first_keyframe(http: aiohttp.ClientSession, url: str) -> bool:
    """WHEP-play `url` until the first video frame: whether it is an H.264 keyframe."""
    install_passthrough()  # received video stays encoded, as the server's own receivers get it
    pc = loopback_pc()
    video = pc.addTransceiver("video", direction="recvonly")
    caps = RTCRtpReceiver.getCapabilities("video")
    assert caps is not None
    video.setCodecPreferences([c for c in caps.codecs if c.mimeType.lower() == "video/h264"])
    try:
        await pc.setLocalDescription(await pc.createOffer())
        sdp = {"Content-Type": "application/sdp"}
        async with http.post(url, data=pc.localDescription.sdp, headers=sdp) as resp:
            assert resp.status == 201, await resp.text()
            answer, location = await resp.text(), resp.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        async with asyncio.timeout(30):
            frame = await video.receiver.track.recv()
        async with http.delete(url.split("/whep/")[0] + location) as resp:
            assert resp.status == 200
        return isinstance(frame, EncodedFrame) and h264_is_keyframe(frame.data)
    finally:
        await pc.close()


async def _get(url: str) -> bytes:
    # A new connection for each request: the kernel spreads connections, not requests.
    async with aiohttp.ClientSession() as fresh, fresh.get(url) as resp:
        assert resp.status == 200, (url, resp.status, await resp.text())
        return await resp.read()


@asynccontextmanager
async def _chatter(
    http: aiohttp.ClientSession, url: str, token: str
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, list[str]]]:
    """A chat socket, once joined (its hello read), and the lines it has received since."""
    ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
    lines: list[str] = []
    joined = asyncio.Event()

    async def read() -> None:
        async for message in ws:
            for event in json.loads(message.data):
                if event["type"] == "hello":
                    joined.set()
                elif event["type"] == "chat":
                    lines.append(event["text"])

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(30):
            await joined.wait()  # lines said before it are in its hello's history
        yield ws, lines
    finally:
        await ws.close()
        await asyncio.gather(reader, return_exceptions=True)


async def _until(check: Any) -> None:
    async with asyncio.timeout(20):
        while not check():  # noqa: ASYNC110 (the lines a reader task appends)
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_two_processes_serve_whip_hls_and_chat_and_leave_nothing_running(
    tmp_path: Path,
) -> None:
    data_dir, port = tmp_path / "var", free_port()
    env = _env(data_dir, port)
    await asyncio.to_thread(_create_admin, env)
    proc = await asyncio.to_thread(_start, env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    ours: list[psutil.Process] = []  # everything the server started, to check (and clean up)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await _ready(http, base, proc)
            login = {"email": "root@example.com", "password": PASSWORD}
            admin = await _json(await http.post(f"{base}/api/v1/auth/login", json=login))
            # /readyz answers as soon as one process serves; the other may still be starting.
            async with asyncio.timeout(120):
                while len(nodes := await _nodes(http, base, admin["token"])) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            assert len(nodes) == 2, nodes
            assert len({n["internal_url"] for n in nodes}) == 2
            assert all(n["internal_url"] != base for n in nodes)

            sign_up = {"email": "cook@example.com", "password": PASSWORD,
                       "display_name": "Cook", "creator": True}  # fmt: skip
            creator = await _json(await http.post(f"{base}/api/v1/auth/register", json=sign_up),
                                  201)  # fmt: skip
            headers = {"Authorization": f"Bearer {creator['token']}"}
            made = await _json(await http.post(f"{base}/api/v1/streams", json={"slug": "duo"},
                                               headers=headers), 201)  # fmt: skip

            # WHIP through the shared port: whichever process takes it holds the stream.
            pub = await publish(http, f"{base}/whip/duo", made["stream_key"], media.clip())
            try:
                owner = await _owner(http, base, admin["token"], "duo")
                (other,) = [n for n in nodes if n["id"] != owner["id"]]

                # HLS through the shared port, a connection per request: the process that does
                # not hold the stream answers some of them, from the owner, with its bytes.
                async with asyncio.timeout(60):
                    while True:
                        playlist = (await _get(f"{base}/hls/duo/source/index.m3u8")).decode()
                        parts = [ln.split('URI="')[1].split('"')[0] for ln in playlist.splitlines()
                                 if ln.startswith("#EXT-X-PART:")]  # fmt: skip
                        if parts:
                            break
                        await asyncio.sleep(0.2)
                part = f"/hls/duo/source/{parts[-1]}"
                from_owner = await _get(f"{owner['internal_url']}{part}")
                assert await _get(f"{base}/hls/duo/master.m3u8")
                async with asyncio.timeout(60):
                    while await _edge_upstream(http, other) == 0:
                        assert await _get(f"{base}{part}") == from_owner
                        await _get(f"{base}/hls/duo/source/index.m3u8")

                # Chat: a socket on each process (their own addresses) sees the other's lines.
                one = f"{owner['internal_url']}/ws/duo"
                two = f"{other['internal_url']}/ws/duo"
                async with (
                    _chatter(http, one, creator["token"]) as (ws_one, heard_one),
                    _chatter(http, two, admin["token"]) as (ws_two, heard_two),
                ):
                    await ws_one.send_json({"type": "chat", "text": "from one", "nonce": "1"})
                    await _until(lambda: "from one" in heard_two)
                    await ws_two.send_json({"type": "chat", "text": "from two", "nonce": "2"})
                    await _until(lambda: "from two" in heard_one)

                # WHEP on the process that does not hold the stream plays from the owner.
                assert await _first_keyframe(http, f"{other['internal_url']}/whep/duo")

                # The process without the stream, killed outright, is started again on the same
                # sockets: a request to its own address meanwhile waits in the queue the parent
                # keeps, then is answered. Starting, it leaves the other's broadcast live.
                index = int(other["id"].rsplit("/", 1)[1])
                killed = await asyncio.to_thread(_kill_process, proc.pid, index)
                async with http.get(f"{other['internal_url']}/readyz") as resp:
                    assert resp.status == 200
                assert await asyncio.to_thread(_process, proc.pid, index) not in (None, killed)
                log = await asyncio.to_thread((tmp_path / "serve.log").read_text)
                assert (f"process {index} (pid {killed}, node {other['id']}) was killed by "
                        "SIGKILL") in log  # fmt: skip
                assert await _state(http, base, "duo") == "live"
                assert (await _owner(http, base, admin["token"], "duo"))["id"] == owner["id"]

                # The publisher's DELETE on that process ends the broadcast held by the other.
                async with http.delete(f"{other['internal_url']}{pub.location}") as resp:
                    assert resp.status == 200, await resp.text()
                async with asyncio.timeout(30):
                    while await _state(http, base, "duo") != "offline":  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
            finally:
                await pub.close()

            log = await asyncio.to_thread((tmp_path / "serve.log").read_text)
            # The start-up log says which process is which node, on which ports.
            assert f"livecore listening on http://127.0.0.1:{port} with 2 processes" in log
            for i, n in enumerate(sorted(nodes, key=lambda n: str(n["id"])), 1):
                assert (f"livecore.serve[p{i}]: process {i} of 2 listening on http://127.0.0.1:"
                        f"{port} (shared) as node {n['id']}, own address {n['internal_url']}"
                        ) in log  # fmt: skip

        ours = await asyncio.to_thread(_started_by, proc.pid, data_dir)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 120) == 0
        left = await asyncio.to_thread(_left_running, ours)
        assert not left, left
    finally:
        await asyncio.to_thread(_clean_up, proc, data_dir, ours)


@asynccontextmanager
async def _states(http: aiohttp.ClientSession, url: str, token: str) -> AsyncIterator[list[str]]:
    """A chat socket, once joined: the stream states it is told since (`live`, `offline`)."""
    ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
    states: list[str] = []
    joined = asyncio.Event()

    async def read() -> None:
        async for message in ws:
            for event in json.loads(message.data):
                if event["type"] == "hello":
                    joined.set()
                elif event["type"] == "stream_state":
                    states.append(event["state"])

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(30):
            await joined.wait()
        yield states
    finally:
        await ws.close()
        await asyncio.gather(reader, return_exceptions=True)


async def _playlist_with_segment(url: str) -> str:
    async with asyncio.timeout(60):
        while True:
            async with aiohttp.ClientSession() as fresh, fresh.get(url) as resp:
                text = await resp.text()
                if resp.status == 200 and "#EXTINF" in text:
                    return text
            await asyncio.sleep(0.2)


@dataclass
class _Box:
    """`serve --processes 2` with an admin: `victim` and `sibling` are its two processes (as
    the admin nodes view lists them), `proc` the parent."""

    http: aiohttp.ClientSession
    base: str
    admin: Json
    victim: Json
    sibling: Json
    proc: subprocess.Popen[bytes]


@asynccontextmanager
async def _box_of_two(tmp_path: Path) -> AsyncIterator[_Box]:
    """Start the box, wait for both processes; afterwards SIGTERM it (it must exit 0) and
    check nothing is left running."""
    data_dir, port = tmp_path / "var", free_port()
    env = _env(data_dir, port)
    await asyncio.to_thread(_create_admin, env)
    proc = await asyncio.to_thread(_start, env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await _ready(http, base, proc)
            login = {"email": "root@example.com", "password": PASSWORD}
            admin = await _json(await http.post(f"{base}/api/v1/auth/login", json=login))
            async with asyncio.timeout(120):
                while len(nodes := await _nodes(http, base, admin["token"])) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            victim, sibling = sorted(nodes, key=lambda n: str(n["id"]))
            yield _Box(http, base, admin, victim, sibling, proc)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 120) == 0
    finally:
        await asyncio.to_thread(_clean_up, proc, data_dir, [])


async def _recording_plays(http: aiohttp.ClientSession, node: Json, slug: str) -> Json:
    """Wait until the stream's one recording is listed on `node`; it plays from there."""
    async with asyncio.timeout(30):
        while True:
            url = f"{node['internal_url']}/api/v1/streams/{slug}/recordings"
            listed = (await _json(await http.get(url)))["recordings"]
            if listed:
                break
            await asyncio.sleep(0.1)
    [recording] = listed
    vod = f"{node['internal_url']}/vod/{recording['id']}/vod.m3u8"
    seen = await asyncio.to_thread(media.hls_video_packets, vod, 1.0)
    assert seen and seen[0][1]
    return dict(recording)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_process_killed_and_started_again_ends_its_broadcasts_once_and_not_its_siblings(
    tmp_path: Path,
) -> None:
    async with _box_of_two(tmp_path) as box:
        http, base, admin, proc = box.http, box.base, box.admin, box.proc
        victim, sibling = box.victim, box.sibling
        sign_up = {"email": "cook@example.com", "password": PASSWORD,
                   "display_name": "Cook", "creator": True}  # fmt: skip
        creator = await _json(await http.post(f"{base}/api/v1/auth/register", json=sign_up),
                              201)  # fmt: skip
        headers = {"Authorization": f"Bearer {creator['token']}"}
        keys, stream_ids = {}, {}
        for slug in ("doomed", "kept"):
            made = await _json(await http.post(f"{base}/api/v1/streams", json={"slug": slug},
                                               headers=headers), 201)  # fmt: skip
            keys[slug], stream_ids[slug] = made["stream_key"], made["stream"]["id"]

        # Each process's own address takes one publish: it holds that stream.
        pubs = [
            await publish(http, f"{victim['internal_url']}/whip/doomed", keys["doomed"],
                          media.clip()),
            await publish(http, f"{sibling['internal_url']}/whip/kept", keys["kept"],
                          media.clip()),
        ]  # fmt: skip
        try:
            assert (await _owner(http, base, admin["token"], "doomed"))["id"] == victim["id"]
            assert (await _owner(http, base, admin["token"], "kept"))["id"] == sibling["id"]
            # The recording holds a complete segment before the process dies.
            doomed_hls = f"{victim['internal_url']}/hls/doomed/source/index.m3u8"
            await _playlist_with_segment(doomed_hls)
            async with (
                _states(http, f"{sibling['internal_url']}/ws/doomed", admin["token"]) as doomed,
                _states(http, f"{sibling['internal_url']}/ws/kept", admin["token"]) as kept,
            ):
                index = int(victim["id"].rsplit("/", 1)[1])
                await asyncio.to_thread(_kill_process, proc.pid, index)
                # Started again at once under the same node id (it never leaves the
                # directory), it ends its broadcast: viewers on the other process are told.
                async with asyncio.timeout(120):
                    while "offline" not in doomed:  # noqa: ASYNC110 (the reader appends)
                        await asyncio.sleep(0.1)
                assert await _state(http, sibling["internal_url"], "doomed") == "offline"

                # Its recording is finished: listed, and it plays from the other process.
                recording = await _recording_plays(http, sibling, "doomed")

                # The sibling's broadcast goes on: live, still packaged, its viewers told
                # nothing.
                assert await _state(http, base, "kept") == "live"
                playlist = f"{sibling['internal_url']}/hls/kept/source/index.m3u8"
                before = await _playlist_with_segment(playlist)
                async with asyncio.timeout(60):
                    while await _playlist_with_segment(playlist) == before:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                assert (await _owner(http, base, admin["token"], "kept"))["id"] == sibling["id"]

                # Ended once: one audited end, one offline for its viewers.
                audit = f"{base}/api/v1/admin/audit?action=broadcast.node_lost"
                async with http.get(audit, headers={"Authorization": f"Bearer {admin['token']}"}
                                    ) as resp:  # fmt: skip
                    entries = (await _json(resp))["entries"]
                assert [(e["target_id"], e["details"]) for e in entries] == [
                    (str(recording["id"]), {"stream_id": stream_ids["doomed"],
                                            "node_id": victim["id"], "restarted": True})
                ], entries  # fmt: skip
                assert doomed == ["offline"]
                assert "offline" not in kept
        finally:
            for pub in pubs:
                await pub.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_publisher_back_while_its_process_restarts_goes_on_and_the_old_recording_is_kept(
    tmp_path: Path,
) -> None:
    async with _box_of_two(tmp_path) as box:
        http, base, admin, proc = box.http, box.base, box.admin, box.proc
        victim, sibling = box.victim, box.sibling
        made = await _json(
            await http.post(f"{base}/api/v1/streams", json={"slug": "duo"},
                            headers={"Authorization": f"Bearer {admin['token']}"}), 201,
        )  # fmt: skip
        key = made["stream_key"]
        pubs = [await publish(http, f"{victim['internal_url']}/whip/duo", key, media.clip())]
        try:
            assert (await _owner(http, base, admin["token"], "duo"))["id"] == victim["id"]
            await _playlist_with_segment(f"{victim['internal_url']}/hls/duo/source/index.m3u8")
            index = int(victim["id"].rsplit("/", 1)[1])
            await asyncio.to_thread(_kill_process, proc.pid, index)
            # The publisher comes back at once, on the other process.
            pubs.append(
                await publish(http, f"{sibling['internal_url']}/whip/duo", key, media.clip())
            )
            # Once the killed process serves again (it ended what was its own first), the
            # stream is live on the sibling: the restarted process did not end it.
            async with http.get(f"{victim['internal_url']}/readyz") as resp:
                assert resp.status == 200
            assert (await _owner(http, base, admin["token"], "duo"))["id"] == sibling["id"]
            assert await _state(http, base, "duo") == "live"
            await _playlist_with_segment(f"{sibling['internal_url']}/hls/duo/source/index.m3u8")
            # The broadcast the killed process carried has its recording finished.
            await _recording_plays(http, sibling, "duo")
            assert await _state(http, base, "duo") == "live"
        finally:
            for pub in pubs:
                await pub.close()
