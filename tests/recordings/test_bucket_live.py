"""A live broadcast recorded into an S3-compatible bucket (moto in server mode): segments and
the VOD playlist reach the bucket as segments complete, a second node that never held the
stream plays the recording from it, and a bucket that goes away does not stall the live
playlist."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import av

from livecore.appkeys import CONFIG, METRICS
from livecore.config import HlsConfig, StorageConfig
from livecore.recordings.bucket import Bucket
from tests.conftest import Api, Client, MakeClient, create_stream, register
from tests.recordings.conftest import BUCKET
from tests.support.rtc import publishing
from tests.support.s3 import S3Server


async def _recording_path(dsn: str) -> tuple[int, str]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT id, recording_path FROM broadcasts ORDER BY id DESC")
    finally:
        await conn.close()
    assert row is not None and row["recording_path"]
    return int(row["id"]), str(row["recording_path"])


def _uris(playlist: str) -> list[str]:
    """Every URI a media playlist names: its segments and its init segments."""
    uris = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    maps = [line.split('URI="')[1].split('"')[0] for line in playlist.splitlines() if "MAP" in line]
    return maps + uris


async def _stored(bucket: Bucket, path: str) -> dict[str, int]:
    prefix = bucket.key(path)
    return {k.removeprefix(prefix): n for k, n in await bucket.list_objects(prefix)}


async def _bucket_playlist(
    bucket: Bucket, path: str, *, segments: int, timeout_s: float = 30
) -> str:
    """The bucket's VOD playlist once it lists at least `segments` segments."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            text = (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
        except FileNotFoundError:
            text = ""
        if text.count("#EXTINF") >= segments:
            return text
        assert time.monotonic() < deadline, f"bucket playlist: {text!r}"
        await asyncio.sleep(0.2)


def _assert_finished_vod(playlist: str, stored: dict[str, int]) -> None:
    lines = playlist.splitlines()
    assert lines[0] == "#EXTM3U" and lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and "#EXT-X-PART" not in playlist
    for uri in _uris(playlist):
        assert stored.get(uri, 0) > 0, f"{uri} is not in the bucket"


def _vod_duration_s(url: str) -> float:
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        video = container.streams.video[0]
        pts = [p.pts for p in container.demux(video) if p.pts is not None]
        assert video.time_base is not None
        return float((max(pts) - min(pts)) * video.time_base)


async def _creator_key(client: Client, slug: str) -> str:
    creator = await register(client, f"{slug}@example.com", creator=True)
    key = await create_stream(client, str(creator["token"]), slug)
    client.session.cookie_jar.clear()
    return key


async def _recordings(client: Api, slug: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = await (await client.get(f"/api/v1/streams/{slug}/recordings")).json()
        if body["recordings"]:
            return list(body["recordings"])
        assert time.monotonic() < deadline, "the recording was never listed"
        await asyncio.sleep(0.2)


async def test_a_broadcast_reaches_the_bucket_and_plays_from_a_node_that_never_held_it(
    make_client: MakeClient, dsn: str, tmp_path: Path, storage: StorageConfig, bucket: Bucket
) -> None:
    node_a = await make_client(storage=storage)
    key = await _creator_key(node_a, "bucketed")
    async with publishing(node_a, "bucketed", key):
        broadcast_id, path = await _recording_path(dsn)
        # While the broadcast goes on: complete segments are in the bucket, and the bucket's
        # playlist lists only objects that are there.
        live = await _bucket_playlist(bucket, path, segments=2)
        _assert_finished_vod(live, await _stored(bucket, path))
        await _bucket_playlist(bucket, path, segments=3)
    recordings = await _recordings(node_a, "bucketed")
    assert recordings[0]["id"] == broadcast_id

    # Every segment recorded on node A's disk is in the bucket, listed in its playlist.
    disk_playlist = await asyncio.to_thread(
        (node_a.app[CONFIG].data_path / path / "vod.m3u8").read_text
    )
    stored = await _stored(bucket, path)
    final = (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
    _assert_finished_vod(final, stored)
    assert _uris(final) == _uris(disk_playlist)

    # Node B shares the database and the bucket, not the disk.
    node_b = await make_client(storage=storage, data_dir=str(tmp_path / "node-b"))
    vod = await node_b.get(f"/vod/{broadcast_id}/vod.m3u8")
    assert vod.status == 200 and await vod.text() == final
    url = str(node_b.make_url(f"/vod/{broadcast_id}/vod.m3u8"))
    assert await asyncio.to_thread(_vod_duration_s, url) > 2.0
    first = _uris(final)[1]  # after the init segment
    ranged = await node_b.get(f"/vod/{broadcast_id}/{first}", headers={"Range": "bytes=0-99"})
    assert ranged.status == 206
    assert ranged.headers["Content-Range"] == f"bytes 0-99/{stored[first]}"
    assert await ranged.read() == (await bucket.read(bucket.key(path, first)))[:100]
    assert not await asyncio.to_thread((tmp_path / "node-b" / path).exists)


async def _sample(client: Client, name: str) -> float:
    # In a thread: collecting reads /proc (the process collector).
    value = await asyncio.to_thread(client.app[METRICS].registry.get_sample_value, name)
    return value or 0.0


async def _live_msn(client: Client, slug: str) -> int:
    """The media sequence number of the newest complete segment in the live playlist."""
    text = await (await client.get(f"/hls/{slug}/source/index.m3u8")).text()
    segments = [line for line in text.splitlines() if line.startswith("seg-")]
    return int(segments[-1].removeprefix("seg-").removesuffix(".m4s")) if segments else -1


async def _until(check: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def test_a_failing_bucket_never_stalls_the_live_playlist(
    make_client: MakeClient,
    dsn: str,
    s3_server: S3Server,
    storage: StorageConfig,
    bucket: Bucket,
) -> None:
    client = await make_client(
        storage=storage, hls=replace(HlsConfig(), renditions=("source",))
    )  # fmt: skip
    key = await _creator_key(client, "flaky")
    async with publishing(client, "flaky", key):
        _, path = await _recording_path(dsn)
        await _bucket_playlist(bucket, path, segments=1)

        await asyncio.to_thread(s3_server.stop)
        stopped_at = await _live_msn(client, "flaky")

        async def live_goes_on_and_failures_are_counted() -> bool:
            return (
                await _live_msn(client, "flaky") >= stopped_at + 3
                and await _sample(client, "livecore_recordings_upload_failures_total") > 0
                and await _sample(client, "livecore_recordings_upload_queue_segments") > 0
            )

        await _until(live_goes_on_and_failures_are_counted, "the live playlist stalled")
        during = range(stopped_at + 1, await _live_msn(client, "flaky") + 1)

        # The server comes back empty (moto keeps objects in memory): a new bucket.
        await asyncio.to_thread(s3_server.start)
        await asyncio.to_thread(s3_server.create_bucket, BUCKET)

        async def caught_up() -> bool:
            stored = await _stored(bucket, path)
            return all(f"seg-{msn}.m4s" in stored for msn in during) and "vod.m3u8" in stored

        await _until(caught_up, "the segments of the outage never reached the bucket")
    await _recordings(client, "flaky")
    final = (await bucket.read(bucket.key(path, "vod.m3u8"))).decode()
    assert final.endswith("#EXT-X-ENDLIST\n")
    stored = await _stored(bucket, path)
    for msn in during:
        assert f"seg-{msn}.m4s" in final and stored[f"seg-{msn}.m4s"] > 0
    assert await _sample(client, "livecore_recordings_upload_queue_segments") == 0
    assert await _sample(client, "livecore_recordings_upload_dropped_total") == 0
