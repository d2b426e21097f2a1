"""A broadcast moving between nodes: where a draining node sends its publishers, and whether
a publish starting here continues a broadcast begun on another node.

A publish continues the stream's open broadcast (same id, same chat room, no second go-live)
when the node carrying it, as the database says, is draining or gone from the directory. A
node gone for longer than `node.handover_s` has had its broadcasts ended by then
(`reaper.py`): a publish after that starts a new broadcast.
"""

from __future__ import annotations

import logging

from livecore.cluster.directory import Directory, DirectoryUnavailable
from livecore.nodestate import Continuation, NodeState
from livecore.store import Database
from livecore.store.broadcast_nodes import BroadcastNodes

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
        if node is not None and not node.draining:
            return  # a second publisher while the first is live elsewhere: a new broadcast
        self._state.continuing[stream_id] = Continuation(
            carried.id, carried.continuations + 1, carried.recording_path
        )
        logger.info(
            "stream %d: broadcast %d of node %s (%s) continues here", stream_id, carried.id,
            carried.node_id, "draining" if node is not None else "gone",
        )  # fmt: skip
