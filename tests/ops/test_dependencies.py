"""PostgreSQL's reachability is a metric: 1 while the node's pings are answered, 0 (and a
failure counted) when they are not."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from livecore.ops.dependencies import DatabaseProbe
from livecore.store import Database
from tests.conftest import Client


async def test_a_running_node_reports_the_database_up(client: Client) -> None:
    text = await (await client.get("/metrics")).text()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["livecore_database_up"] == 1
    assert samples["livecore_database_ping_failures_total"] == 0


async def test_a_database_that_does_not_answer_is_reported_down(dsn: str) -> None:
    db = await Database.connect(dsn, max_size=1)
    registry = CollectorRegistry()
    probe = DatabaseProbe(registry, db.ping)
    assert await probe.check()
    assert registry.get_sample_value("livecore_database_up") == 1
    await db.close()  # the node's connections are gone: pings fail
    assert not await probe.check()
    assert registry.get_sample_value("livecore_database_up") == 0
    assert registry.get_sample_value("livecore_database_ping_failures_total") == 1
