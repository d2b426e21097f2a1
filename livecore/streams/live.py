"""Keeps the database in step with broadcasts starting and ending.

Hubs report state synchronously (they never wait); this turns those reports into ordered
database writes on one task, so a stream never shows live after its end was recorded.
A broadcast's recording is listed (and played as VOD) only once its packaging has finished:
until then its playlist may still lack the last segment. Recordings interrupted by a crash
are finished by recordings.recovery at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from livecore.store import Database
from livecore.store.broadcasts import Broadcasts, MediaInfo

logger = logging.getLogger(__name__)

# State changes are rare (a go-live, an end); a backlog this deep means the database is down.
_QUEUE_CHANGES = 10_000


@dataclass(frozen=True, slots=True)
class StateChange:
    stream_id: int
    live: bool
    broadcast: int  # which broadcast (the hub's serial): a recording report names it too
    recording_path: str = ""  # at the start: where it records, relative to the data directory
    media: MediaInfo | None = None  # at the end
    recording_follows: bool = False  # at the end: a RecordingDone will come


@dataclass(frozen=True, slots=True)
class RecordingDone:
    """A broadcast's recording is complete on disk: from now on it is listed and played."""

    broadcast: int
    size_bytes: int  # 0: nothing was recorded


class BroadcastLog:
    """Records each broadcast; `report()` never blocks, `run()` writes in order."""

    def __init__(self, db: Database, on_change: Callable[[], None]) -> None:
        self._broadcasts = Broadcasts(db)
        self._on_change = on_change
        self._queue: asyncio.Queue[StateChange | RecordingDone] = asyncio.Queue(_QUEUE_CHANGES)
        self._open: dict[int, int] = {}  # stream id -> open broadcast id
        self._recording: dict[int, int] = {}  # broadcast (serial) -> id, until RecordingDone
        self.lost = 0

    def report(self, change: StateChange | RecordingDone) -> None:
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.lost += 1
            logger.error("%s lost, database writer is stuck", change)

    async def run(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                await self._apply(change)
            except Exception:
                logger.exception("could not record %s", change)
            finally:
                self._queue.task_done()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every reported change is written (shutdown, tests)."""
        async with asyncio.timeout(timeout_s):
            await self._queue.join()

    async def _apply(self, change: StateChange | RecordingDone) -> None:
        if isinstance(change, RecordingDone):
            broadcast_id = self._recording.pop(change.broadcast, None)
            if broadcast_id is not None:
                await self._broadcasts.recording_done(broadcast_id, change.size_bytes)
        elif change.live:
            broadcast = await self._broadcasts.start(change.stream_id, change.recording_path)
            self._open[change.stream_id] = broadcast.id
        else:
            broadcast_id = self._open.pop(change.stream_id, None)
            if broadcast_id is None:
                return
            if change.media is not None:
                await self._broadcasts.describe(broadcast_id, change.media)
            await self._broadcasts.end(broadcast_id)
            if change.recording_follows:
                self._recording[change.broadcast] = broadcast_id
        self._on_change()
