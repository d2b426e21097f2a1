"""/metrics, /healthz, /readyz and the middleware that logs and measures every request."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from livecore.appkeys import DB, METRICS, NODE_STATE
from livecore.errors import REQUEST_ID, Handler
from livecore.store import pending_migrations

logger = logging.getLogger("livecore.request")

_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIds:
    """Unique ids for requests: a random per-process prefix and a counter (cheap, no urandom
    per request, unique across nodes)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


_REQUEST_IDS = web.AppKey("request_ids", RequestIds)


def setup(app: web.Application) -> None:
    app[_REQUEST_IDS] = RequestIds()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/readyz", get_readyz)


def _route_label(request: web.Request) -> str:
    # The route template, never the raw path: label cardinality stays bounded.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id, then log one line and record its metrics."""
    given = request.headers.get("X-Request-Id", "")
    ids = request.app[_REQUEST_IDS]
    request_id = given if given and _CLIENT_ID.fullmatch(given) else ids.next()
    request[REQUEST_ID] = request_id
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - start
        route = _route_label(request)
        count, latency = request.app[METRICS].http_series(request.method, route, status)
        count.inc()
        latency.observe(elapsed)
        # The arguments double as the JSON log's fields (logs.REQUEST_FIELDS).
        logger.info(
            "%s %s %s %d %.1fms", request_id, request.method, request.path, status, elapsed * 1000
        )


async def get_metrics(request: web.Request) -> web.Response:
    # The process collector reads /proc: a thread keeps that file I/O off the loop.
    body = await asyncio.to_thread(generate_latest, request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def get_readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, every migration is applied, and the node is not
    draining (a load balancer stops sending it new publishes and viewers)."""
    db = request.app[DB]
    checks: dict[str, str] = {}
    node = request.app.get(NODE_STATE)
    if node is not None and node.draining:
        checks["node"] = "draining"
    if await db.ping():
        pending = await pending_migrations(db.pool)
        checks["migrations"] = "ok" if not pending else f"pending: {', '.join(pending)}"
        checks["database"] = "ok"
    else:
        checks["database"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )
