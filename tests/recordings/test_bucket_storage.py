"""Recordings in an S3-compatible bucket, without media: retention and takedown delete the
objects, recovery finishes only this node's recordings, and /vod/ streams ranges."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from livecore.appkeys import RECORDINGS
from livecore.config import RecordingsConfig, StorageConfig
from livecore.recordings.bucket import Bucket
from livecore.recordings.bucket_storage import BucketStorage
from livecore.recordings.recovery import finish_interrupted, finish_recording
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk
from livecore.recordings.takedown import take_down
from livecore.store import Database
from tests.conftest import MakeClient
from tests.streams.rows import creator_stream
from tests.support.s3 import S3Server

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PLAYLIST = b"#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.0,\nseg-1.m4s\n#EXT-X-ENDLIST\n"
SEGMENT = bytes(range(256)) * 40  # 10240 bytes, each offset tells its position


async def _recording(
    conn: asyncpg.Connection, bucket: Bucket, stream_id: int, name: str, days_ago: float
) -> tuple[int, str]:
    path = f"recordings/{stream_id}/{name}"
    for obj, data in (("vod.m3u8", PLAYLIST), ("seg-1.m4s", SEGMENT), ("360p/seg-1.m4s", b"x")):
        await bucket.put(bucket.key(path, obj), data, "application/octet-stream")
    broadcast_id = await conn.fetchval(
        "INSERT INTO broadcasts (stream_id, started_at, ended_at, recording_path,"
        " recording_ready, recording_bytes) VALUES ($1, $2, $2, $3, true, $4) RETURNING id",
        stream_id, NOW - timedelta(days=days_ago), path, len(SEGMENT) + 1,
    )  # fmt: skip
    return int(broadcast_id), path


def _files(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


async def _keys(bucket: Bucket, path: str) -> list[str]:
    return sorted(
        k.removeprefix(bucket.key(path)) for k, _ in await bucket.list_objects(bucket.key(path))
    )


async def test_retention_and_takedown_delete_the_objects(
    db: Database, dsn: str, tmp_path: Path, bucket: Bucket
) -> None:
    recordings = BucketStorage(bucket, LocalDisk(tmp_path))
    conn = await asyncpg.connect(dsn)
    try:
        stream_id = await creator_stream(conn, "kept")
        _, old = await _recording(conn, bucket, stream_id, "old", 40)
        recent_id, recent = await _recording(conn, bucket, stream_id, "recent", 2)
        other_id, other = await _recording(conn, bucket, stream_id, "other", 1)
    finally:
        await conn.close()
    # The node that recorded `recent` still has its local copy: it goes too.
    await asyncio.to_thread((tmp_path / recent).mkdir, parents=True)
    assert await recordings.holds(old) and await recordings.holds(recent)
    assert await _keys(bucket, recent) == ["360p/seg-1.m4s", "seg-1.m4s", "vod.m3u8"]

    settings = RecordingsConfig(max_age_days=30, max_total_bytes=0)
    await Retention(db, recordings, settings).sweep(now=NOW)
    assert await _keys(bucket, old) == [] and not await recordings.holds(old)
    assert len(await _keys(bucket, recent)) == 3

    assert await take_down(db, recordings, stream_id, recent_id)
    assert await _keys(bucket, recent) == []
    assert not await asyncio.to_thread((tmp_path / recent).exists)
    assert len(await _keys(bucket, other)) == 3  # only what was asked for
    assert not await take_down(db, recordings, stream_id, recent_id)
    assert other_id != recent_id


async def test_vod_streams_byte_ranges_from_the_bucket(
    make_client: MakeClient,
    dsn: str,
    s3_server: S3Server,
    storage: StorageConfig,
    bucket: Bucket,
) -> None:
    client = await make_client(storage=storage)
    assert isinstance(client.app[RECORDINGS], BucketStorage)
    conn = await asyncpg.connect(dsn)
    try:
        stream_id = await creator_stream(conn, "ranged")
        broadcast_id, _ = await _recording(conn, bucket, stream_id, "r", 1)
    finally:
        await conn.close()
    url = f"/vod/{broadcast_id}/seg-1.m4s"

    whole = await client.get(url)
    assert whole.status == 200 and await whole.read() == SEGMENT
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert whole.content_type == "video/iso.segment"

    part = await client.get(url, headers={"Range": "bytes=100-299"})
    assert part.status == 206 and await part.read() == SEGMENT[100:300]
    assert part.headers["Content-Range"] == f"bytes 100-299/{len(SEGMENT)}"
    tail = await client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status == 206 and await tail.read() == SEGMENT[-50:]
    rest = await client.get(url, headers={"Range": "bytes=10000-"})
    assert rest.status == 206 and await rest.read() == SEGMENT[10000:]
    outside = await client.get(url, headers={"Range": f"bytes={len(SEGMENT)}-"})
    assert outside.status == 416
    assert outside.headers["Content-Range"] == f"bytes */{len(SEGMENT)}"

    playlist = await client.get(f"/vod/{broadcast_id}/vod.m3u8")
    assert playlist.status == 200 and await playlist.read() == PLAYLIST
    assert (await client.get(f"/vod/{broadcast_id}/seg-2.m4s")).status == 404

    # A bucket that does not answer: 503 with the JSON error, and a hint to come back.
    await asyncio.to_thread(s3_server.stop)
    for name in ("seg-1.m4s", "vod.m3u8"):
        down = await client.get(f"/vod/{broadcast_id}/{name}")
        assert down.status == 503, name
        assert (await down.json())["error"]["code"] == "unavailable"
        assert down.headers["Retry-After"] == "5"


async def test_a_cdn_base_url_makes_the_vod_playlist_point_at_the_cdn(
    make_client: MakeClient, dsn: str, storage: StorageConfig, bucket: Bucket
) -> None:
    client = await make_client(storage=storage, cdn_base_url="https://cdn.example/")
    conn = await asyncpg.connect(dsn)
    try:
        stream_id = await creator_stream(conn, "fronted")
        broadcast_id, _ = await _recording(conn, bucket, stream_id, "r", 1)
    finally:
        await conn.close()
    playlist = await client.get(f"/vod/{broadcast_id}/vod.m3u8")
    assert playlist.status == 200
    text = await playlist.text()
    assert f"\nhttps://cdn.example/vod/{broadcast_id}/seg-1.m4s\n" in text
    assert playlist.headers["Cache-Control"] == "public, max-age=31536000, immutable"


async def test_recovery_finishes_this_nodes_recordings_and_leaves_the_others(
    db: Database, dsn: str, tmp_path: Path, bucket: Bucket
) -> None:
    recordings = BucketStorage(bucket, LocalDisk(tmp_path))
    conn = await asyncpg.connect(dsn)
    try:
        stream_id = await creator_stream(conn, "mine", live=True)
        other_stream = await creator_stream(conn, "theirs", live=True)
        ids = {}
        for sid, name in ((stream_id, "mine"), (other_stream, "theirs")):
            path = f"recordings/{sid}/{name}"
            for obj, data in (("vod.m3u8", PLAYLIST), ("seg-1.m4s", SEGMENT)):
                await bucket.put(bucket.key(path, obj), data, "application/octet-stream")
            ids[name] = (
                await conn.fetchval(
                    "INSERT INTO broadcasts (stream_id, recording_path) VALUES ($1, $2)"
                    " RETURNING id",
                    sid,
                    path,
                ),
                path,
            )
        # This node recorded "mine" (its disk has the copy), and crashed before seg-2 was
        # uploaded; "theirs" is live on another node.
        mine = ids["mine"][1]
        local_playlist = PLAYLIST.replace(
            b"#EXT-X-ENDLIST", b"#EXTINF:2.0,\nseg-2.m4s\n#EXT-X-ENDLIST"
        )
        await asyncio.to_thread(
            _files, tmp_path / mine,
            {"seg-1.m4s": SEGMENT, "seg-2.m4s": b"2" * 300, "part-2-0.m4s": b"2" * 300,
             "vod.m3u8": local_playlist},
        )  # fmt: skip

        finished = await finish_interrupted(db, recordings, recorded_here=recordings.recover_local)
        assert finished == [ids["mine"][0]]
        rows = {
            r["id"]: r
            for r in await conn.fetch("SELECT id, ended_at, recording_bytes FROM broadcasts")
        }
        # What the bucket lacked was uploaded from the disk first (not the live edge's parts).
        assert rows[ids["mine"][0]]["recording_bytes"] == len(SEGMENT) + 300
        assert await _keys(bucket, mine) == ["seg-1.m4s", "seg-2.m4s", "vod.m3u8"]
        assert await bucket.read(bucket.key(mine, "vod.m3u8")) == local_playlist
        assert not await recordings.recover_local(ids["theirs"][1])
        assert rows[ids["theirs"][0]]["ended_at"] is None

        # What failover does for a dead node's recording: finish it from the bucket.
        theirs, path = ids["theirs"]
        assert await finish_recording(db, recordings, theirs, path, still_open=True) == len(SEGMENT)
        row = await conn.fetchrow(
            "SELECT b.ended_at, b.recording_ready, s.state FROM broadcasts b"
            " JOIN streams s ON s.id = b.stream_id WHERE b.id = $1",
            theirs,
        )
        assert row is not None
        assert row["ended_at"] is not None and row["recording_ready"]
        assert row["state"] == "offline"
    finally:
        await conn.close()


async def test_a_node_starts_while_its_bucket_is_down(
    make_client: MakeClient, dsn: str, tmp_path: Path, s3_server: S3Server, storage: StorageConfig
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        stream_id = await creator_stream(conn, "crashed", live=True)
        path = f"recordings/{stream_id}/c"
        await conn.execute(
            "INSERT INTO broadcasts (stream_id, recording_path) VALUES ($1, $2)", stream_id, path
        )
    finally:
        await conn.close()
    data = tmp_path / "var"
    await asyncio.to_thread(_files, data / path, {"seg-1.m4s": SEGMENT})
    await asyncio.to_thread(s3_server.stop)
    client = await make_client(storage=storage)  # its recovery cannot reach the bucket
    assert (await client.get("/healthz")).status == 200
