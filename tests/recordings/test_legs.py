"""A recording in legs (its broadcast moved between nodes): each leg finished on its own, the
recording listed once all are, and served as one VOD playlist with a discontinuity between
the legs; the files of a leg that is not the recording's are 404."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.config import Config, RecordingsConfig
from livecore.recordings.bucket import Bucket
from livecore.recordings.bucket_storage import BucketStorage
from livecore.recordings.joined import JoinedPlaylists, join
from livecore.recordings.recovery import (
    finish_leg,
    finish_own_legs,
    finish_recording,
    legs_bytes,
)
from livecore.recordings.retention import Retention
from livecore.recordings.storage import LocalDisk
from livecore.store import Database
from livecore.store.broadcast_nodes import BroadcastNodes
from livecore.store.broadcasts import Broadcasts
from livecore.store.recording_legs import RecordingLegs
from tests.streams.rows import creator_stream
from tests.support.fakes import CapturingMailSender

Client = TestClient[Any, Any]


def vod(first_msn: int, segments: int, *, target: int = 2) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-PLAYLIST-TYPE:VOD", f"#EXT-X-MEDIA-SEQUENCE:{first_msn}",
             "#EXT-X-INDEPENDENT-SEGMENTS", '#EXT-X-MAP:URI="init-0.mp4"',
             "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T10:00:00.000+00:00"]  # fmt: skip
    for msn in range(first_msn, first_msn + segments):
        lines += ["#EXTINF:2.00000,", f"seg-{msn}.m4s"]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


def write(root: Path, files: dict[str, bytes | str]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data.encode() if isinstance(data, str) else data)


async def live_stream(db: Database) -> int:
    async with db.pool.acquire() as conn:
        return await creator_stream(conn, "show", live=True)  # type: ignore[arg-type]  # a pool's connection


def test_legs_join_into_one_playlist_with_a_discontinuity_between_them() -> None:
    joined = join([(0, vod(100, 2)), (1, vod(5000, 0)), (2, vod(7000, 1, target=3))])
    assert joined == "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:3", "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-MEDIA-SEQUENCE:100", "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init-0.mp4"', "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T10:00:00.000+00:00",
        "#EXTINF:2.00000,", "seg-100.m4s", "#EXTINF:2.00000,", "seg-101.m4s",
        # Leg 1 lists no segment (nothing complete there): left out.
        "#EXT-X-DISCONTINUITY",
        '#EXT-X-MAP:URI="leg-2/init-0.mp4"',
        "#EXT-X-PROGRAM-DATE-TIME:2026-12-07T10:00:00.000+00:00",
        "#EXTINF:2.00000,", "leg-2/seg-7000.m4s", "#EXT-X-ENDLIST",
    ]) + "\n"  # fmt: skip


async def test_a_recording_is_listed_once_every_leg_is_finished_and_counts_them_all(
    db: Database, tmp_path: Path
) -> None:
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "node-a")
    # Node B continues it (leg 1), then node C (leg 2); A finishes its leg meanwhile.
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-b", 1)
    legs = RecordingLegs(db)
    assert await legs.finish(broadcast.id, 0, 100)
    assert not await legs.finish(broadcast.id, 0, 100)  # once
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-c", 2)
    assert await Broadcasts(db).end(broadcast.id, "node-c")

    async def listed() -> tuple[bool, int]:
        row = await db.pool.fetchrow(
            "SELECT recording_ready, recording_bytes FROM broadcasts WHERE id = $1", broadcast.id
        )
        assert row is not None
        return row["recording_ready"], row["recording_bytes"]

    assert await listed() == (False, 0)
    assert await legs.finish(broadcast.id, 2, 30)
    assert await listed() == (False, 0)  # B's leg is not finished: not listed yet
    assert await Broadcasts(db).recording_location(broadcast.id) is None
    # B died: a survivor finishes its leg from storage (here the data directory).
    storage = LocalDisk(tmp_path)
    await asyncio.to_thread(write, tmp_path / path, {"vod.m3u8": vod(1, 1), "seg-1.m4s": b"a" * 100,
                            "leg-1/vod.m3u8": vod(5, 2), "leg-1/seg-5.m4s": b"b" * 7,
                            "leg-1/seg-6.m4s": b"b" * 8, "leg-1/part-6-0.m4s": b"b" * 8,
                            "leg-2/seg-9.m4s": b"c" * 30, "leg-2/vod.m3u8": vod(9, 1)})  # fmt: skip
    assert await legs_bytes(storage, path, None) == {0: 100, 1: 15, 2: 30}
    [b_leg] = await legs.of_node("node-b")
    assert (b_leg.broadcast_id, b_leg.leg, b_leg.recording_path) == (broadcast.id, 1, path)
    assert await finish_recording(db, storage, broadcast.id, path, still_open=False) == 15
    assert await listed() == (True, 145)
    assert await Broadcasts(db).recording_location(broadcast.id) == ("show", path, [0, 1, 2])


async def test_a_node_finishing_what_it_left_open_leaves_the_leg_another_node_records(
    db: Database, tmp_path: Path
) -> None:
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "node-a")
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-b", 1)
    await asyncio.to_thread(write, tmp_path / path, {"vod.m3u8": vod(1, 1), "seg-1.m4s": b"a" * 100,
                            "leg-1/vod.m3u8": vod(5, 1), "leg-1/seg-5.m4s": b"b" * 7})  # fmt: skip
    # A restarts after a crash: its leg is finished; B's goes on, and so does the broadcast.
    size = await finish_recording(
        db, LocalDisk(tmp_path), broadcast.id, path, still_open=True, node_id="node-a"
    )
    assert size == 100
    assert await RecordingLegs(db).unfinished(broadcast.id) == [1]
    assert await db.pool.fetchval(
        "SELECT ended_at IS NULL FROM broadcasts WHERE id = $1", broadcast.id
    )


async def test_a_recording_in_legs_plays_as_one_playlist_and_serves_only_its_legs(
    aiohttp_client: AiohttpClient, config: Config, dsn: str, mailer: CapturingMailSender
) -> None:
    path = "recordings/1/r1"
    conn = await asyncpg.connect(dsn)
    try:
        await creator_stream(conn, "show")
        broadcast = await conn.fetchval(
            "INSERT INTO broadcasts (stream_id, ended_at, recording_path, recording_ready,"
            " recording_bytes) SELECT id, now(), $1, true, 12 FROM streams WHERE slug = 'show'"
            " RETURNING id",
            path,
        )
        await conn.executemany(
            "INSERT INTO recording_legs (broadcast_id, leg, node_id, finished, bytes)"
            " VALUES ($1, $2, $3, true, $4)",
            [(broadcast, 0, "node-a", 4), (broadcast, 1, "node-b", 0),
             (broadcast, 2, "node-c", 8)],
        )  # fmt: skip
    finally:
        await conn.close()
    await asyncio.to_thread(write, config.data_path / path, {
        "vod.m3u8": vod(1, 1), "init-0.mp4": b"ini0", "seg-1.m4s": b"seg1",
        "leg-1/vod.m3u8": vod(3, 0),  # nothing complete on B
        "leg-2/vod.m3u8": vod(7, 2), "leg-2/init-0.mp4": b"ini2", "leg-2/seg-7.m4s": b"seg7",
        "leg-2/seg-8.m4s": b"seg8",
    })  # fmt: skip
    client: Client = await aiohttp_client(create_app(config, database_url=dsn, mailer=mailer))

    resp = await client.get(f"/vod/{broadcast}/vod.m3u8")
    assert resp.status == 200, await resp.text()
    text = await resp.text()
    assert text == join([(0, vod(1, 1)), (2, vod(7, 2))])
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and "leg-2/seg-8.m4s" in text
    for uri, data in [("seg-1.m4s", b"seg1"), ("leg-2/init-0.mp4", b"ini2"),
                      ("leg-2/seg-8.m4s", b"seg8")]:  # fmt: skip
        got = await client.get(f"/vod/{broadcast}/{uri}")
        assert got.status == 200 and await got.read() == data
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # Behind a CDN every URI of the joined playlist is absolute under it, legs' too.
    cdn = replace(config, cdn_base_url="https://cdn.example/")
    behind: Client = await aiohttp_client(create_app(cdn, database_url=dsn, mailer=mailer))
    proxied = await (await behind.get(f"/vod/{broadcast}/vod.m3u8")).text()
    assert f'URI="https://cdn.example/vod/{broadcast}/leg-2/init-0.mp4"' in proxied
    assert f"https://cdn.example/vod/{broadcast}/leg-2/seg-8.m4s" in proxied.splitlines()
    assert f"https://cdn.example/vod/{broadcast}/seg-1.m4s" in proxied.splitlines()

    # Made once: the legs' playlists are not read again for the next viewer.
    await asyncio.to_thread((config.data_path / path / "leg-2" / "vod.m3u8").unlink)
    assert await (await client.get(f"/vod/{broadcast}/vod.m3u8")).text() == text

    for bad in ["leg-1/vod.m3u8",  # a leg with nothing complete is not the recording's
                "leg-7/seg-7.m4s", "leg-02/seg-7.m4s", "leg-0/seg-1.m4s", "360p/seg-1.m4s",
                "leg-2/part-7-0.m4s", "leg-2%2F..%2F..%2F..%2Fr1/seg-1.m4s",
                "..%2Fr1/seg-1.m4s", "leg-2/..%2Fseg-1.m4s"]:  # fmt: skip
        got = await client.get(f"/vod/{broadcast}/{bad}")
        assert got.status == 404, bad


async def test_a_recording_that_never_moved_is_finished_whichever_node_finishes_it(
    db: Database, tmp_path: Path
) -> None:
    # The first process of a box, at its start, finishes what a sibling left open on the disk
    # they share (the sibling's id is its own, not this process's).
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "box-p2")
    await asyncio.to_thread(write, tmp_path / path, {"vod.m3u8": vod(1, 1), "seg-1.m4s": b"a" * 9})
    size = await finish_recording(
        db, LocalDisk(tmp_path), broadcast.id, path, still_open=True, node_id="box-p1"
    )
    assert size == 9
    assert await RecordingLegs(db).unfinished(broadcast.id) == []
    assert await db.pool.fetchval(
        "SELECT recording_ready FROM broadcasts WHERE id = $1", broadcast.id
    )


async def test_retention_counts_every_leg_and_deletes_them_all_from_the_bucket(
    db: Database, tmp_path: Path, bucket: Bucket
) -> None:
    recordings = BucketStorage(bucket, LocalDisk(tmp_path))
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "node-a")
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-b", 1)
    stored = {"vod.m3u8": vod(1, 1).encode(), "seg-1.m4s": b"a" * 100,
              "leg-1/vod.m3u8": vod(5, 1).encode(), "leg-1/seg-5.m4s": b"b" * 15,
              "leg-1/init-0.mp4": b"i"}  # fmt: skip
    for name, data in stored.items():
        await bucket.put(bucket.key(path, name), data, "application/octet-stream")
    # B's local copy of its leg (the live edge served from it).
    await asyncio.to_thread(write, tmp_path / path, {"leg-1/seg-5.m4s": b"b" * 15})
    assert await legs_bytes(recordings, path, None) == {0: 100, 1: 15}
    assert await Broadcasts(db).end(broadcast.id, "node-b")
    assert await RecordingLegs(db).finish(broadcast.id, 0, 100)
    assert await RecordingLegs(db).finish(broadcast.id, 1, 15)

    settings = RecordingsConfig(max_age_days=0, max_total_bytes=110)
    assert await Retention(db, recordings, settings).sweep() == [broadcast.id]
    assert await bucket.list_objects(bucket.key(path)) == []
    assert not await asyncio.to_thread((tmp_path / path).exists)


async def test_a_leg_whose_node_died_before_storing_anything_is_finished_empty(
    db: Database, tmp_path: Path
) -> None:
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "node-a")
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-b", 1)
    assert await RecordingLegs(db).finish(broadcast.id, 0, 100)
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-c", 2)
    await asyncio.to_thread(
        write, tmp_path / path, {"vod.m3u8": vod(1, 1), "seg-1.m4s": b"a" * 100}
    )
    # B died before its first segment; so did C: a survivor finishes both, from storage.
    storage = LocalDisk(tmp_path)
    assert await finish_leg(db, storage, broadcast.id, path, 1) == 0
    assert await BroadcastNodes(db).end_orphans("node-c")
    assert await finish_recording(db, storage, broadcast.id, path, still_open=False) == 0
    assert await Broadcasts(db).recording_location(broadcast.id) == ("show", path, [0])
    # Storage that holds nothing of the recording (another node's own disk): left as it is.
    other = await Broadcasts(db).start(stream_id, "recordings/1/r2", "node-d")
    assert await finish_leg(db, storage, other.id, "recordings/1/r2", 0) is None
    assert await RecordingLegs(db).unfinished(other.id) == [0]


async def test_a_dead_nodes_recording_is_finished_without_the_leg_a_draining_node_still_uploads(
    db: Database, tmp_path: Path
) -> None:
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "node-a")
    # A drains and is still uploading its last segments when B, which continued, dies.
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-b", 1)
    await asyncio.to_thread(write, tmp_path / path, {"vod.m3u8": vod(1, 1), "seg-1.m4s": b"a" * 50,
                                                     "leg-1/vod.m3u8": vod(5, 1),
                                                     "leg-1/seg-5.m4s": b"b" * 7})  # fmt: skip
    assert await BroadcastNodes(db).end_orphans("node-b")
    storage = LocalDisk(tmp_path)
    size = await finish_recording(
        db, storage, broadcast.id, path, still_open=False, legs_of="node-b"
    )
    assert size == 7
    assert await Broadcasts(db).recording_location(broadcast.id) is None  # A's leg goes on
    assert await RecordingLegs(db).finish(broadcast.id, 0, 100)  # A's, all of it uploaded
    assert await Broadcasts(db).recording_location(broadcast.id) == ("show", path, [0, 1])
    assert (
        await db.pool.fetchval("SELECT recording_bytes FROM broadcasts WHERE id = $1", broadcast.id)
        == 107
    )


async def test_a_node_started_again_finishes_the_legs_its_id_left_unfinished(
    db: Database, tmp_path: Path
) -> None:
    # A process of a box is killed and started again under the same id before any sibling
    # saw it gone: its leg of a broadcast that went on in a sibling is its own to finish.
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "box-p1")
    assert await BroadcastNodes(db).take_over(broadcast.id, "box-p2", 1)
    await asyncio.to_thread(write, tmp_path / path, {"vod.m3u8": vod(1, 1), "seg-1.m4s": b"a" * 40,
                                                     "leg-1/vod.m3u8": vod(5, 1),
                                                     "leg-1/seg-5.m4s": b"b" * 7})  # fmt: skip
    storage = LocalDisk(tmp_path)
    assert await finish_own_legs(db, storage, "box-p1") == [(broadcast.id, 0)]
    assert await finish_own_legs(db, storage, "box-p1") == []
    assert await RecordingLegs(db).unfinished(broadcast.id) == [1]  # p2 records it still
    assert await db.pool.fetchval(
        "SELECT ended_at IS NULL FROM broadcasts WHERE id = $1", broadcast.id
    )


def test_joined_playlists_kept_are_bounded_by_their_size() -> None:
    kept = JoinedPlaylists(kept_chars=10)
    kept.put(1, [0, 1], "aaaa")
    kept.put(2, [0, 1], "bbbb")
    assert kept.get(1, [0, 1]) == "aaaa"  # now the most recent
    kept.put(3, [0, 2], "cccc")
    assert kept.get(2, [0, 1]) is None and kept.get(1, [0, 1]) == "aaaa"
    assert kept.get(3, [0, 1]) is None and kept.get(3, [0, 2]) == "cccc"


async def test_a_joined_playlist_asked_for_by_many_at_once_is_made_once() -> None:
    kept = JoinedPlaylists()
    made, making, release = [], asyncio.Event(), asyncio.Event()

    async def make() -> str:
        made.append(1)
        making.set()
        await release.wait()
        return "joined"

    asking = [asyncio.create_task(kept.get_or_make(7, [0, 1], make)) for _ in range(20)]
    async with asyncio.timeout(10):
        await making.wait()  # the first asked for it to be made...
    release.set()  # ...and the other 19 wait for it
    assert await asyncio.gather(*asking) == ["joined"] * 20
    assert made == [1]
    assert await kept.get_or_make(7, [0, 1], make) == "joined" and made == [1]

    async def fail() -> str:
        raise OSError("bucket down")

    with pytest.raises(OSError):
        await kept.get_or_make(8, [0, 1], fail)
    assert kept.get(8, [0, 1]) is None  # not kept: asked again next time


async def test_a_recording_whose_first_leg_finished_before_the_next_node_took_over_waits_for_it(
    db: Database,
) -> None:
    stream_id = await live_stream(db)
    path = "recordings/1/r1"
    broadcast = await Broadcasts(db).start(stream_id, path, "node-a")
    # A's leg is finished before its publisher reaches B (A drained fast).
    assert await RecordingLegs(db).finish(broadcast.id, 0, 100)
    assert await BroadcastNodes(db).take_over(broadcast.id, "node-b", 1)
    assert await Broadcasts(db).end(broadcast.id, "node-b")
    assert await Broadcasts(db).recording_location(broadcast.id) is None  # B's leg to come
    assert await RecordingLegs(db).finish(broadcast.id, 1, 20)
    assert await Broadcasts(db).recording_location(broadcast.id) == ("show", path, [0, 1])
