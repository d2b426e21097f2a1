"""Transcoder metrics. They keep the `livecore_hls_` names they were published under, so
dashboards and alerts go on working; `hls.metrics.HlsMetrics` registers them in the
application's registry (no globals). Labels are rendition names ("360p", "source"), never
stream ids, so their cardinality is bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge


class TranscodeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue = Gauge(
            "livecore_hls_transcoder_queue_units",
            "Video units handed to rendition transcoder processes and not yet encoded",
            ["rendition"],
            registry=registry,
        )
        self.processes = Gauge(
            "livecore_hls_transcoder_processes",
            "Rendition transcoder processes running",
            ["rendition"],
            registry=registry,
        )
