"""Recording retention: delete recordings past their age, then the oldest while this node's
recordings take more disk than allowed. Runs on each node for the recordings it stores: with
a bucket, every node sees every recording, so the size limit is the bucket's (all nodes'
recordings together), and deleting one twice is harmless."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from livecore.config import RecordingsConfig
from livecore.recordings.storage import RecordingStorage
from livecore.store import Database
from livecore.store.broadcasts import Broadcasts, KeptRecording

logger = logging.getLogger(__name__)

# How long after an owner deletes a recording other nodes still look for its files: a node
# down longer than this keeps them until its operator removes them.
TAKEN_DOWN_DAYS = 7


class Retention:
    def __init__(self, db: Database, storage: RecordingStorage, settings: RecordingsConfig) -> None:
        self._broadcasts = Broadcasts(db)
        self._storage = storage
        self._settings = settings

    async def sweep(self, *, now: datetime | None = None) -> list[int]:
        """Delete what the policy says to; returns the broadcast ids whose recordings went."""
        now = now or datetime.now(UTC)
        kept_anywhere = await self._broadcasts.kept_recordings()
        local = [r for r in kept_anywhere if await self._storage.holds(r.path)]
        doomed: list[KeptRecording] = []
        if self._settings.max_age_days > 0:
            cutoff = now - timedelta(days=self._settings.max_age_days)
            doomed = [r for r in local if r.ended_at < cutoff]
        limit = self._settings.max_total_bytes
        if limit > 0:
            kept = [r for r in local if r not in doomed]
            total = sum(r.size_bytes for r in kept)
            for recording in kept:  # oldest first
                if total <= limit:
                    break
                doomed.append(recording)
                total -= recording.size_bytes
        for recording in doomed:
            await self._storage.delete(recording.path)
            await self._broadcasts.mark_deleted(recording.id)
            logger.info("recording of broadcast %d deleted by retention", recording.id)
        await self._remove_taken_down()
        return [r.id for r in doomed]

    async def _remove_taken_down(self) -> None:
        """Recordings their owners deleted through another node: their files are here."""
        for path in await self._broadcasts.recently_deleted(TAKEN_DOWN_DAYS):
            if await self._storage.delete(path):
                logger.info("deleted recording %s removed from this disk", path)

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("recording retention sweep failed")
            await asyncio.sleep(self._settings.sweep_interval_s)
