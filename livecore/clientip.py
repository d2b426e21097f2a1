"""The address a request really came from, behind the load balancers the operator trusts.

`X-Forwarded-For` is read only when the direct peer is a trusted proxy, and then from the
right: the first address that is not itself a trusted proxy is the client. A client cannot
spoof its address by sending the header itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

from livecore.appkeys import TRUSTED_PROXIES

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Networks from CIDR strings; raises ValueError naming a bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not an address or network") from None
    return tuple(networks)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str | None, forwarded_for: str, proxies: tuple[Network, ...]) -> str:
    """The client's address given the direct peer and its X-Forwarded-For header."""
    address = peer or ""
    if not proxies or not forwarded_for or not _trusted(address, proxies):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, proxies):
            return hop
    return address


def client_ip(request: web.Request) -> str:
    """The requesting client's address (see the module docstring)."""
    return client_address(
        request.remote, request.headers.get("X-Forwarded-For", ""), request.app[TRUSTED_PROXIES]
    )
