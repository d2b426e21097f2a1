"""Going live end to end: an aiortc publisher over WHIP, LL-HLS read back by FFmpeg (PyAV)
over HTTP, a thumbnail, and the recording left behind."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import av

from livecore.appkeys import CONFIG
from tests.conftest import Client, bearer, register
from tests.support.media import clip, hls_video_packets
from tests.support.rtc import AskedKeyframesTrack, publish


async def _live_stream(client: Client, slug: str = "golive") -> str:
    creator = await register(client, "maker@example.com", creator=True)
    resp = await client.post(
        "/api/v1/streams", json={"slug": slug}, headers=bearer(creator["token"])
    )
    body: dict[str, Any] = await resp.json()
    return str(body["stream_key"])


async def _wait_ok(client: Client, path: str, timeout_s: float = 20) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        resp = await client.get(path)
        if resp.status == 200:
            return await resp.read()
        assert time.monotonic() < deadline, f"{path} answered {resp.status}"
        await asyncio.sleep(0.2)


def _read_hls(url: str, seconds: float) -> dict[str, Any]:
    """What an FFmpeg player sees in the first `seconds` of the stream."""
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        first_key: bool | None = None
        video_pts: list[float] = []
        for packet in container.demux(video, audio):
            if packet.stream is video and packet.pts is not None and video.time_base:
                if first_key is None:
                    first_key = packet.is_keyframe
                video_pts.append(float(packet.pts * video.time_base))
                if video_pts[-1] - video_pts[0] >= seconds:
                    break
        return {
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name,
            "size": (video.codec_context.width, video.codec_context.height),
            "first_key": first_key,
            "pts": video_pts,
        }


async def test_publish_over_whip_and_play_over_hls(client: Client, dsn: str) -> None:
    key = await _live_stream(client)
    media = clip()
    pub = await publish(client.session, str(client.make_url("/whip/golive")), key, media)
    try:
        master = (await _wait_ok(client, "/hls/golive/master.m3u8")).decode()
        assert "avc1." in master and "mp4a.40.2" in master and "RESOLUTION=640x360" in master
        playlist = (await _wait_ok(client, "/hls/golive/source/index.m3u8")).decode()
        assert "#EXT-X-PART:" in playlist and "#EXT-X-PRELOAD-HINT" in playlist
        # Classic players (FFmpeg) ignore parts: wait until a whole segment is listed.
        deadline = time.monotonic() + 20
        while "#EXTINF" not in playlist:
            assert time.monotonic() < deadline, playlist
            await asyncio.sleep(0.2)
            playlist = (await _wait_ok(client, "/hls/golive/source/index.m3u8")).decode()
        seen = await asyncio.to_thread(
            _read_hls, str(client.make_url("/hls/golive/master.m3u8")), 3.0
        )
        assert seen["video_codec"] == "h264" and seen["audio_codec"] == "aac"
        assert seen["size"] == (640, 360)
        assert seen["first_key"] is True
        steps = [b - a for a, b in zip(seen["pts"], seen["pts"][1:], strict=False)]
        assert all(0 < step < 0.2 for step in steps), "video timestamps are not continuous"

        jpeg = await _wait_ok(client, "/hls/golive/thumb.jpg")
        assert jpeg.startswith(b"\xff\xd8")

        assert (await client.delete(pub.location)).status == 200
        deadline = time.monotonic() + 20
        while "#EXT-X-ENDLIST" not in (
            ended := await (await client.get("/hls/golive/source/index.m3u8")).text()
        ):
            assert time.monotonic() < deadline, ended
            await asyncio.sleep(0.2)
    finally:
        await pub.close()

    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 10
        while (
            row := await conn.fetchrow(
                "SELECT ended_at, recording_path, width, height, recording_bytes, bitrate_bps"
                " FROM broadcasts"
            )
        ) is None or not row["recording_path"]:  # listed once packaging has finished
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert row["recording_path"].startswith("recordings/")
    assert (row["width"], row["height"]) == (640, 360)
    assert row["bitrate_bps"] > 100_000  # the clip is about 0.8 Mb/s of video
    # Listed once complete: its size is every segment on disk, the last one included, of
    # every rendition (the 360p rung's, when it made any before the broadcast ended).
    directory = client.app[CONFIG].data_path / row["recording_path"]
    segments = await asyncio.to_thread(lambda: [f.stat().st_size for f in directory.rglob("seg-*")])
    assert segments and row["recording_bytes"] == sum(segments)


def _segments(playlist: str) -> tuple[int, list[tuple[float, bool | None]]]:
    """EXT-X-TARGETDURATION and each complete segment's (EXTINF, starts with a keyframe):
    whether its first part is INDEPENDENT=YES, None when its parts are no longer listed."""
    target = int(playlist.split("#EXT-X-TARGETDURATION:")[1].split("\n")[0])
    segments: list[tuple[float, bool | None]] = []
    first_part: bool | None = None
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-PART:") and first_part is None:
            first_part = "INDEPENDENT=YES" in line
        elif line.startswith("#EXTINF:"):
            segments.append((float(line[8:].split(",")[0]), first_part))
        elif line.startswith("seg-"):
            first_part = None
    return target, segments


async def _wait_segments(client: Client, path: str, want: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        playlist = (await _wait_ok(client, path)).decode()
        if playlist.count("#EXTINF:") >= want:
            return playlist
        assert time.monotonic() < deadline, f"fewer than {want} segments:\n{playlist}"
        await asyncio.sleep(0.2)


async def test_a_publisher_that_sends_keyframes_only_when_asked_gets_segments(
    client: Client,
) -> None:
    """A browser's encoder makes a keyframe only when asked: livecore asks as each segment
    nears its target, so FFmpeg gets whole segments, each within the target duration."""
    key = await _live_stream(client)
    track = AskedKeyframesTrack()
    url = str(client.make_url("/whip/golive"))
    pub = await publish(client.session, url, key, clip(), live_video=track)
    try:
        playlist = await _wait_segments(client, "/hls/golive/source/index.m3u8", 4)
        target, segments = _segments(playlist)
        assert target == 2, playlist
        assert all(round(duration) <= target for duration, _ in segments), playlist
        assert all(independent is not False for _, independent in segments), playlist
        assert any(independent for _, independent in segments), playlist
        assert "#EXT-X-INDEPENDENT-SEGMENTS" in playlist
        assert track.keyframes >= 4 and track.requests >= 3  # one each segment, asked for

        seen = await asyncio.to_thread(
            hls_video_packets, str(client.make_url("/hls/golive/master.m3u8")), 4.0
        )
        assert seen and seen[0][1], "FFmpeg's first video packet is not a keyframe"
        assert sum(k for _, k in seen) >= 2  # segments keep coming, each from a keyframe
    finally:
        await pub.close()


async def test_segments_stay_within_the_target_when_the_publisher_ignores_requests(
    client: Client,
) -> None:
    """No keyframe after the first, however often asked: segments are cut without one rather
    than growing past the target duration, and the playlists stop claiming that every
    segment starts with a keyframe."""
    key = await _live_stream(client)
    track = AskedKeyframesTrack(honour_requests=False)
    url = str(client.make_url("/whip/golive"))
    pub = await publish(client.session, url, key, clip(), live_video=track)
    try:
        playlist = await _wait_segments(client, "/hls/golive/source/index.m3u8", 3)
        target, segments = _segments(playlist)
        assert target == 2, playlist
        assert all(round(duration) <= target for duration, _ in segments), playlist
        assert track.requests >= 2 and track.keyframes == 1
        assert "#EXT-X-INDEPENDENT-SEGMENTS" not in playlist
        master = (await _wait_ok(client, "/hls/golive/master.m3u8")).decode()
        assert "#EXT-X-INDEPENDENT-SEGMENTS" not in master
        seen = await asyncio.to_thread(
            hls_video_packets, str(client.make_url("/hls/golive/master.m3u8")), 2.0
        )
        assert seen  # FFmpeg reads the segments (decoding waits for a keyframe)
    finally:
        await pub.close()
