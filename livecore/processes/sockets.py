"""The sockets a box of several processes listens on, bound by the parent.

The shared port is bound once per process with SO_REUSEPORT: the kernel spreads new
connections over the processes' sockets. Bound and listening in the parent, a process's
socket outlives the process: connections that arrive while a process restarts wait in its
queue instead of being refused. Each process also gets a port of its own, its internal URL,
which reaches that very process (the shared port reaches any of them).
"""

from __future__ import annotations

import socket


class ListenError(Exception):
    """A port could not be bound; the message names it."""


def shared_listeners(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """`count` listening sockets on host:port (port 0: one the OS picks, the same for all)."""
    out: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = _bound(host, port, reuse_port=True)
            out.append(sock)
            sock.listen(backlog)
            port = sock.getsockname()[1]
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out


def own_listeners(host: str, first_port: int, count: int, backlog: int) -> list[socket.socket]:
    """One listening socket per process: first_port, first_port + 1, ... (0: any free port)."""
    out: list[socket.socket] = []
    try:
        for i in range(count):
            sock = _bound(host, first_port + i if first_port else 0, reuse_port=False)
            out.append(sock)
            sock.listen(backlog)
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        # As asyncio does for a server: a restart may bind while old connections linger.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
