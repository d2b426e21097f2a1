"""Ends the broadcasts of nodes that died: every node checks, each heartbeat, which nodes
carry open broadcasts (the database) and which are alive (the directory). A node missing from
the directory for `node.handover_s` (its entries expire within `node.directory_ttl_s` of its
death) has its broadcasts ended, its streams marked offline and their viewers told, by
exactly one surviving node: the database's row locks decide which (store.broadcast_nodes).

Their recordings are finished by that node too, from what its storage holds of them
(`recordings.recovery.finish_recording`): with a bucket, whatever the dead node uploaded,
up to its last segment; a recording on the dead node's own disk is not there and is
finished when that node starts again. So are the legs of recordings it was writing whose
broadcasts went on on another node (its publishers moved on after it died, or while it
drained: `recovery.finish_leg`), so that those recordings complete when their broadcasts end.

A node started again quickly under the same id (a process of `livecore serve --processes N`
that died, which its parent starts again within seconds; a single node restarted by systemd
or by hand within the directory TTL) never leaves the directory, so no survivor ends what it
carried: the node does it itself as it starts (`after_start`), before it takes any request.
At once after a crash; after a drain, the broadcasts it left open for a handover wait the
rest of `node.handover_s` (counted from its stop, as survivors count it from its entries'
expiry) for their publishers to continue elsewhere. Its row is the rule: a broadcast whose
row still names this node has no publisher here (its hubs died with the process) and nobody
continued it, so it ends; one a publisher continued on another node meanwhile names that
node (`handover.py`) and goes on there. (While the crashed node still looks alive, a
reconnecting publisher starts a new broadcast, which ends the old one; its recording is
still this node's to finish.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from livecore.cluster.directory import Directory, DirectoryUnavailable
from livecore.events.bus import EventBus
from livecore.events.types import StreamState
from livecore.recordings.bucket_storage import BucketStorage
from livecore.recordings.recovery import finish_leg, finish_recording
from livecore.recordings.storage import RecordingStorage
from livecore.store import Database
from livecore.store.audit import AuditLog, JsonValue
from livecore.store.broadcast_nodes import BroadcastNodes
from livecore.store.recording_legs import RecordingLegs

logger = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self, db: Database, directory: Directory, bus: EventBus, audit: AuditLog,
        storage: RecordingStorage, *, interval_s: float, handover_s: float,
        on_change: Callable[[], None],
    ) -> None:  # fmt: skip
        self._db = db
        self._storage = storage
        self._broadcasts = BroadcastNodes(db)
        self._directory = directory
        self._bus = bus
        self._audit = audit
        self._interval_s = interval_s
        self._handover_s = handover_s
        self._on_change = on_change  # listings cached here drop their copies
        self._missing_since: dict[str, float] = {}
        self._legs = RecordingLegs(db)
        # (broadcast, leg) of dead nodes that this node's storage does not hold.
        self._not_here: set[tuple[int, int]] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sweep()
            except DirectoryUnavailable:
                logger.warning("cannot tell which nodes are alive: the directory is unreachable")
            except Exception:
                logger.exception("could not end the broadcasts of nodes that are gone")

    async def sweep(self) -> int:
        """One check; returns how many broadcasts this node ended."""
        me = self._directory.node.id
        carrying = await self._broadcasts.nodes_with_open_broadcasts() - {me}
        if not carrying:
            self._missing_since.clear()
            return 0
        # Only the nodes carrying broadcasts are looked up (not a scan of every node).
        alive = await self._directory.alive(carrying)
        now = time.monotonic()
        for node_id in list(self._missing_since):
            if node_id not in carrying or node_id in alive:
                del self._missing_since[node_id]
        ended = 0
        for node_id in sorted(carrying - alive):
            since = self._missing_since.setdefault(node_id, now)
            if now - since >= self._handover_s:
                ended += await self._end_orphans(node_id)
                await self._finish_legs(node_id)
        return ended

    async def after_start(self) -> asyncio.Task[int] | None:
        """This node has started (again, under its id): end the broadcasts its rows say it
        still carries, at once, unless it stopped by draining and left them open for a
        handover less than the wait ago (`Handover.leave`): those are ended when the wait is
        over, if no publisher continued them elsewhere meanwhile (their rows then name that
        node). Returns the task that waits, if any (the caller cancels it at shutdown)."""
        try:
            left, wait_s = await self._directory.left_for_handover(self._directory.node.id)
        except DirectoryUnavailable:
            left, wait_s = frozenset(), 0.0  # ended now, as after a crash
        await self.end_own(but=left)
        if not left:
            return None
        logger.info("%d broadcasts left for a handover wait %.1f s more for their publishers",
                    len(left), wait_s)  # fmt: skip

        async def later() -> int:
            await asyncio.sleep(wait_s)
            return await self.end_own(only=left)

        return asyncio.create_task(later(), name="handover-wait")

    async def end_own(
        self, *, only: Collection[int] | None = None, but: Collection[int] = ()
    ) -> int:
        """Started again after this node stopped: end the broadcasts this node still carries
        (of `only`, but `but`; viewers on every node told, audited, as for a dead node) and
        finish every recording this node left unfinished (of `only`), also those of
        broadcasts a publish elsewhere has ended since. Returns how many broadcasts it ended."""
        me = self._directory.node.id
        ended = await self._end_orphans(me, finish=False, restarted=True, only=only, but=but)
        for broadcast_id, path in await self._broadcasts.unfinished_recordings(me, only):
            if isinstance(self._storage, BucketStorage):
                # The box's disk holds what the dead process had not uploaded yet.
                await self._storage.recover_local(path)
            await self._finish_recording(broadcast_id, path, me)
        return ended

    async def _end_orphans(
        self, node_id: str, *, finish: bool = True, restarted: bool = False,
        only: Collection[int] | None = None, but: Collection[int] = (),
    ) -> int:  # fmt: skip
        orphans = await self._broadcasts.end_orphans(node_id, only=only, but=but)
        if not orphans:
            return 0
        self._on_change()
        for orphan in orphans:
            logger.warning(
                "broadcast %d of stream %d ended: node %s %s", orphan.id, orphan.stream_id,
                node_id, "died and was started again" if restarted else "is gone",
            )  # fmt: skip
            details: dict[str, JsonValue] = {"stream_id": orphan.stream_id, "node_id": node_id}
            if restarted:
                details["restarted"] = True
            await self._audit.record("broadcast.node_lost", "broadcast", orphan.id, details=details)
            await self._bus.publish(orphan.stream_id, StreamState("offline"))
        for orphan in orphans if finish else ():
            if orphan.recording_path:
                await self._finish_recording(orphan.id, orphan.recording_path, node_id)
        return len(orphans)

    async def _finish_legs(self, node_id: str) -> None:
        """Legs of recordings `node_id` was writing when it died, its publishers having moved
        on to other nodes (drain, failover): finished from what storage holds of them."""
        for leg in await self._legs.of_node(node_id):
            key = (leg.broadcast_id, leg.leg)
            if key in self._not_here:
                continue
            try:
                size = await finish_leg(
                    self._db, self._storage, leg.broadcast_id, leg.recording_path, leg.leg
                )
            except Exception:  # a bucket that is down: tried again next sweep
                logger.exception("broadcast %d: leg %d not finished", leg.broadcast_id, leg.leg)
                continue
            if size is None:
                self._not_here.add(key)  # on its node's own disk: finished when it starts
                continue
            logger.warning("broadcast %d: leg %d of %s, %d bytes, finished from storage",
                           leg.broadcast_id, leg.leg, node_id, size)  # fmt: skip
            self._on_change()

    async def _finish_recording(self, broadcast_id: int, path: str, node_id: str) -> None:
        try:
            # Only the dead node's legs: a node still finishing an earlier leg (it drained
            # while uploading its last segments) finishes its own.
            size = await finish_recording(
                self._db, self._storage, broadcast_id, path, still_open=False, legs_of=node_id
            )
        except Exception:
            # A bucket that is down: the recording stays unfinished (and unlisted) until a
            # start of its node finishes it.
            logger.exception("broadcast %d: its recording could not be finished", broadcast_id)
            return
        if size is None:
            logger.info("broadcast %d: its recording is on its node's own disk", broadcast_id)
        else:
            logger.warning("broadcast %d: recording of %d bytes finished from storage",
                           broadcast_id, size)  # fmt: skip
        self._on_change()
