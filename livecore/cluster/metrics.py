"""The directory's metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ClusterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.heartbeat_failures = Counter(
            "livecore_node_heartbeat_failures_total",
            "Directory heartbeats that could not reach Redis (this node's streams vanish from "
            "the directory when they fail for longer than node.directory_ttl_s)",
            registry=registry,
        )
        self.edge_requests = Counter(
            "livecore_edge_requests_total",
            "HLS requests for streams held by another node, by how they were answered: "
            "upstream (asked of the owner, including the part a playlist hints at next, asked "
            "ahead of its viewers), joined (a request already in flight), cached, moved (the "
            "owner had exited or no longer held it, and the directory read again named another)",
            ["outcome"],
            registry=registry,
        )
        self.signaling_forwards = Counter(
            "livecore_edge_signaling_requests_total",
            "WHEP offers and WHIP/WHEP session requests for streams and sessions of other nodes, "
            "by outcome: forwarded (the owner answered, whatever its status), gone (no such node "
            "in the directory: 404), unreachable (the owner did not answer: 502), moved (a WHEP "
            "offer's owner had gone or no longer held the stream, and the directory read again "
            "named another, which was asked), unavailable "
            "(the directory could not be read: 503); and forwards refused here: forged (a bad "
            "signature), stale (signed too long ago or too far ahead), replayed (taken "
            "already), all 403, overloaded (too many forwards in the window: 503)",
            ["outcome"],
            registry=registry,
        )
