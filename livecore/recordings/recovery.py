"""Crash recovery: a node's recordings that were still being written when it stopped.

`finish_recording` finishes one recording from what its storage holds: with the bucket
(bucket_storage.py), that is what reached the bucket, so any node can finish a dead node's
recording with it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from fnmatch import fnmatch
from posixpath import basename

from livecore.recordings.layout import SEGMENT_GLOB, VOD_PLAYLIST
from livecore.recordings.storage import RecordingStorage
from livecore.store import Database
from livecore.store.broadcasts import Broadcasts

logger = logging.getLogger(__name__)


async def finish_interrupted(
    db: Database,
    storage: RecordingStorage,
    *,
    recorded_here: Callable[[str], Awaitable[bool]] | None = None,
    node_id: str | None = None,
) -> list[int]:
    """At a node's start: finish what it was recording when it stopped without ending its
    broadcasts (a crash, a kill). Their recordings are playable up to the last complete
    segment stored (the VOD playlist is rewritten after each): they are listed, and
    broadcasts still open are ended, their streams offline. Nothing else packages here yet.

    With local disks (`recorded_here` None) every unfinished recording stored here is such
    a one; other nodes' recordings are in their own storage and are left to them. With a
    shared bucket every node sees every recording: `recorded_here(path)` tells this node's
    own (its disk holds a copy; it may first upload what the bucket lacks of it), and only
    those are finished here.

    A broadcast still open that another node continued (its publisher reconnected there:
    its row names that node, not `node_id`) goes on there; only its recording, the part
    stored here, is finished."""
    broadcasts = Broadcasts(db)
    finished = []
    for broadcast_id, path, still_open in await broadcasts.unfinished_recordings():
        if recorded_here is not None and not await recorded_here(path):
            continue
        size = await finish_recording(
            db, storage, broadcast_id, path, still_open=still_open,
            missing_is_empty=recorded_here is not None, node_id=node_id,
        )  # fmt: skip
        if size is None:
            continue
        finished.append(broadcast_id)
        logger.warning(
            "broadcast %d was interrupted (the node stopped during it): recording of %d bytes"
            " kept up to its last complete segment", broadcast_id, size,
        )  # fmt: skip
    return finished


async def finish_recording(
    db: Database,
    storage: RecordingStorage,
    broadcast_id: int,
    path: str,
    *,
    still_open: bool,
    missing_is_empty: bool = False,
    node_id: str | None = None,
) -> int | None:
    """Finish one recording from what `storage` holds of it: end its broadcast if it is
    `still_open` (its stream goes offline), and mark the recording done with the media bytes
    stored, so it is listed and served as VOD up to its last stored segment (0 bytes: never
    listed). Returns that size; None, changing nothing, when the storage does not hold it
    (unless `missing_is_empty`: then it is finished empty). With `node_id`, an open broadcast
    is ended only while its row names that node (another may have continued it)."""
    broadcasts = Broadcasts(db)
    size = await recorded_bytes(storage, path)
    if size is None:
        if not missing_is_empty:
            return None
        size = 0
    if still_open:
        await broadcasts.end(broadcast_id, node_id)
    await broadcasts.recording_done(broadcast_id, size)
    return size


async def recorded_bytes(storage: RecordingStorage, path: str) -> int | None:
    """Media bytes of a recording stored here, every rendition's segments (0 without a
    complete segment); None when it is not stored here."""
    objects = await storage.objects(path)
    if objects is None:
        return None
    if not any(o.name == VOD_PLAYLIST for o in objects):
        return 0
    return sum(o.size for o in objects if fnmatch(basename(o.name), SEGMENT_GLOB))
