"""Crash recovery: a node's recordings that were still being written when it stopped."""

from __future__ import annotations

import logging
from fnmatch import fnmatch
from posixpath import basename

from livecore.recordings.layout import SEGMENT_GLOB, VOD_PLAYLIST
from livecore.recordings.storage import RecordingStorage
from livecore.store import Database
from livecore.store.broadcasts import Broadcasts

logger = logging.getLogger(__name__)


async def finish_interrupted(
    db: Database, storage: RecordingStorage, node_id: str | None = None
) -> list[int]:
    """At a node's start: finish what it was recording when it stopped without ending its
    broadcasts (a crash, a kill). Their recordings are stored here, playable up to the last
    complete segment (the writer rewrote the VOD playlist after each): they are listed, and
    broadcasts still open are ended, their streams offline. Nothing else packages here yet,
    so every unfinished recording stored here is such a one; other nodes' recordings are in
    their own storage and are left to them. A broadcast still open that another node
    continued (its publisher reconnected there: its row names that node, not `node_id`)
    goes on there; only its recording, the part stored here, is finished."""
    broadcasts = Broadcasts(db)
    finished = []
    for broadcast_id, path, still_open in await broadcasts.unfinished_recordings():
        size = await recorded_bytes(storage, path)
        if size is None:
            continue
        if still_open:
            await broadcasts.end(broadcast_id, node_id)  # not when another node carries it
        await broadcasts.recording_done(broadcast_id, size)
        finished.append(broadcast_id)
        logger.warning(
            "broadcast %d was interrupted (the node stopped during it): recording of %d bytes"
            " kept up to its last complete segment", broadcast_id, size,
        )  # fmt: skip
    return finished


async def recorded_bytes(storage: RecordingStorage, path: str) -> int | None:
    """Media bytes of a recording stored here, every rendition's segments (0 without a
    complete segment); None when it is not stored here."""
    objects = await storage.objects(path)
    if objects is None:
        return None
    if not any(o.name == VOD_PLAYLIST for o in objects):
        return 0
    return sum(o.size for o in objects if fnmatch(basename(o.name), SEGMENT_GLOB))
