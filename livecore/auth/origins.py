"""Which web pages may use a visitor's session cookie on the chat WebSocket.

A browser attaches the session cookie to a WebSocket handshake whatever page opens it, and
the handshake is not subject to CORS: without a check, a page on any site could chat as its
logged-in visitor (cross-site WebSocket hijacking). Browsers always send `Origin` on the
handshake and a page cannot set it, so the cookie is honoured only for this deployment's own
pages: `public_url`'s origin, the configured `trusted_origins`, and a page served by the very
host the socket connects to (a node reached by its own name or address).

Plain functions over strings; imports nothing from livecore.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower-case, without a default port; None when
    it has none (`null`, other schemes, garbage)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address keeps its brackets
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class OriginPolicy:
    """Decides, per handshake, whether the session cookie may authenticate it."""

    def __init__(self, public_url: str, trusted: Iterable[str] = ()) -> None:
        public = origin_of(public_url)
        self._scheme = public.split("://", 1)[0] if public else "http"
        self._allowed = frozenset(o for o in (public, *map(origin_of, trusted)) if o)

    def allows_cookie(self, origin: str | None, host: str | None) -> bool:
        """Whether a handshake with this `Origin` header, sent to this `Host`, may use the
        session cookie."""
        if origin is None:
            # Not a browser (browsers always send it): no page acts on anyone's behalf.
            return True
        normal = origin_of(origin)
        if normal is None:
            return False  # "null": sandboxed frames, local files
        if normal in self._allowed:
            return True
        # A page from the host it connects to, in the deployment's scheme: an https
        # deployment does not take the cookie from a plain-http page, which anyone on the
        # path could have written.
        scheme = normal.split("://", 1)[0]
        return bool(host) and scheme == self._scheme and origin_of(f"{scheme}://{host}") == normal
