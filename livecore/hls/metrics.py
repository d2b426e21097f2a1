"""HLS metrics, registered in the application's registry (no globals), observed on the
event loop (packaging processes report through their events). Rendition labels are ladder names from
the config ("360p"), never stream ids, so their cardinality is bounded."""

from __future__ import annotations

import typing
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from livecore.transcode.metrics import TranscodeMetrics

RequestKind = Literal["master", "playlist", "blocking", "segment", "part", "init"]
DropReason = Literal["behind", "crashed"]

_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HlsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "livecore_hls_requests_total",
            "HLS requests answered, by kind (master/playlist/blocking/segment/part/init)",
            ["kind"],
            registry=registry,
        )
        self.blocking_wait = Histogram(
            "livecore_hls_blocking_reload_wait_seconds",
            "How long blocking playlist reloads and preload-hinted part requests waited",
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self.part_lag = Histogram(
            "livecore_hls_part_production_lag_seconds",
            "From the packager receiving the unit that completes a part to the part on disk",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.segment_lag = Histogram(
            "livecore_hls_segment_production_lag_seconds",
            "From the packager receiving the unit that completes a segment to the segment on disk",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.dropped_units = Counter(
            "livecore_hls_packager_dropped_units_total",
            "Media units a packager dropped because its worker fell behind",
            registry=registry,
        )
        self.write_errors = Counter(
            "livecore_hls_disk_write_errors_total",
            "Failed segment, part, init or playlist writes (each ends its packaging)",
            registry=registry,
        )
        self.packaging_processes = Gauge(
            "livecore_hls_packaging_processes",
            "Packaging processes running (each packages several broadcasts)",
            registry=registry,
        )
        self.packaging_process_deaths = Counter(
            "livecore_hls_packaging_process_deaths_total",
            "Packaging processes that died or could not start (their broadcasts go on elsewhere)",
            registry=registry,
        )
        self.packaging_restarts = Counter(
            "livecore_hls_packaging_restarts_total",
            "Broadcasts' packaging (a rendition each) moved to another process after theirs died",
            registry=registry,
        )
        self.packaging_restarts_exhausted = Counter(
            "livecore_hls_packaging_restarts_exhausted_total",
            "Broadcasts' packaging (a rendition each) ended as failed: its process kept dying",
            registry=registry,
        )
        # The transcoders' own (transcode/ imports nothing of hls/), registered here.
        self.transcoding = TranscodeMetrics(registry)
        self.transcode_frames = Counter(
            "livecore_hls_transcode_frames_total",
            "Frames encoded by rendition transcoders",
            ["rendition"],
            registry=registry,
        )
        self.renditions_dropped = Counter(
            "livecore_hls_renditions_dropped_total",
            "Renditions dropped mid-broadcast: their worker fell behind or crashed",
            ["reason"],
            registry=registry,
        )
        for reason in typing.get_args(DropReason):
            self.renditions_dropped.labels(reason)  # exported as 0 before the first drop
