"""Chat metrics (labels bounded: reasons and kinds, never users or streams)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ChatMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connected = 0
        self.connections = Gauge(
            "livecore_chat_connections", "Open chat WebSockets on this node", registry=registry
        )
        self.connections.set_function(lambda: self.connected)
        self.joins = Counter("livecore_chat_joins_total", "Chat sockets opened", registry=registry)
        self.messages_in = Counter(
            "livecore_chat_messages_in_total", "Chat lines received from clients", registry=registry
        )
        self.deliveries = Counter(
            "livecore_chat_frame_deliveries_total",
            "Frames written to sockets (at most one per socket per sweep of its room)",
            registry=registry,
        )
        self.batches = Counter(
            "livecore_chat_batches_total",
            "Frames built (one per slice of a room's sockets per sweep)",
            registry=registry,
        )
        self.thinned = Counter(
            "livecore_chat_thinned_total",
            "Chat lines storm mode did not send to this node's viewers",
            registry=registry,
        )
        self.slow_consumers = Counter(
            "livecore_chat_slow_consumers_total",
            "Sockets closed for falling behind",
            registry=registry,
        )
        self.unresponsive = Counter(
            "livecore_chat_unresponsive_closed_total",
            "Sockets dropped for answering no heartbeat",
            registry=registry,
        )
        self.refused = Counter(
            "livecore_chat_refused_total", "Chat lines refused, by reason", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.publish_latency = Histogram(
            "livecore_chat_publish_seconds",
            "Time to check and publish a chat line on the bus",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
        self.delivery = Histogram(
            "livecore_chat_delivery_seconds",
            "How long chat events waited on this node between arriving from the bus and being "
            "written to their room's sockets: the oldest event of each sweep",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )

    def opened(self) -> None:
        self.connected += 1
        self.joins.inc()

    def closed(self) -> None:
        self.connected -= 1
