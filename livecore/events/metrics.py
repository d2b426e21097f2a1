"""Event-bus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class BusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "livecore_events_bus_received_total", "Events received from Redis", registry=registry
        )
        self.publish_failures = Counter(
            "livecore_events_bus_publish_failures_total",
            "Publishes that Redis did not take (delivered to this node only)",
            registry=registry,
        )
        self.reconnects = Counter(
            "livecore_events_redis_reconnects_total",
            "Times the Redis pub/sub connection came back",
            registry=registry,
        )
