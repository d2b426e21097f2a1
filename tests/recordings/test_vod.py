"""VOD from a storage that keeps no local files (as object storage would): the files are
read through the storage seam instead of sent from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.appkeys import RECORDINGS
from livecore.config import Config
from livecore.recordings.storage import ByteRange, ObjectStream, StoredObject, slice_object
from tests.streams.rows import creator_stream
from tests.support.fakes import CapturingMailSender

Client = TestClient[Any, Any]


class MemoryStorage:
    """A RecordingStorage without local files: objects by (recording, name)."""

    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self._objects = objects

    async def holds(self, path: str) -> bool:
        return any(p == path for p, _ in self._objects)

    async def objects(self, path: str) -> list[StoredObject] | None:
        found = [StoredObject(n, len(d)) for (p, n), d in self._objects.items() if p == path]
        return found or None

    async def read(self, path: str, name: str) -> bytes:
        try:
            return self._objects[path, name]
        except KeyError:
            raise FileNotFoundError(name) from None

    async def stream(self, path: str, name: str, byte_range: ByteRange | None) -> ObjectStream:
        return slice_object(await self.read(path, name), byte_range)

    def local_file(self, path: str, name: str) -> Path | None:
        return None

    async def delete(self, path: str) -> bool:
        doomed = [key for key in self._objects if key[0] == path]
        for key in doomed:
            del self._objects[key]
        return bool(doomed)


async def test_a_recording_without_local_files_is_read_through_the_storage(
    aiohttp_client: AiohttpClient, config: Config, dsn: str, mailer: CapturingMailSender
) -> None:
    path = "recordings/1/r1"
    conn = await asyncpg.connect(dsn)
    try:
        await creator_stream(conn, "show")
        broadcast = await conn.fetchval(
            "INSERT INTO broadcasts (stream_id, ended_at, recording_path, recording_ready,"
            " recording_bytes) SELECT id, now(), $1, true, 4 FROM streams WHERE slug = 'show'"
            " RETURNING id",
            path,
        )
    finally:
        await conn.close()
    app = create_app(config, database_url=dsn, mailer=mailer)
    playlist = b"#EXTM3U\n#EXTINF:2.00000,\nseg-0.m4s\n#EXT-X-ENDLIST\n"
    app[RECORDINGS] = MemoryStorage({(path, "vod.m3u8"): playlist, (path, "seg-0.m4s"): b"seg!"})
    client: Client = await aiohttp_client(app)

    seg = await client.get(f"/vod/{broadcast}/seg-0.m4s")
    assert seg.status == 200 and await seg.read() == b"seg!"
    assert seg.content_type == "video/iso.segment"
    assert seg.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    vod = await client.get(f"/vod/{broadcast}/vod.m3u8")
    assert vod.status == 200 and await vod.read() == playlist
    assert (await client.get(f"/vod/{broadcast}/seg-1.m4s")).status == 404
