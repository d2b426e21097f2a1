"""Taking a recording down: its owner (or an admin) deletes it."""

from __future__ import annotations

from livecore.recordings.bucket_storage import BucketStorage
from livecore.recordings.storage import RecordingStorage
from livecore.store import Database
from livecore.store.broadcasts import Broadcasts


async def take_down(
    db: Database, storage: RecordingStorage, stream_id: int, broadcast_id: int
) -> bool:
    """Stop listing and serving one of a stream's recordings: every node reads that from the
    database at once. Its files go from this node's storage now, or from the recording
    node's at its next retention sweep. False: the stream has no such recording."""
    path = await Broadcasts(db).delete_recording(stream_id, broadcast_id)
    if path is None:
        return False
    await storage.delete(path)
    if isinstance(storage, BucketStorage):  # no retention sweep looks for them again
        await Broadcasts(db).mark_files_removed(broadcast_id)
    return True
