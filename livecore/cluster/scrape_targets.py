"""Prometheus's HTTP service discovery: every node (every process of a box run with
`--processes N`) alive in the stream directory, as the target groups of Prometheus's
`http_sd_configs` (`[{"targets": ["10.0.0.5:8080"], "labels": {...}}]`). Any node answers
for all of them, so Prometheus finds each process's own `/metrics` without a list kept by hand.

Like `/metrics` it is not for the public (nginx refuses both), and since it names every
node's internal address it also takes a bearer token: an HMAC of the deployment's secret
key, the same on every node, which `livecore prometheus-token` prints.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from livecore.cluster.node import NodeStreams

_PURPOSE = b"livecore: Prometheus service discovery"

TargetGroup = dict[str, list[str] | dict[str, str]]


def discovery_token(secret: bytes) -> str:
    """The bearer token Prometheus sends (`authorization.credentials_file`)."""
    return hmac.new(secret, _PURPOSE, hashlib.sha256).hexdigest()


def token_matches(secret: bytes, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(given or "", discovery_token(secret))


def target_groups(nodes: Iterable[NodeStreams]) -> list[TargetGroup]:
    """One group per node: its internal URL's host and port, scheme and path prefix."""
    groups: list[TargetGroup] = []
    for n in nodes:
        url = urlsplit(n.node.internal_url)
        labels = {
            "node": n.node.id,
            # A meta label, for relabeling only: as a target label, a draining node would
            # start new series for the same process.
            "__meta_livecore_draining": "true" if n.draining else "false",
            "__scheme__": url.scheme or "http",
            "__metrics_path__": url.path.rstrip("/") + "/metrics",
        }
        groups.append({"targets": [url.netloc], "labels": labels})
    return groups
