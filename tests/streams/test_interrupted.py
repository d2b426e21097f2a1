"""A node that stopped mid-broadcast (a crash, a kill) finishes those broadcasts when it
starts again: the stream goes offline and the recording is listed up to its last complete
segment. Another node's open broadcast is left alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from livecore.config import Config
from tests.conftest import MakeClient
from tests.streams.rows import creator_stream

VOD = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.00000,\nseg-0.m4s\n#EXT-X-ENDLIST\n"


def _files(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


async def _live_broadcast(conn: asyncpg.Connection, slug: str, path: str) -> tuple[int, int]:
    stream = await creator_stream(conn, slug, live=True)
    broadcast = await conn.fetchval(
        "INSERT INTO broadcasts (stream_id, recording_path) VALUES ($1, $2) RETURNING id",
        stream,
        path,
    )
    return int(stream), int(broadcast)


async def test_broadcasts_interrupted_by_a_crash_are_finished_at_the_next_start(
    make_client: MakeClient, config: Config, dsn: str
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        crashed_stream, crashed = await _live_broadcast(conn, "crashed", "recordings/1/a")
        await asyncio.to_thread(
            _files,
            config.data_path / "recordings/1/a",
            {"init-0.mp4": b"i" * 10, "seg-0.m4s": b"s" * 1000, "part-1-0.m4s": b"p" * 300,
             "vod.m3u8": VOD.encode(), "360p/seg-0.m4s": b"l" * 200},
        )  # fmt: skip
        # Live on another node: its recording is not on this disk.
        elsewhere_stream, elsewhere = await _live_broadcast(conn, "elsewhere", "recordings/2/b")

        client = await make_client()  # this node starts again

        rows = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, ended_at, recording_ready, recording_bytes FROM broadcasts"
            )
        }
        states = {r["id"]: r["state"] for r in await conn.fetch("SELECT id, state FROM streams")}
    finally:
        await conn.close()
    assert rows[crashed]["ended_at"] is not None and rows[crashed]["recording_ready"]
    assert rows[crashed]["recording_bytes"] == 1200  # the complete segments, every rendition
    assert states[crashed_stream] == "offline"
    assert rows[elsewhere]["ended_at"] is None and not rows[elsewhere]["recording_ready"]
    assert states[elsewhere_stream] == "live"

    listed = await (await client.get("/api/v1/streams/crashed/recordings")).json()
    assert [r["id"] for r in listed["recordings"]] == [crashed]
    vod = await client.get(f"/vod/{crashed}/vod.m3u8")
    assert vod.status == 200 and "#EXT-X-ENDLIST" in await vod.text()


async def test_a_broadcast_another_node_continued_stays_open_when_its_first_node_restarts(
    make_client: MakeClient, config: Config, dsn: str
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        stream, broadcast = await _live_broadcast(conn, "moved", "recordings/1/a")
        await asyncio.to_thread(
            _files, config.data_path / "recordings/1/a",
            {"init-0.mp4": b"i" * 10, "seg-0.m4s": b"s" * 1000, "vod.m3u8": VOD.encode()},
        )  # fmt: skip
        # Its publisher reconnected to node-b, which carries it now.
        await conn.execute("UPDATE broadcasts SET node_id = 'node-b' WHERE id = $1", broadcast)

        await make_client()  # the first node starts again

        ended = await conn.fetchval("SELECT ended_at FROM broadcasts WHERE id = $1", broadcast)
        state = await conn.fetchval("SELECT state FROM streams WHERE id = $1", stream)
    finally:
        await conn.close()
    assert ended is None
    assert state == "live"
