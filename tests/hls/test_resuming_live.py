"""A packaging process killed during a live broadcast, on the whole app as `livecore serve`
runs it (packaging processes, not threads) with a real aiortc publisher over WHIP: the same
broadcast goes on after a discontinuity, FFmpeg reads the live playlist across it, and the
recording is one, playable end to end."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from dataclasses import replace
from typing import Any

import asyncpg
import av
import psutil

from livecore.config import HlsConfig
from livecore.hls.packaging_host import PROCESS_NAME
from tests.conftest import Client, MakeClient, create_stream, register, wait_state
from tests.support.media import clip
from tests.support.rtc import AskedKeyframesTrack, publish

SLUG = "premiere"
PLAYLIST = f"/hls/{SLUG}/source/index.m3u8"
# 1 s segments: the test sees several on each side of the death in a few seconds. One
# packaging process, so the one killed is the broadcast's. Blocking reloads may wait out a
# process being spawned on a busy machine.
HLS = HlsConfig(
    renditions=("source",), segment_target_s=1.0, packaging_processes=1,
    blocking_reload_timeout_s=30.0,
)  # fmt: skip


def _packaging_pids() -> list[int]:
    """This test's packaging processes (children of the test process, which runs the app)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == PROCESS_NAME:
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


async def _playlist(client: Client, ok: Any, timeout_s: float = 60) -> str:
    """The live media playlist once `ok(text)` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        resp = await client.get(PLAYLIST)
        text = await resp.text()
        if resp.status == 200 and ok(text):
            return text
        assert time.monotonic() < deadline, f"{resp.status}\n{text}"
        await asyncio.sleep(0.2)


def _msns(text: str) -> list[int]:
    """Media sequence numbers of the segments a playlist lists, in order."""
    first = int(next(line for line in text.splitlines() if "MEDIA-SEQUENCE:" in line)[22:])
    return [first + i for i in range(text.count("#EXTINF:"))]


def _after_discontinuity(text: str) -> str:
    return text.partition("#EXT-X-DISCONTINUITY\n")[2]


def _runs(times: list[float]) -> list[list[float]]:
    """Presentation times split where they go back (each side of a discontinuity)."""
    runs: list[list[float]] = [[]]
    for a, b in itertools.pairwise([float("-inf"), *times]):
        if b <= a:
            runs.append([])
        runs[-1].append(b)
    return runs


def _read_across(url: str, want_after: int) -> list[list[float]]:
    """Video presentation times FFmpeg demuxes from the live playlist's first listed segment
    on, until `want_after` packets past the discontinuity (bounded: at most 3000 packets)."""
    options = {"http_persistent": "0", "live_start_index": "0"}
    times: list[float] = []
    with av.open(url, options=options, timeout=20) as container:
        video = container.streams.video[0]
        assert video.time_base is not None
        for packet in itertools.islice(container.demux(video), 3000):
            if packet.pts is None:
                continue
            times.append(float(packet.pts * video.time_base))
            runs = _runs(times)
            if len(runs) > 1 and len(runs[-1]) >= want_after:
                break
    return _runs(times)


def _vod_video_times(url: str) -> list[float]:
    with av.open(url, options={"http_persistent": "0"}, timeout=20) as container:
        video = container.streams.video[0]
        assert video.time_base is not None
        return [float(p.pts * video.time_base) for p in container.demux(video) if p.pts is not None]


async def test_a_killed_packaging_process_and_the_broadcast_goes_on(
    make_client: MakeClient, dsn: str
) -> None:
    client = await make_client(hls=HLS)
    creator = await register(client, "maker@example.com", creator=True)
    key = await create_stream(client, creator["token"], SLUG)
    # Keyframes only when asked, as a browser's encoder: the packaging taking over can only
    # start if the publisher is asked for one.
    track = AskedKeyframesTrack()
    pub = await publish(client.session, str(client.make_url(f"/whip/{SLUG}")), key, clip(),
                        live_video=track)  # fmt: skip
    try:
        await wait_state(client, SLUG, "live")
        before = await _playlist(client, lambda t: t.count("#EXTINF:") >= 3)
        conn = await asyncpg.connect(dsn)
        try:
            rows_before = await conn.fetch("SELECT id, ended_at FROM broadcasts")
        finally:
            await conn.close()
        assert len(rows_before) == 1 and rows_before[0]["ended_at"] is None
        # A blocking reload waiting for the next segment when the process dies.
        next_msn = _msns(before)[-1] + 2
        waiting = asyncio.create_task(client.get(f"{PLAYLIST}?_HLS_msn={next_msn}"))
        (pid,) = await asyncio.to_thread(_packaging_pids)
        requests = track.requests
        os.kill(pid, signal.SIGKILL)  # the packaging process this test's app started

        resumed = await _playlist(client, lambda t: _after_discontinuity(t).count("#EXTINF:") >= 2)
        assert resumed.count("#EXT-X-DISCONTINUITY\n") == 1 and "#EXT-X-ENDLIST" not in resumed
        assert "#EXT-X-PART:" in _after_discontinuity(resumed)  # parts go on too
        msns = _msns(resumed)
        assert msns[0] >= _msns(before)[0] and msns == sorted(set(msns))
        assert track.requests > requests  # the keyframe to go on from was asked for
        answer = await asyncio.wait_for(waiting, 60)
        assert answer.status == 200, await answer.text()
        assert next_msn in _msns(await answer.text())
        # The dead process is reaped (no zombie left), and one process packages the broadcast.
        deadline = time.monotonic() + 30
        while pid in (pids := await asyncio.to_thread(_packaging_pids)):
            assert time.monotonic() < deadline, f"{pid} was never reaped"
            await asyncio.sleep(0.1)
        assert len(pids) == 1, pids

        runs = await asyncio.to_thread(_read_across, str(client.make_url(PLAYLIST)), 30)
        assert len(runs) >= 2 and len(runs[0]) >= 15 and len(runs[-1]) >= 30, [len(r) for r in runs]

        body = await (await client.get(f"/api/v1/streams/{SLUG}")).json()
        assert body["stream"]["state"] == "live"
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetch("SELECT id, ended_at FROM broadcasts") == rows_before
        finally:
            await conn.close()
        metrics = await (await client.get("/metrics")).text()
        assert "livecore_hls_packaging_restarts_total 1.0" in metrics
        assert "livecore_hls_packaging_restarts_exhausted_total 0.0" in metrics
    finally:
        await client.delete(pub.location)
        await pub.close()
    await wait_state(client, SLUG, "offline")

    deadline = time.monotonic() + 30
    while not (found := (await (await client.get(f"/api/v1/streams/{SLUG}/recordings")).json())[
        "recordings"
    ]):  # fmt: skip
        assert time.monotonic() < deadline, "no recording listed"
        await asyncio.sleep(0.2)
    assert len(found) == 1
    url = found[0]["url"]
    vod = await (await client.get(url)).text()
    assert vod.count("#EXT-X-DISCONTINUITY\n") == 1 and vod.rstrip().endswith("#EXT-X-ENDLIST")
    listed = [int(line[4:-4]) for line in vod.splitlines() if line.startswith("seg-")]
    assert listed == list(range(listed[0], listed[0] + len(listed))), vod
    times = await asyncio.to_thread(_vod_video_times, str(client.make_url(url)))
    runs = _runs(times)
    assert len(runs) == 2 and all(len(run) >= 30 for run in runs), [len(r) for r in runs]


async def _new_packaging_pid(old: int | None) -> int:
    deadline = time.monotonic() + 60
    while not (pids := [p for p in await asyncio.to_thread(_packaging_pids) if p != old]):
        assert time.monotonic() < deadline, "no new packaging process"
        await asyncio.sleep(0.1)  # spawned in a thread: nothing to await
    return pids[0]


async def test_a_broadcast_whose_packaging_keeps_dying_ends_its_hls(
    make_client: MakeClient,
) -> None:
    """One restart allowed: the second death ends the broadcast's HLS as failed (as before
    restarts existed; the publisher may still be sending), and no process is started for it
    again."""
    client = await make_client(hls=replace(HLS, packaging_restarts=1))
    creator = await register(client, "maker@example.com", creator=True)
    key = await create_stream(client, creator["token"], SLUG)
    pub = await publish(client.session, str(client.make_url(f"/whip/{SLUG}")), key, clip())
    try:
        await wait_state(client, SLUG, "live")
        await _playlist(client, lambda t: "#EXTINF:" in t)
        first = await _new_packaging_pid(None)
        os.kill(first, signal.SIGKILL)  # the packaging process this test's app started
        second = await _new_packaging_pid(first)
        os.kill(second, signal.SIGKILL)  # the one that took the broadcast over
        ended = await _playlist(client, lambda t: "#EXT-X-ENDLIST" in t)
        assert "#EXT-X-PRELOAD-HINT" not in ended
        metrics = await (await client.get("/metrics")).text()
        assert "livecore_hls_packaging_restarts_total 1.0" in metrics
        assert "livecore_hls_packaging_restarts_exhausted_total 1.0" in metrics
        assert "livecore_hls_packaging_process_deaths_total 2.0" in metrics
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(_packaging_pids):  # the dead are reaped, none spawned
            assert time.monotonic() < deadline, await asyncio.to_thread(_packaging_pids)
            await asyncio.sleep(0.1)
    finally:
        await client.delete(pub.location)
        await pub.close()
