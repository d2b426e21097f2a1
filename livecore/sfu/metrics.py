"""Ingest metrics, summed over streams (never labelled by stream: cardinality stays bounded)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SfuMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.publishers = Gauge(
            "livecore_sfu_publishers", "Publishing sessions live on this node", registry=registry
        )
        self.units = Counter(
            "livecore_sfu_ingest_units_total",
            "Encoded frames (video) and packets (audio) received; rate() is frames per second",
            ["kind"],
            registry=registry,
        )
        self.bytes = Counter(
            "livecore_sfu_ingest_bytes_total",
            "Encoded media bytes received; rate() * 8 is the ingest bit rate",
            ["kind"],
            registry=registry,
        )
        self.keyframe_interval = Histogram(
            "livecore_sfu_keyframe_interval_seconds",
            "Time between keyframes from publishers",
            buckets=(0.5, 1, 2, 3, 4, 6, 8, 10, 15, 30),
            registry=registry,
        )
        self.packets_lost = Counter(
            "livecore_sfu_packets_lost_total",
            "RTP packets publishers sent that never arrived (from receiver statistics)",
            registry=registry,
        )
        self.keyframe_requests = Counter(
            "livecore_sfu_keyframe_requests_total",
            "PLIs sent to publishers (merged from readers' requests)",
            registry=registry,
        )
