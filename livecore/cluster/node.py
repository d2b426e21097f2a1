"""Who this node is: its id in the directory and the URL the other nodes reach it at."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace

from livecore.config import Config

_WILDCARDS = ("", "0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    internal_url: str


@dataclass(frozen=True, slots=True)
class HeldStream:
    stream_id: int
    slug: str


@dataclass(frozen=True, slots=True)
class NodeStreams:
    """A node alive and the live streams it holds (for operators)."""

    node: NodeInfo
    streams: tuple[HeldStream, ...]
    draining: bool = False  # takes no new publishes (SIGTERM); its streams go on a while
    public_url: str = ""  # where publishers reach it itself ("": its internal URL)


def this_node(config: Config) -> NodeInfo:
    """The configured identity, or one derived from the host name and port: the same after a
    restart, so a node that comes back takes its own name again."""
    host_name = socket.gethostname()
    node_id = config.node.id or f"{host_name}:{config.port}"
    url = config.node.internal_url
    if not url:
        # A node listening on every interface is reached by its host name.
        host = host_name if config.host in _WILDCARDS else config.host
        if ":" in host:
            host = f"[{host}]"  # an IPv6 literal
        url = f"http://{host}:{config.port}"
    return NodeInfo(node_id, url.rstrip("/"))


def public_url(config: Config, node: NodeInfo) -> str:
    """Where publishers reach this node itself: a draining node redirects WHIP there."""
    return (config.node.public_url or node.internal_url).rstrip("/")


def process_node(config: Config, index: int, port: int, internal_port: int) -> NodeInfo:
    """Process `index` (from 1) of several sharing `port`: a node of its own, named after the
    box's node with `/index`, reached at `internal_port` (the shared port reaches any of them,
    not this one)."""
    base = this_node(replace(config, port=port))
    own = replace(config.node, id=f"{base.id}/{index}", internal_url="")
    return this_node(replace(config, port=internal_port, node=own))
