"""The process's Prometheus metrics, in a registry owned by the application (no globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# Request latencies in seconds: API calls are milliseconds, blocking playlist reloads seconds.
# Labelled request series kept by http_series (routes are templates; methods are few).
_MAX_SERIES = 4096
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
        self._http_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def http_series(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of one method, route and status. Kept:
        `labels()` checks and joins its arguments under a lock on every call, and every
        request of every viewer is counted."""
        key = (method, route, status)
        series = self._http_series.get(key)
        if series is None:
            if len(self._http_series) >= _MAX_SERIES:
                self._http_series.clear()  # odd methods from clients: stay bounded
            series = self._http_series[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_latency.labels(method, route),
            )
        return series

    def watch_pool(self, read: Callable[[], tuple[int, int, int] | None]) -> None:
        self.registry.register(_PoolCollector(read))
