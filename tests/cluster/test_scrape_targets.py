"""GET /metrics/targets: Prometheus's HTTP service discovery of every node in the directory,
with the token `livecore prometheus-token` prints, and nothing without it."""

from __future__ import annotations

from livecore.appkeys import SECRET_KEY
from livecore.cluster.node import NodeInfo, NodeStreams
from livecore.cluster.scrape_targets import discovery_token, target_groups
from tests.cluster.conftest import FAST, Node


async def test_every_node_is_listed_for_prometheus_with_the_token_only(
    node: Node, redis_url: str
) -> None:
    a = await node("node-a", redis_url, **FAST)
    b = await node("node-b", redis_url, **FAST)
    token = discovery_token(a.app[SECRET_KEY])
    assert discovery_token(b.app[SECRET_KEY]) == token  # one deployment, one token
    for client in (a, b):
        resp = await client.get("/metrics/targets", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        groups = await resp.json()
        assert sorted((g["labels"]["node"], g["targets"]) for g in groups) == [
            ("node-a", [f"127.0.0.1:{a.server.port}"]),
            ("node-b", [f"127.0.0.1:{b.server.port}"]),
        ]
    for headers in ({}, {"Authorization": "Bearer " + token[:-1]}, {"Authorization": token}):
        resp = await a.get("/metrics/targets", headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await resp.json())["error"]["code"] == "unauthorized"


def test_a_target_keeps_its_internal_urls_scheme_and_path_and_says_whether_it_drains() -> None:
    nodes = [
        NodeStreams(NodeInfo("media-1:8080/2", "https://10.0.0.5:8102/livecore/"), (), True),
        NodeStreams(NodeInfo("media-2", "http://media-2.internal"), ()),
    ]
    assert target_groups(nodes) == [
        {"targets": ["10.0.0.5:8102"],
         "labels": {"node": "media-1:8080/2", "__meta_livecore_draining": "true",
                    "__scheme__": "https", "__metrics_path__": "/livecore/metrics"}},
        {"targets": ["media-2.internal"],
         "labels": {"node": "media-2", "__meta_livecore_draining": "false",
                    "__scheme__": "http", "__metrics_path__": "/metrics"}},
    ]  # fmt: skip
