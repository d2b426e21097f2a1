"""Keeps the database in step with broadcasts starting and ending.

Hubs report state synchronously (they never wait); this turns those reports into ordered
database writes on one task, so a stream never shows live after its end was recorded.
A broadcast's recording is listed (and played as VOD) only once its packaging has finished:
until then its playlist may still lack the last segment. Recordings interrupted by a crash
are finished by recordings.recovery at the next start.

Each broadcast row names the node carrying it. A publisher that leaves a draining node
(`handover`) leaves its broadcast open for `node.handover_s`; when it reconnects to another
node in that time, that node continues the same broadcast (`continues`): same id, same
recording, no second go-live, and it records the recording's next leg (`leg`,
store.recording_legs): each node reports its own leg done, and the recording is listed once
every leg is. Ends are conditional on the node still carrying it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from livecore.store import Database
from livecore.store.broadcast_nodes import BroadcastNodes
from livecore.store.broadcasts import Broadcasts, MediaInfo
from livecore.store.recording_legs import RecordingLegs

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
    continues: int | None = None  # at the start: the open broadcast continued here...
    leg: int = 0  # ...and the leg of its recording recorded here (0: none, its own)
    handover: bool = False  # at the end: it stays open for its publisher on another node


@dataclass(frozen=True, slots=True)
class HandoverOver:
    """A handed-over broadcast's wait is over: it ends unless another node continued it."""

    stream_id: int
    broadcast: int  # the hub's serial


@dataclass(frozen=True, slots=True)
class RecordingDone:
    """A broadcast's recording is complete on disk: from now on it is listed and played."""

    broadcast: int
    size_bytes: int  # 0: nothing was recorded


Change = StateChange | RecordingDone | HandoverOver


class BroadcastLog:
    """Records each broadcast; `report()` never blocks, `run()` writes in order."""

    def __init__(
        self,
        db: Database,
        on_change: Callable[[], None],
        *,
        node_id: str = "",
        on_ended: Callable[[int], None] | None = None,
    ) -> None:
        self._broadcasts = Broadcasts(db)
        self._nodes = BroadcastNodes(db)
        self._legs = RecordingLegs(db)
        self._node_id = node_id
        self._on_change = on_change
        # (stream id): a handed-over broadcast has ended after all (its `offline` event).
        self._on_ended = on_ended or (lambda stream_id: None)
        self._queue: asyncio.Queue[Change] = asyncio.Queue(_QUEUE_CHANGES)
        # stream id -> (open broadcast id, the leg of its recording recorded here; None: none)
        self._open: dict[int, tuple[int, int | None]] = {}
        # broadcast (serial) -> (id, leg), until RecordingDone
        self._recording: dict[int, tuple[int, int]] = {}
        self._handed_over: dict[int, int] = {}  # broadcast (serial) -> id, until HandoverOver
        self.lost = 0

    def report(self, change: Change) -> None:
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

    async def _apply(self, change: Change) -> None:
        if isinstance(change, RecordingDone):
            recording = self._recording.pop(change.broadcast, None)
            if recording is not None:
                await self._legs.finish(*recording, change.size_bytes)
        elif isinstance(change, HandoverOver):
            broadcast_id = self._handed_over.pop(change.broadcast, None)
            if broadcast_id is None:
                return
            if await self._broadcasts.end(broadcast_id, self._node_id):
                logger.info("broadcast %d: its publisher did not come back, ended", broadcast_id)
                self._on_ended(change.stream_id)
        elif change.live:
            self._open[change.stream_id] = await self._start(change)
        else:
            opened = self._open.pop(change.stream_id, None)
            if opened is None:
                return
            broadcast_id, leg = opened
            if change.media is not None:
                await self._broadcasts.describe(broadcast_id, change.media)
            if change.handover:
                self._handed_over[change.broadcast] = broadcast_id
            else:
                await self._broadcasts.end(broadcast_id, self._node_id)
            if change.recording_follows and leg is not None:
                self._recording[change.broadcast] = (broadcast_id, leg)
        self._on_change()

    async def _start(self, change: StateChange) -> tuple[int, int | None]:
        if change.continues is not None:
            if await self._nodes.take_over(change.continues, self._node_id, change.leg):
                logger.info("stream %d: broadcast %d continues on this node (leg %d)",
                            change.stream_id, change.continues, change.leg)  # fmt: skip
                # Leg 0: the broadcast has no recording to go on with (this one is not its).
                return change.continues, change.leg or None
            logger.warning("stream %d: broadcast %d ended before it could continue here",
                           change.stream_id, change.continues)  # fmt: skip
        broadcast = await self._broadcasts.start(
            change.stream_id, change.recording_path, self._node_id
        )
        return broadcast.id, 0
