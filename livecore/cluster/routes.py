"""HTTP side of livecore.cluster: `GET /api/v1/admin/nodes`, the nodes alive and the live
streams each holds (admins only; read-only)."""

from __future__ import annotations

from aiohttp import web

from livecore.auth.requests import require_user
from livecore.cluster.directory import Directory, DirectoryUnavailable
from livecore.errors import Forbidden, Unavailable

DIRECTORY = web.AppKey("directory", Directory)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/nodes", get_nodes)


async def get_nodes(request: web.Request) -> web.Response:
    principal = await require_user(request)
    if principal.user.role != "admin":
        raise Forbidden("only admins may do this")
    directory = request.app[DIRECTORY]
    try:
        nodes = await directory.nodes()
    except DirectoryUnavailable:
        raise Unavailable("the stream directory cannot be reached; try again") from None
    body = [
        {"id": n.node.id, "internal_url": n.node.internal_url,
         "this_node": n.node == directory.node, "draining": n.draining,
         "public_url": n.public_url or n.node.internal_url,
         "streams": [{"stream_id": s.stream_id, "slug": s.slug} for s in n.streams]}
        for n in nodes
    ]  # fmt: skip
    return web.json_response({"nodes": body})
