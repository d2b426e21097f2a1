"""HTTP side of livecore.cluster: `GET /api/v1/admin/nodes`, the nodes alive and the live
streams each holds (admins only; read-only; a stream live on two nodes at once is listed
under its owner, the other node `yielding` it), and `GET /metrics/targets`, the same nodes for
Prometheus's HTTP service discovery (its bearer token only; scrape_targets.py)."""

from __future__ import annotations

from aiohttp import web

from livecore.appkeys import SECRET_KEY
from livecore.auth.requests import bearer_token, require_user
from livecore.cluster.directory import Directory, DirectoryUnavailable
from livecore.cluster.node import NodeStreams
from livecore.cluster.scrape_targets import target_groups, token_matches
from livecore.errors import Forbidden, Unauthorized, Unavailable

DIRECTORY = web.AppKey("directory", Directory)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/nodes", get_nodes)
    app.router.add_get("/metrics/targets", get_scrape_targets)


async def get_nodes(request: web.Request) -> web.Response:
    principal = await require_user(request)
    if principal.user.role != "admin":
        raise Forbidden("only admins may do this")
    directory = request.app[DIRECTORY]
    try:
        nodes = await directory.nodes()
    except DirectoryUnavailable:
        raise Unavailable("the stream directory cannot be reached; try again") from None
    try:
        owners = await _owners_of_shared(directory, nodes)
    except DirectoryUnavailable:
        raise Unavailable("the stream directory cannot be reached; try again") from None
    body = []
    for n in nodes:
        held: list[dict[str, int | str]] = []
        yielding: list[dict[str, int | str]] = []
        for s in n.streams:
            owner = owners.get(s.stream_id)
            kept = owner is None or owner == n.node.id
            (held if kept else yielding).append({"stream_id": s.stream_id, "slug": s.slug})
        body.append(
            {"id": n.node.id, "internal_url": n.node.internal_url,
             "this_node": n.node == directory.node, "draining": n.draining,
             "public_url": n.public_url or n.node.internal_url,
             "streams": held, "yielding": yielding}
        )  # fmt: skip
    return web.json_response({"nodes": body})


async def _owners_of_shared(directory: Directory, nodes: list[NodeStreams]) -> dict[int, str]:
    """The owning node's id of each stream more than one node lists: live on two nodes for
    a while (a publisher that reconnected elsewhere before its old session went), it is the
    newer claim's (redis_directory.py); the older node still lists it in its own entry.
    One directory read per such stream; usually there is none."""
    listed: dict[int, int] = {}
    for n in nodes:
        for s in n.streams:
            listed[s.stream_id] = listed.get(s.stream_id, 0) + 1
    owners = {}
    for stream_id in sorted(i for i, count in listed.items() if count > 1):
        owner = await directory.owner(stream_id)
        if owner is not None:
            owners[stream_id] = owner.id
    return owners


async def get_scrape_targets(request: web.Request) -> web.Response:
    if not token_matches(request.app[SECRET_KEY], bearer_token(request)):
        raise Unauthorized(
            "Prometheus's bearer token is required (livecore prometheus-token prints it)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        nodes = await request.app[DIRECTORY].nodes()
    except DirectoryUnavailable:
        raise Unavailable("the stream directory cannot be reached; try again") from None
    return web.json_response(target_groups(nodes), headers={"Cache-Control": "no-store"})
