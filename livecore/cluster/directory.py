"""The stream directory: which node holds each live stream.

`Directory` is what the rest of livecore asks. `LocalDirectory` serves one node (no Redis):
the streams it holds are the only ones there are.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from livecore.cluster.node import HeldStream, NodeInfo, NodeStreams


class DirectoryUnavailable(Exception):
    """The shared directory (Redis) could not be read."""


class Directory(Protocol):
    node: NodeInfo

    async def claim(self, stream_id: int, slug: str) -> None:
        """This node now holds the stream (its hub opened here)."""

    async def release(self, stream_id: int) -> None:
        """This node no longer holds the stream (its broadcast ended)."""

    async def owner(self, stream: int | str) -> NodeInfo | None:
        """The node holding a live stream, by stream id (int) or slug (str); None: not live."""

    async def find_node(self, node_id: str) -> NodeInfo | None:
        """A node alive, by id; None: no such node (or it died: its entry expired)."""

    async def nodes(self) -> list[NodeStreams]:
        """Every node alive and the streams each holds."""

    async def node_status(self, node_id: str) -> NodeStreams | None:
        """One node as `nodes` shows it; None: it is gone (or was never there)."""

    async def alive(self, node_ids: Collection[str]) -> set[str]:
        """Which of these nodes are alive (their entries have not expired)."""

    async def set_draining(self) -> None:
        """This node takes no new publishes from now on (other nodes see it draining)."""

    async def leave_for_handover(self, broadcast_ids: Collection[int], for_s: float) -> None:
        """This node stops with these broadcasts left open for their publishers to continue
        on other nodes (a drain): other nodes, and this node started again, read them with
        `left_for_handover` for `for_s` seconds."""

    async def left_for_handover(self, node_id: str) -> tuple[frozenset[int], float]:
        """The broadcasts `node_id` left open as it stopped by draining, and for how many
        seconds more they wait for their publishers (empty, 0: none, or the wait is over)."""

    async def close(self) -> None: ...


class Holdings:
    """The streams this node holds, by id and by slug."""

    def __init__(self) -> None:
        self._by_id: dict[int, str] = {}
        self._by_slug: dict[str, int] = {}

    def add(self, stream_id: int, slug: str) -> None:
        self.remove(stream_id)
        self._by_id[stream_id] = slug
        self._by_slug[slug] = stream_id

    def remove(self, stream_id: int) -> str | None:
        slug = self._by_id.pop(stream_id, None)
        if slug is not None and self._by_slug.get(slug) == stream_id:
            del self._by_slug[slug]
        return slug

    def holds(self, stream: int | str) -> bool:
        return (stream in self._by_slug) if isinstance(stream, str) else (stream in self._by_id)

    def streams(self) -> tuple[HeldStream, ...]:
        return tuple(HeldStream(i, s) for i, s in sorted(self._by_id.items()))


class LocalDirectory:
    """One node's directory, in process."""

    def __init__(self, node: NodeInfo, public_url: str = "") -> None:
        self.node = node
        self._public_url = public_url
        self._held = Holdings()
        self._draining = False

    async def claim(self, stream_id: int, slug: str) -> None:
        self._held.add(stream_id, slug)

    async def release(self, stream_id: int) -> None:
        self._held.remove(stream_id)

    async def owner(self, stream: int | str) -> NodeInfo | None:
        return self.node if self._held.holds(stream) else None

    async def find_node(self, node_id: str) -> NodeInfo | None:
        return self.node if node_id == self.node.id else None

    async def nodes(self) -> list[NodeStreams]:
        return [NodeStreams(self.node, self._held.streams(), self._draining, self._public_url)]

    async def node_status(self, node_id: str) -> NodeStreams | None:
        return (await self.nodes())[0] if node_id == self.node.id else None

    async def alive(self, node_ids: Collection[str]) -> set[str]:
        return {self.node.id} & set(node_ids)

    async def set_draining(self) -> None:
        self._draining = True

    async def leave_for_handover(self, broadcast_ids: Collection[int], for_s: float) -> None:
        pass  # no other node to continue them: they end as the node exits

    async def left_for_handover(self, node_id: str) -> tuple[frozenset[int], float]:
        return frozenset(), 0.0

    async def close(self) -> None:
        pass
