"""The recordings' metrics: uploads to the bucket."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class UploadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.uploaded = Counter(
            "livecore_recordings_uploads_total",
            "Recording objects stored in the bucket, by kind (segment, init, playlist)",
            ["kind"],
            registry=registry,
        )
        self.failures = Counter(
            "livecore_recordings_upload_failures_total",
            "Upload attempts the bucket refused or did not answer in time (each is retried)",
            registry=registry,
        )
        self.dropped = Counter(
            "livecore_recordings_upload_dropped_total",
            "Segments not uploaded because the upload queue was full (storage.upload_queue_"
            "segments): they stay on the recording node's disk only",
            registry=registry,
        )
        self.queued = Gauge(
            "livecore_recordings_upload_queue_segments",
            "Segments waiting to be uploaded (or being uploaded)",
            registry=registry,
        )
        self.bytes = Counter(
            "livecore_recordings_uploaded_bytes_total",
            "Bytes stored in the bucket",
            registry=registry,
        )
        self.latency = Histogram(
            "livecore_recordings_upload_seconds",
            "How long one successful upload request took",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.delay = Histogram(
            "livecore_recordings_upload_delay_seconds",
            "From a segment being complete on disk to it being in the bucket (with retries)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=registry,
        )
