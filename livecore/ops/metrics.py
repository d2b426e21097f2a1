"""The process's Prometheus metrics, in a registry owned by the application (no globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# Request latencies in seconds: API calls are milliseconds, blocking playlist reloads seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _PoolCollector(Collector):
    def __init__(self, read: Callable[[], tuple[int, int, int] | None]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        stats = self._read()
        if stats is None:
            return
        size, idle, max_size = stats
        for name, doc, value in (
            ("livecore_store_pool_connections", "Open connections in the pool", size),
            ("livecore_store_pool_idle_connections", "Idle connections in the pool", idle),
            ("livecore_store_pool_max_connections", "Pool size limit", max_size),
        ):
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            yield family


class Metrics:
    """Every metric livecore exports; packages add theirs through `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.http_requests = Counter(
            "livecore_http_requests_total",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "livecore_http_request_duration_seconds",
            "HTTP request handling time, by route template",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_pool(self, read: Callable[[], tuple[int, int, int] | None]) -> None:
        self.registry.register(_PoolCollector(read))
