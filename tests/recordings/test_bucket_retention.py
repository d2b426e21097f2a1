"""Retention with recordings in a bucket: two nodes sweeping at once delete each recording
once, a later sweep asks the bucket nothing it already knows, and a bucket that fails
mid-sweep leaves what it did not delete to the next sweep. Requests are counted with the
real S3 client's own event hooks on the way to the real moto server."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from livecore.config import RecordingsConfig, StorageConfig
from livecore.recordings.bucket import Bucket
from livecore.recordings.bucket_storage import BucketStorage
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk
from livecore.recordings.takedown import take_down
from livecore.store import Database
from tests.recordings.conftest import BUCKET
from tests.streams.rows import creator_stream
from tests.support.s3 import S3Server

NOW = datetime.now(UTC)
SETTINGS = RecordingsConfig(max_age_days=30, max_total_bytes=0)
OBJECTS = ("vod.m3u8", "seg-1.m4s", "leg-1/seg-1.m4s")


class Node:
    """One node's retention: its own pool, its own bucket client, its own disk."""

    def __init__(self, db: Database, bucket: Bucket, data: Path) -> None:
        self.db = db
        self.bucket = bucket
        self.calls: Counter[str] = Counter()
        self.retention = Retention(db, BucketStorage(bucket, LocalDisk(data)), SETTINGS)
        bucket.client.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1


@pytest.fixture
async def nodes(dsn: str, storage: StorageConfig, tmp_path: Path) -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    try:
        for name in ("a", "b"):
            bucket = Bucket(storage)
            await bucket.start()
            made.append(Node(await Database.connect(dsn, max_size=4), bucket, tmp_path / name))
        yield made
    finally:
        for node in made:
            await node.bucket.close()
            await node.db.close()


async def _recording(
    conn: asyncpg.Connection, bucket: Bucket, name: str, days_ago: float, *, deleted: bool = False
) -> tuple[int, str]:
    stream_id = await creator_stream(conn, name)
    path = f"recordings/{stream_id}/{name}"
    for obj in OBJECTS:
        await bucket.put(bucket.key(path, obj), b"x" * 100, "application/octet-stream")
    broadcast_id = await conn.fetchval(
        "INSERT INTO broadcasts (stream_id, started_at, ended_at, recording_path,"
        " recording_ready, recording_bytes, recording_deleted_at)"
        " VALUES ($1, $2, $2, $3, true, 300, CASE WHEN $4 THEN now() END) RETURNING id",
        stream_id, NOW - timedelta(days=days_ago), path, deleted,
    )  # fmt: skip
    return int(broadcast_id), path


async def _keys(bucket: Bucket, path: str) -> int:
    return len(await bucket.list_objects(bucket.key(path)))


async def _recordings(dsn: str, bucket: Bucket) -> dict[str, tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "old1": await _recording(conn, bucket, "old1", 40),
            "old2": await _recording(conn, bucket, "old2", 50),
            "recent": await _recording(conn, bucket, "recent", 2),
            "gone": await _recording(conn, bucket, "gone", 1, deleted=True),
        }
    finally:
        await conn.close()


def _total(nodes: list[Node], operation: str) -> int:
    return sum(n.calls[operation] for n in nodes)


async def test_two_nodes_sweeping_at_once_delete_each_recording_once(
    dsn: str, nodes: list[Node]
) -> None:
    made = await _recordings(dsn, nodes[0].bucket)
    for node in nodes:
        node.calls.clear()
    results = await asyncio.gather(*(n.retention.sweep(now=NOW) for n in nodes))
    assert sorted(results[0] + results[1]) == sorted([made["old1"][0], made["old2"][0]])
    # One listing (to find its objects) and one DeleteObjects per removed recording, over
    # both nodes; nothing for the kept one.
    assert _total(nodes, "DeleteObjects") == 3
    assert _total(nodes, "ListObjectsV2") == 3
    for name in ("old1", "old2", "gone"):
        assert await _keys(nodes[0].bucket, made[name][1]) == 0
    assert await _keys(nodes[0].bucket, made["recent"][1]) == len(OBJECTS)

    for node in nodes:
        node.calls.clear()
    assert await asyncio.gather(*(n.retention.sweep(now=NOW) for n in nodes)) == [[], []]
    assert _total(nodes, "ListObjectsV2") == 0 and _total(nodes, "DeleteObjects") == 0
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT recording_path FROM broadcasts WHERE recording_deleted_at IS NOT NULL"
            " AND recording_files_removed_at IS NOT NULL ORDER BY recording_path"
        )
    finally:
        await conn.close()
    assert [r[0] for r in rows] == sorted(made[n][1] for n in ("gone", "old1", "old2"))


async def test_a_bucket_down_mid_sweep_leaves_the_recording_to_the_next_sweep(
    dsn: str, nodes: list[Node], s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    node = nodes[0]
    made = await _recordings(dsn, node.bucket)
    # The bucket goes down as the second recording's objects are about to be listed.
    listings = 0

    async def stop_at_second_listing(**_: Any) -> None:
        nonlocal listings
        listings += 1
        if listings == 2:
            await asyncio.to_thread(s3_server.stop)

    # aiobotocore awaits a handler's coroutine (the stubs type botocore's sync handlers).
    events = node.bucket.client.meta.events
    events.register("before-call.s3.ListObjectsV2", stop_at_second_listing)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="livecore.recordings.retention"):
        first = await node.retention.sweep(now=NOW)
    assert first == [made["old2"][0]]  # oldest first: old2 ended 50 days ago, then old1
    warnings = [r for r in caplog.records if r.name == "livecore.recordings.retention"]
    assert len(warnings) == 1 and "2 recordings left to the next sweep" in warnings[0].message

    conn = await asyncpg.connect(dsn)
    try:
        state = await _state(conn)
        assert state[made["old1"][0]] == (False, False)  # the failed one: as it was
        assert state[made["gone"][0]] == (True, False)
        assert state[made["old2"][0]] == (True, True)

        events.unregister("before-call.s3.ListObjectsV2", stop_at_second_listing)  # type: ignore[arg-type]
        await asyncio.to_thread(s3_server.start)  # moto starts empty
        await asyncio.to_thread(s3_server.create_bucket, BUCKET)
        node.calls.clear()
        assert await node.retention.sweep(now=NOW) == [made["old1"][0]]
        assert node.calls["ListObjectsV2"] == 2  # old1 and gone, not old2 again
        state = await _state(conn)
        assert state[made["old1"][0]] == (True, True) and state[made["gone"][0]] == (True, True)
        assert state[made["recent"][0]] == (False, False)
    finally:
        await conn.close()


async def _state(conn: asyncpg.Connection) -> dict[int, tuple[bool, bool]]:
    rows = await conn.fetch(
        "SELECT id, recording_deleted_at IS NOT NULL, recording_files_removed_at IS NOT NULL"
        " FROM broadcasts"
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_a_recording_taken_down_is_not_looked_for_again(
    dsn: str, nodes: list[Node], tmp_path: Path
) -> None:
    node = nodes[0]
    conn = await asyncpg.connect(dsn)
    try:
        broadcast_id, path = await _recording(conn, node.bucket, "owned", 1)
        stream_id = await conn.fetchval(
            "SELECT stream_id FROM broadcasts WHERE id = $1", broadcast_id
        )
    finally:
        await conn.close()
    storage = BucketStorage(node.bucket, LocalDisk(tmp_path / "takedown"))
    assert await take_down(node.db, storage, stream_id, broadcast_id)
    assert await _keys(node.bucket, path) == 0
    node.calls.clear()
    for each in nodes:
        assert await each.retention.sweep(now=NOW) == []
    assert _total(nodes, "ListObjectsV2") == 0 and _total(nodes, "DeleteObjects") == 0
