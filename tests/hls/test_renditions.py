"""The renditions ladder: transcoder worker processes, keyframe alignment, dropping a rung
that falls behind or crashes, VP8 in. Media is made here with PyAV and read back with PyAV."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from livecore.config import ConfigError, HlsConfig
from livecore.errors import json_errors
from livecore.hls import routes
from livecore.hls.metrics import HlsMetrics
from livecore.hls.origin import HlsOrigin
from livecore.hls.packager import Packager
from livecore.hls.renditions import Rendition
from livecore.sfu.hub import StreamHub
from livecore.sfu.media import MediaUnit
from tests.hls.conftest import CONFIG, Client
from tests.hls.probe import Probe, probe
from tests.support.media import Clip, clip, encode_opus, encode_vp8

LADDER = replace(CONFIG, renditions=("source", "360p"))


def _hd() -> Clip:
    return clip(seconds=6, width=1280, height=720, keyint=30)


async def _publish(hub: StreamHub, units: Sequence[MediaUnit], *, speed: float | None) -> None:
    """Publish at `speed` x real time (None: all at once), then end the broadcast."""
    loop = asyncio.get_running_loop()
    start, first = loop.time(), units[0].pts_s
    for unit in units:
        if speed is not None and (delay := start + (unit.pts_s - first) / speed - loop.time()) > 0:
            await asyncio.sleep(delay)
        hub.publish(unit)
    hub.end()


async def _until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _keyframe_times(p: Probe) -> list[float]:
    return [round(t, 3) for t, key in p.video if key]


@dataclass
class Origin:
    origin: HlsOrigin
    client: Client
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def thumbnail_pool() -> Iterator[Executor]:
    # Thumbnails are not under test here: a thread stands in for the process pool.
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.fixture
async def origin(
    tmp_path: Path, thumbnail_pool: Executor, aiohttp_client: AiohttpClient
) -> AsyncIterator[Origin]:
    async def workers() -> Executor:
        return thumbnail_pool

    registry = CollectorRegistry()
    metrics = HlsMetrics(registry)
    hls = HlsOrigin(tmp_path / "recordings", LADDER, workers=workers, metrics=metrics)
    app = web.Application(middlewares=[json_errors])
    routes.setup(app, hls, LADDER, metrics=metrics)
    client = await aiohttp_client(app)
    yield Origin(hls, client, registry)
    await hls.close()


async def test_360p_rendition_is_keyframe_aligned_and_listed(origin: Origin) -> None:
    c = await asyncio.to_thread(_hd)
    hub = StreamHub(1, "demo", queue_size=10_000)
    directory = origin.origin.attach(hub)
    rendition = origin.origin.renditions("demo")["360p"]
    publisher = asyncio.create_task(_publish(hub, c.interleaved(), speed=2.0))
    try:
        await _until(lambda: rendition.listed)
        resp = await origin.client.get("/hls/demo/master.m3u8")
        assert resp.status == 200
        master = await resp.text()
    finally:
        await publisher
    await origin.origin.wait_finished("demo")
    # The recording's size counts every rendition's segments, as they take the disk.
    finished = origin.origin.recording_of(hub)
    assert finished is not None
    recording = await finished
    files = await asyncio.to_thread(
        lambda: [(f.parent.name, f.stat().st_size) for f in directory.rglob("seg-*")]
    )
    assert recording.directory == directory
    assert recording.size_bytes == sum(size for _, size in files)
    assert "360p" in {parent for parent, _ in files}

    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF")]
    uris = [line for line in master.splitlines() if line.endswith("index.m3u8")]
    assert uris == ["source/index.m3u8", "360p/index.m3u8"]
    assert "RESOLUTION=1280x720" in variants[0] and "RESOLUTION=640x360" in variants[1]
    assert 'CODECS="avc1.4d' in variants[1] and ',mp4a.40.2"' in variants[1]
    bandwidth = [int(v.split("BANDWIDTH=")[1].split(",")[0]) for v in variants]
    assert bandwidth[1] < bandwidth[0]

    assert rendition.state == "ended" and rendition.transcoder is not None
    assert rendition.transcoder.exitcode == 0
    source = await asyncio.to_thread(probe, str(directory / "vod.m3u8"))
    low = await asyncio.to_thread(probe, str(directory / "360p" / "vod.m3u8"))
    assert (low.video_codec, low.width, low.height) == ("h264", 640, 360)
    assert low.audio_codec == "aac" and len(low.audio) > 0
    assert len(low.video) == len(c.video)
    expected = [round(u.pts_s, 3) for u in c.video if u.keyframe]
    assert _keyframe_times(source) == expected
    assert _keyframe_times(low) == expected
    # Same keyframes, same packaging rule: the segments line up across the ladder.
    views = origin.origin.lookup("demo")
    assert views is not None
    p_src, p_low = views["source"], rendition.packager
    assert isinstance(p_src, Packager)
    assert [round(s.duration_s, 3) for s in p_low.segments] == [
        round(s.duration_s, 3) for s in p_src.segments
    ]
    for a, b in zip(p_src.segments, p_low.segments, strict=True):
        assert abs(a.program_date_time - b.program_date_time) < 0.1
    assert origin.metric("livecore_hls_transcode_frames_total", rendition="360p") == len(c.video)
    assert origin.metric("livecore_hls_renditions_dropped_total", reason="behind") == 0
    assert origin.metric("livecore_hls_transcoder_queue_units", rendition="360p") == 0
    assert origin.metric("livecore_hls_transcoder_processes", rendition="360p") == 0


async def test_crashed_worker_drops_the_rendition_and_the_source_goes_on(origin: Origin) -> None:
    c = await asyncio.to_thread(_hd)
    hub = StreamHub(1, "demo", queue_size=10_000)
    origin.origin.attach(hub)
    rendition = origin.origin.renditions("demo")["360p"]
    publisher = asyncio.create_task(_publish(hub, c.interleaved(), speed=2.0))
    try:
        await _until(lambda: rendition.listed)
        assert list(origin.origin.lookup("demo") or {}) == ["source", "360p"]
        assert rendition.transcoder is not None and rendition.transcoder.pid is not None
        os.kill(rendition.transcoder.pid, signal.SIGKILL)
        await _until(lambda: rendition.state == "dropped")
        assert rendition.drop_reason == "crashed"
        assert list(origin.origin.lookup("demo") or {}) == ["source"]
        master = await (await origin.client.get("/hls/demo/master.m3u8")).text()
        assert "360p" not in master and "source/index.m3u8" in master
        playlist = await (await origin.client.get("/hls/demo/360p/index.m3u8")).text()
        assert "no such rendition" in playlist
    finally:
        await publisher
    await origin.origin.wait_finished("demo")
    source = origin.origin.lookup("demo")["source"]  # type: ignore[index]
    assert isinstance(source, Packager) and source.ended and not source.failed
    assert source.dropped_units == 0 and sum(s.video_frames for s in source.segments) == len(
        c.video
    )
    assert rendition.packager.ended and rendition.packager.media_state().ended  # ENDLIST
    assert rendition.transcoder.exitcode == -signal.SIGKILL
    assert origin.metric("livecore_hls_renditions_dropped_total", reason="crashed") == 1
    assert origin.metric("livecore_hls_transcoder_processes", rendition="360p") == 0


async def test_rung_not_below_the_source_is_skipped(origin: Origin) -> None:
    small = clip(2.0)  # 640x360: a 360p rung would be an upscale
    hub = StreamHub(1, "small", queue_size=10_000)
    origin.origin.attach(hub)
    await _publish(hub, small.interleaved(), speed=None)
    await origin.origin.wait_finished("small")
    rendition = origin.origin.renditions("small")["360p"]
    assert rendition.state == "skipped" and rendition.transcoder is None
    assert rendition.source_size == (640, 360)
    assert list(origin.origin.lookup("small") or {}) == ["source"]


async def test_worker_behind_drops_the_rendition_not_the_source(tmp_path: Path) -> None:
    c = await asyncio.to_thread(_hd)
    registry = CollectorRegistry()
    metrics = HlsMetrics(registry)
    hub = StreamHub(1, "slow", queue_size=10_000)
    source = Packager(hub.subscribe("hls"), tmp_path / "source", CONFIG, queue_units=10_000)
    # A window of two units: published all at once, the worker is behind at the third.
    rendition = Rendition(hub, "360p", tmp_path / "360p", CONFIG, metrics=metrics, max_in_flight=2)
    source.start()
    task = asyncio.create_task(rendition.run())
    await _publish(hub, c.interleaved(), speed=None)
    await asyncio.wait_for(task, 30)
    await source.wait_closed()
    assert rendition.state == "dropped" and rendition.drop_reason == "behind"
    assert not rendition.listed
    assert rendition.packager.ended
    assert rendition.transcoder is not None and rendition.transcoder.exitcode is not None
    assert source.ended and not source.failed and source.dropped_units == 0
    assert sum(s.video_frames for s in source.segments) == len(c.video)
    value = registry.get_sample_value("livecore_hls_renditions_dropped_total", {"reason": "behind"})
    assert value == 1


async def test_vp8_publisher_gets_an_h264_360p_rendition(tmp_path: Path) -> None:
    video = await asyncio.to_thread(encode_vp8, 60, 854, 480, 30)
    audio = await asyncio.to_thread(encode_opus, 100)
    units = sorted([*video, *audio], key=lambda u: (u.pts_s, u.kind != "video"))
    hub = StreamHub(1, "vp8", queue_size=10_000)
    rendition = Rendition(hub, "360p", tmp_path / "360p", CONFIG)
    task = asyncio.create_task(rendition.run())
    await _publish(hub, units, speed=4.0)
    await asyncio.wait_for(task, 30)
    assert rendition.state == "ended" and rendition.source_size == (854, 480)
    result = await asyncio.to_thread(probe, str(tmp_path / "360p" / "vod.m3u8"))
    assert (result.video_codec, result.width, result.height) == ("h264", 640, 360)
    assert result.audio_codec == "aac" and len(result.video) == len(video)
    assert _keyframe_times(result) == [round(u.pts_s, 3) for u in video if u.keyframe]


def test_ladder_names_are_validated() -> None:
    assert HlsConfig().renditions == ("source", "360p")
    for bad in (("source", "99p"), ("source", "720"), ("360p",), ("source", "360p", "360p")):
        with pytest.raises(ConfigError, match=r"^hls\.renditions: "):
            HlsConfig(renditions=bad)


async def test_stop_ends_the_worker_process(tmp_path: Path) -> None:
    c = await asyncio.to_thread(_hd)
    hub = StreamHub(1, "stop", queue_size=10_000)
    rendition = Rendition(hub, "360p", tmp_path / "360p", CONFIG)
    task = asyncio.create_task(rendition.run())
    publisher = asyncio.create_task(_publish(hub, c.interleaved(), speed=2.0))
    try:
        await _until(lambda: rendition.transcoder is not None)
        transcoder = rendition.transcoder
        assert transcoder is not None
        await _until(lambda: transcoder.frames_out > 0)
        rendition.stop()
        await asyncio.wait_for(task, 30)
    finally:
        publisher.cancel()
        await asyncio.wait([publisher])
        hub.end()
    assert rendition.state == "ended" and rendition.packager.ended
    assert rendition.transcoder is not None and rendition.transcoder.exitcode is not None
