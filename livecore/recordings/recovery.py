"""Crash recovery: a node's recordings that were still being written when it stopped.

`finish_recording` finishes one recording from what its storage holds: with the bucket
(bucket_storage.py), that is what reached the bucket, so any node can finish a dead node's
recording with it; `finish_leg` one leg of it, recorded by a node that died after its
publisher had moved on (the broadcast goes on elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from fnmatch import fnmatch
from posixpath import basename

from livecore.recordings.layout import SEGMENT_GLOB, VOD_PLAYLIST, leg_of, leg_path
from livecore.recordings.storage import RecordingStorage
from livecore.store import Database
from livecore.store.broadcasts import Broadcasts
from livecore.store.recording_legs import RecordingLegs

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
    its row names that node, not `node_id`) goes on there; only the legs of its recording
    recorded before are finished (the leg that node records is its own to finish). One whose
    row still names `node_id` is left to this node's start in livecore.cluster (the reaper's
    `after_start`: at once after a crash, after the handover wait after a drain)."""
    broadcasts = Broadcasts(db)
    finished = []
    # The broadcasts still open that this node carries are its own to end, with their
    # recordings, as it starts (cluster.reaper.after_start): maybe not at once (a drain).
    for broadcast_id, path, still_open in await broadcasts.unfinished_recordings(node_id):
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
    legs_of: str | None = None,
) -> int | None:
    """Finish one recording from what `storage` holds of it: end its broadcast if it is
    `still_open` (its stream goes offline), and finish each of its legs not finished yet
    with the media bytes stored of it (store.recording_legs), so it is listed and served as
    VOD up to its last stored segment once every leg is (0 bytes: never listed). Returns the
    bytes of the legs finished here; None, changing nothing, when the storage holds none of
    them (unless `missing_is_empty`: then a leg it lacks is finished empty). When it holds
    some, a leg it lacks is finished empty too: its node stored nothing of it (it died before
    its first segment), or, with separate disks, kept it on its own. With `node_id`,
    an open broadcast is ended only while its row names that node (another may have
    continued it), and the leg that node records is left to it. With `legs_of`, only the
    legs that node recorded are finished (a dead node's: the others' nodes finish theirs)."""
    legs = RecordingLegs(db)
    sizes = await legs_bytes(storage, path, None)
    if not sizes and not missing_is_empty:
        return None
    if still_open:
        await Broadcasts(db).end(broadcast_id, node_id)
    # After the end: a leg another node records now (it continued the broadcast) is its own.
    unfinished = await legs.unfinished(broadcast_id, node_id, of_node=legs_of)
    total = 0
    for leg in [0] if unfinished is None else unfinished:
        size = sizes.get(leg, 0)
        await legs.finish(broadcast_id, leg, size)
        total += size
    return total


async def finish_leg(
    db: Database, storage: RecordingStorage, broadcast_id: int, path: str, leg: int
) -> int | None:
    """Finish one leg of a recording, recorded by a node that died since, from what
    `storage` holds of it (a bucket: what reached it; nothing, when the recording's other
    legs are there: empty). Returns its media bytes; None, changing nothing, when the storage
    holds nothing of the recording (it is on the node's own disk)."""
    sizes = await legs_bytes(storage, path, None)
    if not sizes:
        return None
    size = sizes.get(leg, 0)
    await RecordingLegs(db).finish(broadcast_id, leg, size)
    return size


async def finish_own_legs(
    db: Database,
    storage: RecordingStorage,
    node_id: str,
    *,
    upload: Callable[[str], Awaitable[bool]] | None = None,
) -> list[tuple[int, int]]:
    """At a node's start, a process started again too: the legs this node id left unfinished
    when it last stopped (it records nothing yet), whose broadcasts went on on other nodes
    or are still open, are finished from what storage holds, so that their recordings
    complete when their broadcasts end. A node id is one process: no sibling records these.
    `upload(leg path)`: first copy what of it only this node's disk holds (a bucket's).
    Returns the (broadcast, leg) finished."""
    finished = []
    for leg in await RecordingLegs(db).of_node(node_id):
        if upload is not None:
            await upload(leg_path(leg.recording_path, leg.leg))
        size = await finish_leg(db, storage, leg.broadcast_id, leg.recording_path, leg.leg)
        if size is not None:
            finished.append((leg.broadcast_id, leg.leg))
            logger.warning("broadcast %d: leg %d left by the last stop finished (%d bytes)",
                           leg.broadcast_id, leg.leg, size)  # fmt: skip
    return finished


async def legs_bytes(
    storage: RecordingStorage, path: str, wanted: list[int] | None
) -> dict[int, int]:
    """Media bytes of each leg of the recording at `path` that storage holds (0: no complete
    segment, its playlist missing), of the legs `wanted` (None: every leg), in one listing."""
    objects = await storage.objects(path)
    found: dict[int, int] = {}
    playlists: set[int] = set()
    for o in objects or []:
        leg = leg_of(o.name)
        if wanted is not None and leg not in wanted:
            continue
        found.setdefault(leg, 0)
        leaf = o.name.partition("/")[2] if leg else o.name
        if leaf == VOD_PLAYLIST:
            playlists.add(leg)
        elif fnmatch(basename(o.name), SEGMENT_GLOB):
            found[leg] += o.size
    return {leg: size if leg in playlists else 0 for leg, size in found.items()}
