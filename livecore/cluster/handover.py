"""A broadcast moving between nodes: where a draining node sends its publishers, and whether
a publish starting here continues a broadcast begun on another node.

A publish continues the stream's open broadcast (same id, same chat room, no second go-live)
when the node carrying it, as the database says, is draining or gone from the directory, or
left it open for a handover as it stopped after draining and has been started again since
(within the wait: `leave`). A node gone for longer than `node.handover_s` has had its
broadcasts ended by then (`reaper.py`): a publish after that starts a new broadcast.
"""

from __future__ import annotations

import logging

from livecore.cluster.directory import Directory, DirectoryUnavailable
from livecore.nodestate import Continuation, NodeState
from livecore.store import Database
from livecore.store.broadcast_nodes import BroadcastNodes, OpenBroadcast

logger = logging.getLogger(__name__)


class Handover:
    """Fills NodeState's hooks (`elsewhere`, `before_publish`)."""

    def __init__(self, db: Database, directory: Directory, state: NodeState) -> None:
        self._broadcasts = BroadcastNodes(db)
        self._directory = directory
        self._state = state

    def install(self) -> None:
        self._state.elsewhere = self.elsewhere
        self._state.before_publish = self.before_publish

    async def elsewhere(self) -> str | None:
        """The URL of another node that takes publishes (None: the directory knows none)."""
        try:
            nodes = await self._directory.nodes()
        except DirectoryUnavailable:
            return None
        for node in nodes:
            if node.node.id != self._state.node_id and not node.draining:
                return node.public_url or node.node.internal_url
        return None

    async def leave(self, for_s: float) -> None:
        """As this node stops after draining: note the broadcasts it leaves open for their
        publishers to continue elsewhere, so that they are still continued, and not ended,
        if it is started again under the same id within `for_s` (`reaper.after_start`)."""
        broadcasts = await self._broadcasts.open_of(self._state.node_id)
        await self._directory.leave_for_handover(broadcasts, for_s)

    async def _left(self, carried: OpenBroadcast) -> bool:
        """Whether the (alive) node carrying the broadcast left it for a handover as it
        stopped after draining: it has been started again since, within the wait."""
        try:
            left, _ = await self._directory.left_for_handover(carried.node_id)
        except DirectoryUnavailable:
            return False
        return carried.id in left

    async def before_publish(self, stream_id: int) -> None:
        """Note in NodeState whether the publish about to start continues a broadcast."""
        self._state.continuing.pop(stream_id, None)
        carried = await self._broadcasts.open_broadcast(stream_id)
        if carried is None or carried.node_id in ("", self._state.node_id):
            return
        try:
            node = await self._directory.node_status(carried.node_id)
        except DirectoryUnavailable:
            return  # cannot tell whether its node still carries it: a new broadcast
        if node is not None and not node.draining and not await self._left(carried):
            return  # a second publisher while the first is live elsewhere: a new broadcast
        self._state.continuing[stream_id] = Continuation(
            carried.id, carried.continuations + 1, carried.recording_path
        )
        logger.info(
            "stream %d: broadcast %d of node %s (%s) continues here", stream_id, carried.id,
            carried.node_id, "draining" if node is not None else "gone",
        )  # fmt: skip
