from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import os
import re
import shutil
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from livecore.hls.fmp4 import parse_fragment, parse_init
from livecore.hls.packager import Packager
from livecore.hls.playlist import render_media
from livecore.sfu.hub import StreamHub
from tests.hls.conftest import CONFIG, Env
from tests.hls.probe import assert_continuous, probe
from tests.support.media import clip, encode_h264, encode_opus


@pytest.fixture(params=["thread", "process"])
def workers_in(request: pytest.FixtureRequest) -> str:
    """Every packager test runs with the worker in a thread and in a packaging process."""
    return str(request.param)


async def _read(path: Path) -> bytes:
    return await asyncio.to_thread(path.read_bytes)


async def test_broadcast_becomes_segments_parts_and_a_recording(env: Env) -> None:
    c = clip(4.0)
    b = env.broadcast()
    await b.publish(c.interleaved())
    await b.packager.wait_closed()
    p = b.packager
    assert p.ended and not p.failed and p.dropped_units == 0
    segs = p.segments
    assert len(segs) >= 3 and all(s.complete for s in segs)
    assert [s.msn for s in segs] == list(range(len(segs)))
    init = await _read(b.directory / "init-0.mp4")
    tracks = parse_init(init)
    assert sorted(t.kind for t in tracks.values()) == ["audio", "video"]
    for seg in segs:
        assert seg.parts[0].independent
        whole = await _read(b.directory / seg.uri)
        assert sum(part.size for part in seg.parts) == len(whole)  # segment = its parts
        ends = list(itertools.accumulate(part.size for part in seg.parts))
        blobs = [whole[end - part.size : end] for part, end in zip(seg.parts, ends, strict=True)]
        if seg.msn > segs[-1].msn - 3:  # parts still on disk: the ended playlist lists them
            assert blobs == [await _read(b.directory / part.uri) for part in seg.parts]
        for part, blob in zip(seg.parts, blobs, strict=True):
            info = parse_fragment(blob, tracks)
            assert {r.kind for r in info.runs if r.samples} == {"video", "audio"}  # muxed
            assert part.size == len(blob)
            assert part.duration_s <= CONFIG.part_target_s + 1e-6
    assert p.init is not None
    assert p.init.codecs == "avc1.42c01e,mp4a.40.2"
    assert (p.init.width, p.init.height) == (640, 360)
    variant = p.variant("source/index.m3u8")
    assert variant is not None and variant.bandwidth > 0 and variant.frame_rate == 30.0
    result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
    assert (result.video_codec, result.audio_codec, result.audio_profile) == ("h264", "aac", "LC")
    assert (result.width, result.height) == (640, 360)
    assert result.video[0][1], "the recording starts with a keyframe"
    assert len(result.video) == len(c.video)
    assert_continuous([t for t, _ in result.video], 1 / 30)
    assert_continuous(list(result.audio), 1024 / 48000)
    assert abs(result.audio[-1] - result.video[-1][0]) < 0.2


@pytest.mark.parametrize("window", [3, 12])  # parts go as segments leave it, or at the end
async def test_parts_leave_the_disk_with_the_live_window_and_segments_stay(
    env: Env, window: int
) -> None:
    b = env.broadcast(config=dataclasses.replace(CONFIG, live_window_segments=window))
    await b.publish(clip(8.0).interleaved())
    await b.packager.wait_closed()
    segs = b.packager.segments
    assert len(segs) >= 6 and all(s.complete for s in segs)
    files = set(await asyncio.to_thread(os.listdir, b.directory))
    last = segs[-1].msn
    for seg in segs:
        assert seg.uri in files
        kept = seg.msn > last - 3  # the ended playlist lists the parts of its last three
        assert all((p.uri in files) == kept for p in seg.parts), seg.msn
    # Everything the last live playlist names is still there; the recording plays whole.
    for line in render_media(b.packager.media_state()).splitlines():
        for uri in re.findall(r'URI="([^"]+)"', line) or ([line] if line[:1] != "#" else []):
            assert uri in files, uri
    result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
    assert len(result.video) == len(clip(8.0).video)


async def test_a_long_broadcast_keeps_only_recent_segments_in_memory(env: Env) -> None:
    b = env.broadcast(config=dataclasses.replace(CONFIG, live_window_segments=3))
    await b.publish(clip(20.0).interleaved())
    await b.packager.wait_closed()
    p = b.packager
    kept = p.segments
    assert 7 <= len(kept) <= 14 and kept[0].msn > 0  # twice the window and more, not all 20
    state = p.media_state()
    assert [s.msn for s in state.segments] == [s.msn for s in kept[-3:]]
    assert p.has_segment(kept[-1].msn) and not p.has_segment(0)
    # The recording's size still counts every part of every segment.
    files = await asyncio.to_thread(lambda: list(b.directory.glob("seg-*.m4s")))
    assert len(files) == kept[-1].msn + 1
    sizes = await asyncio.to_thread(lambda: sum(f.stat().st_size for f in files))
    assert p.bytes_written == sizes
    result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
    assert len(result.video) == len(clip(20.0).video)


async def test_audio_only_broadcast_cuts_segments_by_duration(env: Env) -> None:
    b = env.broadcast()
    await b.publish(clip(4.0).audio)
    await b.packager.wait_closed()
    p = b.packager
    assert p.init is not None and p.init.codecs == "mp4a.40.2" and p.init.width is None
    assert len(p.segments) >= 3
    assert all(part.independent for s in p.segments for part in s.parts)
    assert all(s.duration_s <= 1.0 for s in p.segments)
    result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
    assert result.video_codec is None and result.audio_codec == "aac"
    assert_continuous(list(result.audio), 1024 / 48000)


def _decoded_audio(url: str) -> npt.NDArray[np.float32]:
    """All the AAC of a playlist decoded: one row of float samples per channel."""
    with av.open(url) as container:
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    return np.concatenate(frames, axis=1).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
async def test_aac_carries_the_publishers_sound(env: Env, channels: int) -> None:
    b = env.broadcast()
    await b.publish(encode_opus(150, channels=channels))  # 3 s of a 440 Hz tone at 0.3
    await b.packager.wait_closed()
    pcm = await asyncio.to_thread(_decoded_audio, str(b.directory / "vod.m3u8"))
    assert pcm.shape[0] == channels
    second = pcm[:, 48_000:96_000]  # past the codecs' start-up
    for channel in second:
        spectrum = np.abs(np.fft.rfft(channel))
        assert abs(int(np.argmax(spectrum)) - 440) <= 2  # 1 Hz bins over one second
        rms = float(np.sqrt(np.mean(channel**2)))
        assert 0.15 < rms < 0.27, rms  # 0.3 / sqrt(2), give or take the codecs


async def test_video_only_broadcast(env: Env) -> None:
    b = env.broadcast()
    await b.publish(clip(4.0).video)
    await b.packager.wait_closed()
    p = b.packager
    assert p.init is not None and p.init.codecs == "avc1.42c01e"
    result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
    assert result.audio_codec is None and result.video[0][1]
    assert len(result.video) == len(clip(4.0).video)


async def test_resolution_change_starts_a_new_init_after_a_discontinuity(env: Env) -> None:
    first = clip(2.0)
    second = await asyncio.to_thread(encode_h264, 60, 320, 180, 30, pts0=2 * 90_000 + 3000)
    b = env.broadcast()
    await b.publish([*first.video, *second])
    await b.packager.wait_closed()
    p = b.packager
    assert not p.failed and p.has_init(0) and p.has_init(1)
    assert p.init is not None and (p.init.width, p.init.height) == (320, 180)
    changed = [s for s in p.segments if s.init == 1]
    assert changed and changed[0].discontinuity and changed[0].parts[0].independent
    vod = (await _read(b.directory / "vod.m3u8")).decode()
    assert vod.count("#EXT-X-DISCONTINUITY\n") == 1 and 'URI="init-1.mp4"' in vod
    result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
    assert len(result.video) >= 60  # FFmpeg reads across the discontinuity


async def test_worker_falling_behind_drops_units_and_keeps_going(env: Env) -> None:
    c = clip(4.0)
    b = env.broadcast(queue_units=3)
    await b.publish(c.interleaved())
    await b.packager.wait_closed()
    p = b.packager
    assert p.dropped_units > 0 and not p.failed
    assert env.registry.get_sample_value("livecore_hls_packager_dropped_units_total") == float(
        p.dropped_units
    )
    # Video waits for a keyframe after a drop; a segment that reaches its limit meanwhile is
    # cut without one (never longer than the target duration), and the playlist says so.
    state = p.media_state()
    assert all(round(seg.duration_s) <= state.target_duration_s for seg in p.segments)
    assert p.segments[0].parts[0].independent
    assert state.independent_segments == all(seg.independent for seg in p.segments)


async def test_disk_failure_ends_packaging_cleanly(env: Env) -> None:
    c = clip(4.0)
    b = env.broadcast()
    units = c.interleaved()
    half = len(units) // 2
    for unit in units[:half]:
        b.hub.publish(unit)
    while len(b.packager.segments) < 2 and not b.packager.ended:
        await b.packager.wait_for(1, 0)
    # The directory vanishes mid-stream (disk unmounted, operator error).
    await asyncio.to_thread(shutil.rmtree, b.directory)
    for unit in units[half:]:
        b.hub.publish(unit)
    b.hub.end()
    await asyncio.wait_for(b.packager.wait_closed(), 30)
    p = b.packager
    assert p.ended and p.failed and p.write_errors == 1
    assert all(s.complete for s in p.segments)
    assert env.registry.get_sample_value("livecore_hls_disk_write_errors_total") == 1.0
    text = render_media(p.media_state())
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "PRELOAD-HINT" not in text


async def test_unwritable_directory_fails_at_once(env: Env, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    await asyncio.to_thread(blocker.write_bytes, b"x")
    hub = StreamHub(2, "x", queue_size=1000)
    packager = Packager(hub.subscribe("hls"), blocker / "sub", CONFIG, slug="x")
    packager.start()
    for unit in clip(4.0).interleaved()[:50]:
        hub.publish(unit)
    hub.end()
    await packager.wait_closed()
    assert packager.failed and packager.write_errors == 1 and packager.segments == ()
    assert not await asyncio.to_thread(os.path.exists, blocker / "sub")


async def test_video_only_publisher_starts_without_waiting_for_audio(env: Env) -> None:
    # 0.9 s of video, no audio, and the broadcast still going: a packager told that
    # no audio is coming starts at once; one expecting audio would wait for a full second.
    video = [u for u in clip().video if u.pts_s < 0.9]
    waiting = env.broadcast("expects-audio")
    told = env.broadcast("video-only", expect_audio=False)
    for unit in video:
        waiting.hub.publish(unit)
        told.hub.publish(unit)
    await asyncio.wait_for(told.packager.wait_started(), 10)
    assert told.packager.init is not None and told.packager.init.audio_codec is None
    assert not waiting.packager.segments  # still waiting to see whether audio comes
    waiting.hub.end()
    told.hub.end()


def _audio_channels(init: bytes, segment: bytes) -> int:
    with av.open(io.BytesIO(init + segment)) as container:
        return int(container.streams.audio[0].codec_context.channels)


async def test_aac_follows_the_publishers_channels_mono_then_stereo(env: Env) -> None:
    c = clip(4.0)
    mono = encode_opus(100, channels=1)  # the first 2 s, as browsers send by default
    stereo = encode_opus(100, channels=2, pts0=100 * 960)
    assert {u.data[0] & 0x04 for u in mono} == {0} and {u.data[0] & 0x04 for u in stereo} == {4}
    units = sorted([*c.video, *mono, *stereo], key=lambda u: (u.pts_s, u.kind != "video"))
    b = env.broadcast()
    await b.publish(units)
    await b.packager.wait_closed()
    segs = b.packager.segments
    assert not b.packager.failed and {s.init for s in segs} == {0, 1}
    first, later = segs[0], next(s for s in segs if s.init == 1)
    assert later.discontinuity  # a new init segment: players are told
    init0 = await _read(b.directory / "init-0.mp4")
    init1 = await _read(b.directory / "init-1.mp4")
    assert _audio_channels(init0, await _read(b.directory / first.uri)) == 1
    assert _audio_channels(init1, await _read(b.directory / later.uri)) == 2


async def test_segments_stay_within_the_target_duration_when_keyframes_stop(env: Env) -> None:
    """A publisher that sends one keyframe and no more (it ignores keyframe requests): its
    segments are cut at part boundaries, never longer than the target duration, and no
    playlist claims that every segment starts with a keyframe."""
    video = encode_h264(150, 320, 180, keyint=1000)  # 5 s, one keyframe
    units = sorted(video + encode_opus(250), key=lambda u: (u.pts_s, u.kind != "video"))
    b = env.broadcast()
    await b.publish(units)
    await b.packager.wait_closed()
    segs = b.packager.segments
    state = b.packager.media_state()
    assert len(segs) >= 4 and all(s.complete for s in segs)
    assert all(round(s.duration_s) <= state.target_duration_s for s in segs), segs
    assert segs[0].independent and not any(s.independent for s in segs[1:])
    assert not state.independent_segments
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in render_media(state)
    vod = (await _read(b.directory / "vod.m3u8")).decode()
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in vod and "#EXT-X-TARGETDURATION:1\n" in vod
    result = await asyncio.to_thread(probe, str(b.directory / "vod.m3u8"))
    assert len(result.video) == len(video)  # every frame, across the cuts


async def test_a_publisher_with_keyframes_of_its_own_is_not_asked_for_more(
    tmp_path: Path,
) -> None:
    """A publisher seen to send keyframes by itself in time (here every second, with 2 s
    segments) is not asked for extra ones, which would cost bit rate and cut segments
    shorter than its GOP; only the hub's own request as the first reader joins is made."""
    asked_at: list[float] = []
    now = [0.0]
    hub = StreamHub(
        1, "own", queue_size=10_000, keyframe_request_interval_s=0.0,
        request_keyframe=lambda: asked_at.append(now[0]),
    )  # fmt: skip
    config = dataclasses.replace(CONFIG, segment_target_s=2.0)
    packager = Packager(hub.subscribe("hls"), tmp_path / "own", config, queue_units=10_000)
    packager.start()
    try:
        for unit in clip(4.0).interleaved():  # a keyframe every second
            now[0] = unit.pts_s
            hub.publish(unit)
            await asyncio.sleep(0)  # the packager looks at each unit as it comes
        hub.end()
        await packager.wait_closed()
    finally:
        await packager.aclose()
    assert asked_at == [0.0]
    assert [round(s.duration_s, 3) for s in packager.segments] == [2.0, 2.0]
