from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from livecore.config import RecordingsConfig
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk
from livecore.store import Database
from tests.streams.rows import creator_stream

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def _recording(
    conn: asyncpg.Connection, data: Path, days_ago: float | None, size: int, *, on_disk: bool = True
) -> int:
    stream_id = await conn.fetchval("SELECT id FROM streams LIMIT 1")
    path = f"recordings/{stream_id}/r{size}-{days_ago}"
    if on_disk:
        await asyncio.to_thread(_make_files, data / path)
    ended = None if days_ago is None else NOW - timedelta(days=days_ago)
    return int(
        await conn.fetchval(
            "INSERT INTO broadcasts (stream_id, started_at, ended_at, recording_path,"
            " recording_bytes) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            stream_id,
            NOW - timedelta(days=(days_ago or 0) + 0.1),
            ended,
            path,
            size,
        )
    )


def _make_files(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "vod.m3u8").write_text("#EXTM3U\n")


async def _setup(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await creator_stream(conn, "kept")
    return conn


async def test_old_recordings_go_and_recent_ones_stay(
    db: Database, dsn: str, tmp_path: Path
) -> None:
    conn = await _setup(dsn)
    try:
        old = await _recording(conn, tmp_path, 40, 100)
        recent = await _recording(conn, tmp_path, 2, 100)
        live = await _recording(conn, tmp_path, None, 100)
        elsewhere = await _recording(conn, tmp_path, 50, 100, on_disk=False)
        settings = RecordingsConfig(max_age_days=30, max_total_bytes=0)
        deleted = await Retention(db, LocalDisk(tmp_path), settings).sweep(now=NOW)
        assert deleted == [old]
        gone = await conn.fetchval(
            "SELECT recording_deleted_at IS NOT NULL FROM broadcasts WHERE id = $1", old
        )
        assert gone
        rows = await conn.fetch(
            "SELECT id FROM broadcasts WHERE recording_deleted_at IS NULL ORDER BY id"
        )
        assert [r["id"] for r in rows] == [recent, live, elsewhere]
    finally:
        await conn.close()
    assert not await asyncio.to_thread((tmp_path / "recordings/1/r100-40").exists)


async def test_disk_limit_deletes_oldest_first(db: Database, dsn: str, tmp_path: Path) -> None:
    conn = await _setup(dsn)
    try:
        first = await _recording(conn, tmp_path, 5, 600)
        second = await _recording(conn, tmp_path, 4, 600)
        await _recording(conn, tmp_path, 3, 600)
        settings = RecordingsConfig(max_age_days=0, max_total_bytes=1000)
        deleted = await Retention(db, LocalDisk(tmp_path), settings).sweep(now=NOW)
        assert deleted == [first, second]
        # Under the limit now: a second sweep deletes nothing.
        assert await Retention(db, LocalDisk(tmp_path), settings).sweep(now=NOW) == []
    finally:
        await conn.close()


async def test_recordings_taken_down_through_another_node_leave_this_disk(
    db: Database, dsn: str, tmp_path: Path
) -> None:
    conn = await _setup(dsn)
    try:
        recent = await _recording(conn, tmp_path, 1, 100)
        long_ago = await _recording(conn, tmp_path, 3, 200)
        for broadcast, days_ago in ((recent, 0), (long_ago, 8)):  # taken down that long ago
            await conn.execute(
                "UPDATE broadcasts SET recording_deleted_at = now() - make_interval(days => $2)"
                " WHERE id = $1",
                broadcast,
                days_ago,
            )
        rows = await conn.fetch("SELECT id, recording_path FROM broadcasts")
        paths: dict[int, str] = {r["id"]: r["recording_path"] for r in rows}
    finally:
        await conn.close()
    settings = RecordingsConfig(max_age_days=0, max_total_bytes=0)
    await Retention(db, LocalDisk(tmp_path), settings).sweep(now=NOW)
    assert not await asyncio.to_thread((tmp_path / paths[recent]).exists)
    assert await asyncio.to_thread((tmp_path / paths[long_ago]).exists)  # past the window


async def test_a_recording_taken_down_while_live_is_removed_once_finished(
    db: Database, dsn: str, tmp_path: Path
) -> None:
    conn = await _setup(dsn)
    try:
        live = await _recording(conn, tmp_path, None, 0)  # still being written, nothing done
        await conn.execute("UPDATE broadcasts SET recording_deleted_at = now() WHERE id = $1", live)
        path = tmp_path / await conn.fetchval(
            "SELECT recording_path FROM broadcasts WHERE id = $1", live
        )
        retention = Retention(db, LocalDisk(tmp_path), RecordingsConfig(max_age_days=0))
        await retention.sweep(now=NOW)
        assert await asyncio.to_thread(path.exists)  # its writer still has it open
        await conn.execute(
            "UPDATE broadcasts SET ended_at = now(), recording_ready = true, recording_bytes = 10"
            " WHERE id = $1",
            live,
        )
        await retention.sweep(now=NOW)
        assert not await asyncio.to_thread(path.exists)
    finally:
        await conn.close()
