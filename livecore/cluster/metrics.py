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
            "upstream (asked of the owner), joined (a request already in flight), cached",
            ["outcome"],
            registry=registry,
        )
