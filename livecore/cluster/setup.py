"""Wires livecore.cluster into the application: this node's identity and state (draining),
the stream directory, the hub registry's openings and endings that fill it, the HLS edge and
the signaling edge, broadcasts moving between nodes and those of dead nodes ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from livecore.appkeys import (
    AUDIT,
    BUS,
    CONFIG,
    DB,
    DRAIN,
    HUBS,
    LISTINGS,
    METRICS,
    NODE_STATE,
    RECORDINGS,
    SECRET_KEY,
)
from livecore.cluster import routes
from livecore.cluster.directory import Directory, LocalDirectory
from livecore.cluster.drain import Drainer, Holding
from livecore.cluster.edge_routes import Edge
from livecore.cluster.handover import Handover
from livecore.cluster.metrics import ClusterMetrics
from livecore.cluster.node import public_url, this_node
from livecore.cluster.reaper import Reaper
from livecore.cluster.redis_directory import RedisDirectory
from livecore.cluster.signaling_edge_routes import SignalingEdge
from livecore.hls import routes as hls_routes
from livecore.nodestate import NodeState
from livecore.sfu.hub import StreamHub

logger = logging.getLogger(__name__)


def setup(app: web.Application) -> SignalingEdge | None:
    """The directory, its admin route, and (with Redis: other nodes) the HLS edge. Call after
    the live-media context and the HLS routes are registered: the directory follows that
    context's hub registry, and the edge answers the HLS routes' requests for streams held
    elsewhere. Returns the signaling edge (with Redis) for the signaling routes, which this
    package may not import."""
    routes.setup(app)
    # Made now: the WHIP route, /readyz and the broadcast states read it.
    app[NODE_STATE] = NodeState(this_node(app[CONFIG]).id)
    edge = signaling = None
    if app[CONFIG].redis_url:
        config = app[CONFIG]
        edge = Edge(
            config.node.edge_cache_bytes, config.hls.blocking_reload_timeout_s + 10,
            config.node.edge_owner_cache_s,
        )  # fmt: skip
        hls_routes.serve_elsewhere(app, edge.answer)
        signaling = SignalingEdge(this_node(config), config.node.edge_owner_cache_s)
    app.cleanup_ctx.append(_context(edge, signaling))
    return signaling


def _context(
    edge: Edge | None, signaling: SignalingEdge | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        node = this_node(config)
        metrics = ClusterMetrics(app[METRICS].registry)
        directory: Directory
        if config.redis_url:
            shared = RedisDirectory(
                config.redis_url, node, ttl_s=config.node.directory_ttl_s,
                heartbeat_s=config.node.heartbeat_s, metrics=metrics,
                public_url=public_url(config, node),
            )  # fmt: skip
            await shared.start()
            directory = shared
        else:
            directory = LocalDirectory(node, public_url(config, node))
        app[routes.DIRECTORY] = directory
        holding = Holding()
        follower = _HubFollower(directory, holding)
        app[HUBS].on_open(follower.opened)
        if edge is not None:
            edge.start(directory, metrics)
        if signaling is not None:
            signaling.start(directory, metrics, app[SECRET_KEY])
        state = app[NODE_STATE]
        handover = Handover(app[DB], directory, state)
        handover.install()
        # Survivors wait handover_s after the node's entries expire, directory_ttl_s at most.
        wait_s = config.node.handover_s + config.node.directory_ttl_s
        app[DRAIN] = Drainer(
            state, directory, holding, config.node.drain_grace_s,
            on_leave=lambda: handover.leave(wait_s),
        )  # fmt: skip
        reaper = Reaper(
            app[DB], directory, app[BUS], app[AUDIT], app[RECORDINGS],
            interval_s=config.node.heartbeat_s,
            handover_s=config.node.handover_s, on_change=app[LISTINGS].invalidate,
        )  # fmt: skip
        waiting = None
        try:
            # Restarted or not (a single node's restart does not say): what this node id
            # still carries from its last run.
            waiting = await reaper.after_start()
        except Exception:
            # Serving matters more: these broadcasts end when their publishers come back.
            logger.exception("could not end the broadcasts this node carried when it stopped")
        reaping = asyncio.create_task(reaper.run(), name="dead-node-reaper")
        yield
        for task in (reaping, waiting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if signaling is not None:
            await signaling.close()
        if edge is not None:
            await edge.close()
        await follower.close()
        await directory.close()

    return context


class _HubFollower:
    """Claims each stream whose hub opens on this node, and releases it when the hub ends."""

    def __init__(self, directory: Directory, holding: Holding) -> None:
        self._directory = directory
        self._holding = holding
        self._tasks: set[asyncio.Task[None]] = set()
        self._current: dict[int, StreamHub] = {}
        self._closed = False

    def opened(self, hub: StreamHub) -> None:
        if self._closed:
            return
        if hub.stream_id not in self._current:
            self._holding.add()
        self._current[hub.stream_id] = hub
        task = asyncio.create_task(self._hold(hub), name=f"directory:{hub.slug}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hold(self, hub: StreamHub) -> None:
        await self._directory.claim(hub.stream_id, hub.slug)
        try:
            await hub.wait_ended()
        finally:
            # Unless the stream has gone live again here since (a new hub holds it now).
            if self._current.get(hub.stream_id) is hub:
                del self._current[hub.stream_id]
                self._holding.remove()
                await self._directory.release(hub.stream_id)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
