from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.config import Config
from livecore.ops import metrics as ops_metrics
from livecore.ops.runtime import PROBE_S
from tests.conftest import Client
from tests.support.fakes import CapturingMailSender


async def test_healthz_and_readyz(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok"},
    }


async def test_metrics_label_routes_by_template_not_path(client: Client) -> None:
    for slug in ("first-one", "second-one"):
        assert (await client.get(f"/api/v1/streams/{slug}")).status == 404
    text = await (await client.get("/metrics")).text()
    assert (
        'livecore_http_requests_total{method="GET",route="/api/v1/streams/{slug}",status="404"} 2.0'
        in text
    )
    assert "first-one" not in text
    assert "livecore_store_pool_connections" in text
    assert "process_resident_memory_bytes" in text


async def test_loop_lag_and_collection_pauses_are_measured(client: Client) -> None:
    await asyncio.sleep(PROBE_S * 2)  # the probe has woken at least once
    gc.collect()
    held_until = time.perf_counter() + 0.3
    while time.perf_counter() < held_until:  # work that holds the loop (no blocking call)
        pass
    await asyncio.sleep(PROBE_S * 2)
    samples = {
        (s.name, s.labels.get("le"), s.labels.get("generation")): s.value
        for family in text_string_to_metric_families(await (await client.get("/metrics")).text())
        for s in family.samples
    }
    lag_count = samples[("livecore_event_loop_lag_seconds_count", None, None)]
    assert lag_count >= 2
    # The probe that was due while the loop was held woke at least 0.2 s late.
    assert samples[("livecore_event_loop_lag_seconds_bucket", "0.1", None)] < lag_count
    assert samples[("livecore_gc_pause_seconds_count", None, "2")] >= 1


async def test_every_response_carries_a_request_id(client: Client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert resp.headers["X-Request-Id"] != "bad id with spaces"


async def test_crash_is_a_generic_500_with_the_request_id(
    aiohttp_client: AiohttpClient,
    config: Config,
    dsn: str,
    mailer: CapturingMailSender,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(config, database_url=dsn, mailer=mailer)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR):
        resp = await client.get("/boom")
    assert resp.status == 500
    body = await resp.json()
    request_id = resp.headers["X-Request-Id"]
    assert body == {
        "error": {"code": "internal", "message": "internal server error", "request_id": request_id}
    }
    assert "secret internals" not in await resp.text()
    assert any(request_id in r.getMessage() for r in caplog.records)


async def test_request_log_has_one_line_per_request(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="livecore.request"):
        await client.get("/healthz")
    lines = [r for r in caplog.records if r.name == "livecore.request"]
    assert len(lines) == 1
    assert "GET /healthz 200" in lines[0].getMessage()


def test_kept_request_series_count_into_the_same_samples() -> None:
    metrics = ops_metrics.Metrics()
    for _ in range(3):
        count, latency = metrics.http_series("GET", "/hls/{stream}/master.m3u8", 200)
        count.inc()
        latency.observe(0.001)
    # More series than are kept (clients may send any method): the kept ones are dropped,
    # and the samples they counted into go on from where they were.
    for i in range(ops_metrics._MAX_SERIES):
        metrics.http_series(f"M{i}", "unmatched", 405)
    metrics.http_series("GET", "/hls/{stream}/master.m3u8", 200)[0].inc()
    labels = {"method": "GET", "route": "/hls/{stream}/master.m3u8", "status": "200"}
    assert metrics.registry.get_sample_value("livecore_http_requests_total", labels) == 4.0
    del labels["status"]
    assert (
        metrics.registry.get_sample_value("livecore_http_request_duration_seconds_count", labels)
        == 3.0
    )
