"""Recordings kept in an S3-compatible bucket (`RecordingStorage`): every node reads every
recording from the bucket, so any node serves any recording as VOD.

The node that records a broadcast still writes it to its own disk first (the LL-HLS origin
serves the live edge from there) and `uploader.py` copies each complete segment, init
segment and the VOD playlist into the bucket. Deleting a recording (retention, takedown)
deletes its objects and this node's local copy, if any.

Bucket layout, for whoever finishes a recording from what reached the bucket (drain and
failover): under `<key prefix><recording path>/` (the path the database keeps, e.g.
"recordings/7/20261207T101500000000Z/"), the source rendition's `init-<n>.mp4`,
`seg-<msn>.m4s` and `vod.m3u8`, and the same for each lower rendition under "<name>/"
("360p/vod.m3u8"), and all of it again under "leg-<k>/" for the leg recorded by the k-th
node the broadcast moved to (layout.py). A playlist in the bucket only ever lists segments
already there (it is uploaded after them) and always ends with EXT-X-ENDLIST, so it is a
finished VOD playlist as it stands:
`recovery.finish_recording(db, storage, broadcast_id, path, still_open=True)` finishes a
dead node's recording from it.
"""

from __future__ import annotations

import asyncio
import logging
from fnmatch import fnmatch
from pathlib import Path
from posixpath import basename

from livecore.recordings.bucket import Bucket
from livecore.recordings.layout import SEGMENT_GLOB, VOD_PLAYLIST
from livecore.recordings.storage import ByteRange, LocalDisk, ObjectStream, StoredObject
from livecore.recordings.uploader import CONTENT_TYPES

logger = logging.getLogger(__name__)


class BucketStorage:
    """Recordings in `bucket`; `local` is this node's disk, holding the copies it wrote."""

    def __init__(self, bucket: Bucket, local: LocalDisk) -> None:
        self.bucket = bucket
        self.local = local

    async def holds(self, path: str) -> bool:
        if not path:
            return False
        prefix = self.bucket.key(path)
        async with asyncio.timeout(self.bucket.settings.request_timeout_s):
            response = await self.bucket.client.list_objects_v2(
                Bucket=self.bucket.name, Prefix=prefix, MaxKeys=1
            )
        return response.get("KeyCount", 0) > 0

    async def objects(self, path: str) -> list[StoredObject] | None:
        if not path:
            return None
        prefix = self.bucket.key(path)
        found = [
            StoredObject(k[len(prefix) :], n) for k, n in await self.bucket.list_objects(prefix)
        ]
        return found or None

    async def read(self, path: str, name: str) -> bytes:
        return await self.bucket.read(self.bucket.key(path, name))

    async def stream(self, path: str, name: str, byte_range: ByteRange | None) -> ObjectStream:
        return await self.bucket.stream(self.bucket.key(path, name), byte_range)

    def local_file(self, path: str, name: str) -> Path | None:
        return None  # every node reads the bucket: the same bytes whichever node answers

    async def delete(self, path: str) -> bool:
        """Delete the recording's objects and this node's local copy."""
        local = await self.local.delete(path)
        if not path:
            return local
        keys = [key for key, _ in await self.bucket.list_objects(self.bucket.key(path))]
        await self.bucket.delete(keys)
        return bool(keys) or local

    async def recover_local(self, path: str) -> bool:
        """Whether this node recorded `path` (its disk holds a copy); if so, first upload what
        of it never reached the bucket (a crash with uploads still queued): its missing init
        segments and segments, then each rendition's playlist from the disk, which lists them
        all. A failure is logged: the recording keeps what the bucket has."""
        local = await self.local.objects(path)
        if local is None:
            return False
        stored = {o.name for o in await self.objects(path) or []}
        missing = [o.name for o in local if o.name not in stored and _media(o.name)]
        try:
            for name in missing:
                kind = CONTENT_TYPES["init" if name.endswith(".mp4") else "segment"]
                data = await self.local.read(path, name)
                await self.bucket.put(self.bucket.key(path, name), data, kind)
            playlists = [o.name for o in local if basename(o.name) == VOD_PLAYLIST]
            for name in playlists if missing else []:
                data = await self.local.read(path, name)
                await self.bucket.put(self.bucket.key(path, name), data, CONTENT_TYPES["playlist"])
        except Exception:
            logger.exception("recording %s: could not upload what the bucket lacks", path)
        return True


def _media(name: str) -> bool:
    """An init segment or a segment (not a part, nor the playlist)."""
    leaf = basename(name)
    return fnmatch(leaf, SEGMENT_GLOB) or fnmatch(leaf, "init-*.mp4")
