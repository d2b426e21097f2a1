"""The log of broadcasts: states in order, and a recording listed only once it is complete,
on the broadcast it belongs to even when the stream is live again by then."""

from __future__ import annotations

import asyncio

import asyncpg

from livecore.store import Database
from livecore.store.broadcasts import Broadcasts, MediaInfo
from livecore.streams.live import BroadcastLog, RecordingDone, StateChange
from tests.streams.rows import creator_stream

MEDIA = MediaInfo(video_codec="h264", audio_codec="opus", width=1280, height=720,
                  bitrate_bps=2_500_000)  # fmt: skip


async def _stream(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await creator_stream(conn, "logged")
    finally:
        await conn.close()


async def test_a_recording_is_listed_once_complete_even_after_the_next_go_live(
    db: Database, dsn: str
) -> None:
    stream = await _stream(dsn)
    log = BroadcastLog(db, on_change=lambda: None)
    writer = asyncio.create_task(log.run())
    try:
        log.report(StateChange(stream, True, broadcast=1, recording_path="recordings/1/a"))
        log.report(StateChange(stream, False, broadcast=1, media=MEDIA, recording_follows=True))
        # Live again before the first broadcast's packaging has finished:
        log.report(StateChange(stream, True, broadcast=2, recording_path="recordings/1/b"))
        await log.drain()
        rows = await db.pool.fetch(
            "SELECT id, ended_at, recording_ready, width FROM broadcasts ORDER BY id"
        )
        first, second = rows
        assert first["ended_at"] is not None and first["width"] == 1280
        assert not first["recording_ready"] and second["ended_at"] is None  # not listed yet

        log.report(RecordingDone(1, 12_345))
        log.report(RecordingDone(1, 1))  # a duplicate changes nothing
        await log.drain()
        rows = await db.pool.fetch(
            "SELECT recording_path, recording_ready, recording_bytes, ended_at FROM broadcasts"
            " ORDER BY id"
        )
        assert [tuple(r.values())[:3] for r in rows] == [
            ("recordings/1/a", True, 12_345),
            ("recordings/1/b", False, 0),
        ]
        assert rows[1]["ended_at"] is None  # the second broadcast is still live
        state = await db.pool.fetchval("SELECT state FROM streams WHERE id = $1", stream)
        assert state == "live"
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def test_a_recording_finished_by_a_node_older_than_recording_ready_is_listed(
    db: Database, dsn: str
) -> None:
    stream = await _stream(dsn)
    # What a node from before migration 0008 writes at the end: the path and the size only.
    await db.pool.execute(
        "INSERT INTO broadcasts (stream_id, ended_at, recording_path, recording_bytes)"
        " VALUES ($1, now(), 'recordings/9/old', 4096)",
        stream,
    )
    listed = await Broadcasts(db).recordings(stream)
    assert [b.recording_path for b in listed] == ["recordings/9/old"]
