"""The shipped nginx configuration in front of two livecore nodes sharing a real Redis and
PostgreSQL carries what a premiere needs: WHIP from an aiortc publisher, LL-HLS (playlists,
blocking reloads, parts, cached) from either node, chat over WebSockets, and the client's
address. Afterwards every metric the Grafana dashboard and the alert rules read is one the
nodes export."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient

from livecore.app import create_app
from livecore.appkeys import CHAT
from livecore.cluster.routes import DIRECTORY
from livecore.config import ChatConfig, Config, HlsConfig, NodeConfig
from livecore.deadlines import server_options
from livecore.store import Database
from tests.chat.conftest import Viewer
from tests.conftest import Client, bearer
from tests.deploy.metric_names import (
    dashboard_expressions,
    exported_names,
    promql_names,
    rule_expressions,
)
from tests.deploy.nginx import ROOT, Nginx, running_nginx
from tests.support import media
from tests.support.fakes import CapturingMailSender
from tests.support.rtc import publish
from tests.support.services import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PASSWORD = "correct horse battery"


def answered_from_nginx(seen: Counter[str]) -> Any:
    """Count, per node, the HLS requests nginx sent it (they carry X-Forwarded-For; a node
    fetching another's stream does not) that it answered 200."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith("/hls/") and "X-Forwarded-For" in request.headers:
            seen[f"{response.status}"] += 1
        return response

    return count


async def start_node(
    aiohttp_client: AiohttpClient, config: Config, dsn: str, name: str, redis_url: str,
    seen: Counter[str],
) -> Client:  # fmt: skip
    port = free_port()
    changed = replace(
        config,
        port=port,
        redis_url=redis_url,
        # nginx connects from 127.0.0.1: the address the shipped files trust.
        trusted_proxies=("127.0.0.1/32",),
        node=NodeConfig(id=name, internal_url=f"http://127.0.0.1:{port}"),
        hls=HlsConfig(renditions=("source",), packaging_processes=1),
        chat=ChatConfig(tick_ms=20),
    )
    app = create_app(changed, database_url=dsn, mailer=CapturingMailSender())
    app.middlewares.append(answered_from_nginx(seen))
    server = TestServer(app, port=port)
    await server.start_server(**server_options(changed))
    return await aiohttp_client(server)


async def tls(proxy: Nginx) -> ssl.SSLContext:
    """A client context trusting the test's certificate (read off the event loop)."""
    return await asyncio.to_thread(ssl.create_default_context, cafile=str(proxy.ca_file))


async def negotiated_protocol(proxy: Nginx) -> str | None:
    """What nginx picks when a client offers HTTP/2 and HTTP/1.1 (ALPN), as browsers do."""
    context = await tls(proxy)
    context.set_alpn_protocols(["h2", "http/1.1"])
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.https_port, ssl=context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.selected_alpn_protocol()  # type: ignore[no-any-return]
    finally:
        writer.close()
        await writer.wait_closed()


async def sign_up(http: aiohttp.ClientSession, base: str, name: str, creator: bool) -> str:
    body = {"email": f"{name}@example.com", "password": PASSWORD, "display_name": name,
            "creator": creator}  # fmt: skip
    async with http.post(f"{base}/api/v1/auth/register", json=body) as resp:
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
    http.cookie_jar.clear()
    return token


async def ok(http: aiohttp.ClientSession, url: str) -> tuple[bytes, str]:
    """The body and X-Cache-Status of a 200 answer."""
    async with http.get(url) as resp:
        body = await resp.read()
        assert resp.status == 200, (url, resp.status, body[:200])
        return body, resp.headers.get("X-Cache-Status", "")


async def test_nginx_carries_whip_hls_and_chat_to_two_nodes(
    aiohttp_client: AiohttpClient, config: Config, dsn: str, redis_url: str, db: Database,
    tmp_path: Path,
) -> None:  # fmt: skip
    seen_a: Counter[str] = Counter()
    seen_b: Counter[str] = Counter()
    a = await start_node(aiohttp_client, config, dsn, "node-a", redis_url, seen_a)
    b = await start_node(aiohttp_client, config, dsn, "node-b", redis_url, seen_b)
    assert a.server.port is not None and b.server.port is not None
    async with running_nginx(tmp_path / "nginx", (a.server.port, b.server.port)) as proxy:
        # HTTP/2 is offered (what LL-HLS needs in browsers); plain HTTP only redirects.
        assert await negotiated_protocol(proxy) == "h2"
        base = proxy.base
        connector = aiohttp.TCPConnector(ssl=await tls(proxy))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(f"http://127.0.0.1:{proxy.http_port}/watch/show",
                                allow_redirects=False) as resp:  # fmt: skip
                assert resp.status == 308
                assert resp.headers["Location"].endswith("/watch/show")
            for path in ("/metrics", "/metrics/targets"):
                async with http.get(f"{base}{path}") as resp:
                    assert resp.status == 403  # Prometheus asks the nodes, not the public
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200

            creator = await sign_up(http, base, "Cara", creator=True)
            fan = await sign_up(http, base, "Fan", creator=False)
            async with http.post(f"{base}/api/v1/streams", json={"slug": "show"},
                                 headers=bearer(creator)) as resp:  # fmt: skip
                assert resp.status == 201, await resp.text()
                key = (await resp.json())["stream_key"]

            # WHIP through nginx: the offer, then the session's resource, on one node.
            pub = await publish(http, f"{base}/whip/show", key, media.clip())
            try:
                await _hls_through_nginx(http, proxy, a, b)
                await _chat_through_nginx(http, proxy, fan, (a, b))
                # A tip (the test provider) so the money metrics have run too.
                async with http.post(
                    f"{base}/api/v1/streams/show/tips",
                    json={"amount_minor": 500, "currency": "usd"},
                    headers=bearer(fan) | {"Idempotency-Key": "tip-1"},
                ) as resp:
                    assert resp.status in (200, 201), await resp.text()
            finally:
                async with http.delete(f"{base}{pub.location}") as resp:
                    assert resp.status in (200, 204), await resp.text()
                await pub.close()

        # The client's own address reaches livecore: nginx appends it to X-Forwarded-For and
        # livecore, trusting 127.0.0.1, reads it from the right (a header the client sent
        # itself is not believed). The client connects from 127.0.0.2 to tell them apart.
        await _client_address_is_forwarded(proxy, db)

    # Both nodes answered HLS requests that came through nginx.
    assert seen_a["200"] > 0 and seen_b["200"] > 0, (seen_a, seen_b)
    await _dashboard_and_rules_read_exported_metrics(a, b)


async def over_http2(proxy: Nginx, path: str) -> bytes:
    """GET with curl over HTTP/2 (a browser's protocol for LL-HLS); the body of a 200."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "--http2", "--silent", "--show-error", "--cacert", str(proxy.ca_file),
        "--write-out", "\n%{http_version} %{http_code}", f"{proxy.base}{path}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    body, _, status = out.rpartition(b"\n")
    assert status == b"2 200", (path, status, body[:200])
    return body


async def _hls_through_nginx(
    http: aiohttp.ClientSession, proxy: Nginx, a: Client, b: Client
) -> None:
    base = proxy.base
    async with asyncio.timeout(30):
        while True:  # media arrived through the WHIP session nginx set up
            async with http.get(f"{base}/api/v1/streams/show") as resp:
                if (await resp.json())["stream"]["state"] == "live":
                    break
            await asyncio.sleep(0.1)
        while True:  # Redis tells every node where "show" lives
            owner = await b.app[DIRECTORY].owner("show")
            if owner is not None:
                break
            await asyncio.sleep(0.05)
    assert owner.id in ("node-a", "node-b")
    assert await a.app[DIRECTORY].owner("show") == owner

    master, _ = await ok(http, f"{base}/hls/show/master.m3u8")
    assert b"source/index.m3u8" in master
    playlist = (await ok(http, f"{base}/hls/show/source/index.m3u8"))[0].decode()

    # The part named in the preload hint does not exist yet: livecore holds the request
    # until it is written, and nginx passes it through (and caches it once it comes).
    hint = re.findall(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)\.m4s"', playlist)[0]
    msn, index = map(int, hint)
    part_url = f"{base}/hls/show/source/part-{msn}-{index}.m4s"
    part, status = await ok(http, part_url)
    assert part and status == "MISS"
    again, status = await ok(http, part_url)
    assert (again, status) == (part, "HIT")  # immutable: nginx answers it from now on
    # The same over HTTP/2, as browsers ask.
    assert await over_http2(proxy, f"/hls/show/source/part-{msn}-{index}.m4s") == part
    assert b"#EXT-X-PART-INF" in await over_http2(proxy, "/hls/show/source/index.m3u8")

    # A blocking reload for the part after it waits at livecore and comes back with it.
    reload = f"{base}/hls/show/source/index.m3u8?_HLS_msn={msn}&_HLS_part={index + 1}"
    reloaded = (await ok(http, reload))[0].decode()
    listed = re.findall(r'EXT-X-PART:.*URI="part-(\d+)-(\d+)\.m4s"', reloaded)
    # Newer than the part fetched above: the part asked for (or, had the segment ended with
    # the hinted part, the next segment's first).
    assert max((int(m), int(i)) for m, i in listed) > (msn, index)
    init = re.findall(r'EXT-X-MAP:URI="(init-\d+\.mp4)"', reloaded)[0]
    assert (await ok(http, f"{base}/hls/show/source/{init}"))[0]
    segment = re.findall(r"^(seg-\d+\.m4s)$", reloaded, re.M)[0]
    assert (await ok(http, f"{base}/hls/show/source/{segment}"))[0]


async def _chat_through_nginx(
    http: aiohttp.ClientSession, proxy: Nginx, fan: str, nodes: tuple[Client, Client]
) -> None:
    url = f"wss://127.0.0.1:{proxy.https_port}/ws/show"
    listener = Viewer(await http.ws_connect(url))
    speaker = Viewer(await http.ws_connect(url, headers=bearer(fan)))
    try:
        for viewer in (listener, speaker):
            await viewer.wait_for(lambda e: e["type"] == "hello")
        # nginx sent one socket to each node (round robin): the line crosses Redis.
        assert [node.app[CHAT].metrics.connected for node in nodes] == [1, 1]
        ack = await speaker.say("hello through nginx", "n1")
        assert ack["type"] == "ack", ack
        line = await listener.wait_for(lambda e: e.get("text") == "hello through nginx")
        assert line["type"] == "chat"
    finally:
        await listener.close()
        await speaker.close()


async def _client_address_is_forwarded(proxy: Nginx, db: Database) -> None:
    connector = aiohttp.TCPConnector(ssl=await tls(proxy), local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        body = {"email": "fan@example.com", "password": "not the password"}
        spoofed = {"X-Forwarded-For": "203.0.113.9"}
        async with http.post(f"{proxy.base}/api/v1/auth/login", json=body,
                             headers=spoofed) as resp:  # fmt: skip
            assert resp.status == 401, await resp.text()
    addresses = await db.pool.fetch(
        "SELECT client_ip FROM audit_log WHERE action = 'user.login_failed'"
    )
    assert [r["client_ip"] for r in addresses] == ["127.0.0.2"]


async def _dashboard_and_rules_read_exported_metrics(a: Client, b: Client) -> None:
    exported: set[str] = set()
    for node in (a, b):
        exported |= exported_names(await (await node.get("/metrics")).text())
    deploy = ROOT / "deploy"
    rules, dashboard = await asyncio.to_thread(
        lambda: (
            list(rule_expressions(deploy / "prometheus" / "alerts.yml")),
            list(dashboard_expressions(deploy / "grafana" / "dashboards" / "livecore.json")),
        )
    )
    read = {
        "deploy/prometheus/alerts.yml": rules,
        "deploy/grafana/dashboards/livecore.json": dashboard,
    }
    for name, expressions in read.items():
        names = set().union(*(promql_names(expr) for expr in expressions))
        # `up` is Prometheus's own record of each scrape, not a livecore metric.
        unknown = names - exported - {"up"}
        assert not unknown, f"{name} reads metrics livecore does not export: {sorted(unknown)}"
        assert len(names) > 8, names  # the parser found the expressions' metrics
