"""Recording retention: delete recordings past their age, then the oldest while the recordings
take more storage than allowed, and remove the files of recordings taken down.

On local disk each node sweeps what its own disk holds (it asks the disk for each recording),
and removes the files of recordings deleted in the last `TAKEN_DOWN_DAYS` through any node.

With a bucket every node sees every recording, so one node sweeps at a time (the holder of a
PostgreSQL advisory lock; the others skip that sweep) and the sweep asks the bucket nothing it
does not have to: the recordings' sizes come from the database (recording_bytes, every leg's
bytes), and a deleted recording's objects are removed once, after which the database records
that they are gone (recording_files_removed_at) and no later sweep looks for them. A bucket
that fails during a sweep ends that sweep's bucket work: what was not removed keeps its row as
it was and is tried again by the next sweep. Every node still removes its own disk's copies of
recently deleted recordings (no bucket request).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from livecore.config import RecordingsConfig
from livecore.recordings.bucket_storage import BucketStorage
from livecore.recordings.storage import RecordingStorage
from livecore.store import Database
from livecore.store.broadcasts import Broadcasts, KeptRecording

logger = logging.getLogger(__name__)

# How long after an owner deletes a recording other nodes still look for its files on their
# disks: a node down longer than this keeps them until its operator removes them.
TAKEN_DOWN_DAYS = 7

# pg_try_advisory_xact_lock key of the bucket sweep ("lcretent" in ASCII): one node at a time.
SWEEP_LOCK = 0x6C63726574656E74


class Retention:
    def __init__(self, db: Database, storage: RecordingStorage, settings: RecordingsConfig) -> None:
        self._db = db
        self._broadcasts = Broadcasts(db)
        self._storage = storage
        self._settings = settings

    async def sweep(self, *, now: datetime | None = None) -> list[int]:
        """Delete what the policy says to; returns the broadcast ids whose recordings went."""
        now = now or datetime.now(UTC)
        if isinstance(self._storage, BucketStorage):
            return await self._sweep_bucket(self._storage, now)
        kept_anywhere = await self._broadcasts.kept_recordings()
        local = [r for r in kept_anywhere if await self._storage.holds(r.path)]
        doomed = self._doomed(local, now)
        for recording in doomed:
            await self._storage.delete(recording.path)
            await self._broadcasts.mark_deleted(recording.id)
            logger.info("recording of broadcast %d deleted by retention", recording.id)
        await self._remove_taken_down()
        return [r.id for r in doomed]

    def _doomed(self, recordings: list[KeptRecording], now: datetime) -> list[KeptRecording]:
        """Those past their age, then the oldest while the rest take more than the limit."""
        doomed: list[KeptRecording] = []
        if self._settings.max_age_days > 0:
            cutoff = now - timedelta(days=self._settings.max_age_days)
            doomed = [r for r in recordings if r.ended_at < cutoff]
        limit = self._settings.max_total_bytes
        if limit > 0:
            kept = [r for r in recordings if r not in doomed]
            total = sum(r.size_bytes for r in kept)
            for recording in kept:  # oldest first
                if total <= limit:
                    break
                doomed.append(recording)
                total -= recording.size_bytes
        return doomed

    async def _remove_taken_down(self) -> None:
        """Recordings their owners deleted through another node: their files are here."""
        for path in await self._broadcasts.recently_deleted(TAKEN_DOWN_DAYS):
            if await self._storage.delete(path):
                logger.info("deleted recording %s removed from this disk", path)

    async def _sweep_bucket(self, storage: BucketStorage, now: datetime) -> list[int]:
        deleted: list[int] = []
        async with self._db.pool.acquire() as conn, conn.transaction():
            # Held until the transaction ends, also when this node dies mid-sweep.
            if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SWEEP_LOCK):
                deleted = await self._delete_from_bucket(storage, now)
        # This node's own copies (the ones it recorded): its disk only.
        for path in await self._broadcasts.recently_deleted(TAKEN_DOWN_DAYS):
            await storage.local.delete(path)
        return deleted

    async def _delete_from_bucket(self, storage: BucketStorage, now: datetime) -> list[int]:
        deleted: list[int] = []
        removed = 0
        doomed = self._doomed(await self._broadcasts.kept_recordings(), now)
        taken_down = await self._broadcasts.files_to_remove()
        try:
            for recording in doomed:
                await storage.delete(recording.path)
                await self._broadcasts.mark_deleted(recording.id, files_removed=True)
                deleted.append(recording.id)
                logger.info("recording of broadcast %d deleted by retention", recording.id)
            for broadcast_id, path in taken_down:
                await storage.delete(path)
                await self._broadcasts.mark_files_removed(broadcast_id)
                removed += 1
                logger.info("deleted recording %s removed from the bucket", path)
        except Exception as exc:
            # The bucket (or the database) failed: the rest waits for the next sweep, with
            # its rows unchanged. One warning per sweep, not one per recording.
            left = len(doomed) + len(taken_down) - len(deleted) - removed
            logger.warning(
                "retention sweep stopped (%r); %d recordings left to the next sweep", exc, left
            )
        return deleted

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("recording retention sweep failed")
            await asyncio.sleep(self._settings.sweep_interval_s)
