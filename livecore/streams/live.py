"""Keeps the database in step with broadcasts starting and ending.

Hubs report state synchronously (they never wait); this turns those reports into ordered
database writes on one task, so a stream never shows live after its end was recorded.
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
    media: MediaInfo | None = None
    recording_path: str = ""
    recording_bytes: int = 0


class BroadcastLog:
    """Records each broadcast; `report()` never blocks, `run()` writes in order."""

    def __init__(self, db: Database, on_change: Callable[[], None]) -> None:
        self._broadcasts = Broadcasts(db)
        self._on_change = on_change
        self._queue: asyncio.Queue[StateChange] = asyncio.Queue(_QUEUE_CHANGES)
        self._open: dict[int, int] = {}  # stream id -> open broadcast id
        self.lost = 0

    def report(self, change: StateChange) -> None:
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.lost += 1
            logger.error("stream %d: state change lost, database writer is stuck",
                         change.stream_id)  # fmt: skip

    async def run(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                await self._apply(change)
            except Exception:
                logger.exception("stream %d: could not record state change", change.stream_id)
            finally:
                self._queue.task_done()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every reported change is written (shutdown, tests)."""
        async with asyncio.timeout(timeout_s):
            await self._queue.join()

    async def _apply(self, change: StateChange) -> None:
        if change.live:
            broadcast = await self._broadcasts.start(change.stream_id)
            self._open[change.stream_id] = broadcast.id
        else:
            broadcast_id = self._open.get(change.stream_id)
            if broadcast_id is None:
                return
            if change.media is not None:
                await self._broadcasts.describe(broadcast_id, change.media, change.recording_path)
            await self._broadcasts.end(broadcast_id, change.recording_bytes)
            del self._open[change.stream_id]
        self._on_change()
