"""A recording in an S3-compatible bucket: its objects and playlist there, and its VOD as a
node serves it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import av

from livecore.recordings.bucket import Bucket
from tests.conftest import Api, Client, create_stream, register


async def latest_recording_path(dsn: str) -> tuple[int, str]:
    """The id and recording path of the newest broadcast."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT id, recording_path FROM broadcasts ORDER BY id DESC")
    finally:
        await conn.close()
    assert row is not None and row["recording_path"]
    return int(row["id"]), str(row["recording_path"])


def playlist_uris(playlist: str) -> list[str]:
    """Every URI a media playlist names: its segments and its init segments."""
    uris = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    maps = [line.split('URI="')[1].split('"')[0] for line in playlist.splitlines() if "MAP" in line]
    return maps + uris


async def bucket_objects(bucket: Bucket, path: str) -> dict[str, int]:
    """The size of each object under the recording's `path`, by its name there."""
    prefix = bucket.key(path)
    return {k.removeprefix(prefix): n for k, n in await bucket.list_objects(prefix)}


async def bucket_playlist(
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


def assert_finished_vod(playlist: str, stored: dict[str, int]) -> None:
    """A finished VOD playlist, every file it names in `stored` (`bucket_objects`)."""
    lines = playlist.splitlines()
    assert lines[0] == "#EXTM3U" and lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and "#EXT-X-PART" not in playlist
    for uri in playlist_uris(playlist):
        assert stored.get(uri, 0) > 0, f"{uri} is not in the bucket"


def vod_duration_s(url: str) -> float:
    """The video FFmpeg demuxes from a VOD playlist, in seconds. Blocks: run it in a thread."""
    with av.open(url, "r", options={"http_persistent": "0"}, timeout=10) as container:
        video = container.streams.video[0]
        pts = [p.pts for p in container.demux(video) if p.pts is not None]
        assert video.time_base is not None
        return float((max(pts) - min(pts)) * video.time_base)


async def creator_key(client: Client, slug: str) -> str:
    """The stream key of a new creator's new stream `slug` (the client left signed out)."""
    creator = await register(client, f"{slug}@example.com", creator=True)
    key = await create_stream(client, str(creator["token"]), slug)
    client.session.cookie_jar.clear()
    return key


async def listed_recordings(client: Api, slug: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    """The stream's recordings once it lists any (`timeout_s` at most)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = await (await client.get(f"/api/v1/streams/{slug}/recordings")).json()
        if body["recordings"]:
            return list(body["recordings"])
        assert time.monotonic() < deadline, "the recording was never listed"
        await asyncio.sleep(0.2)
