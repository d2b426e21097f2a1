"""Signatures of the requests one node forwards to another (the signaling edge).

A forward carries one header, `<sender mark>.<time>.<nonce>.<signature>`: the time it was
signed (Unix milliseconds), a random nonce, and an HMAC-SHA256 with the deployment's secret key
over those and over the node it is meant for, the method, the path with its query, the SHA-256
of its body and the headers sent with it. So a forward seen on the internal network cannot be
sent to another node, with another body or other credentials, nor later than `WINDOW_S` (either
way: nodes' clocks differ a little), and not twice within the window either: each node keeps
the nonces it has taken until their time is out of the window (a replayed DELETE or offer is
refused, not answered again).

Pure code (no aiohttp): the signaling edge reads the request and turns a refusal into 403.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import secrets
from collections.abc import Mapping
from typing import Literal

# How far a forward's time may be from the receiving node's clock, either way. Forwards take
# milliseconds; what this allows is the clock skew between nodes (NTP keeps it well under).
WINDOW_S = 30.0
# Nonces taken within the window. A node forwards at most a few hundred requests a second
# (WHEP offers and session requests); past this many the node refuses forwards (fails closed)
# rather than forget a nonce still in its window.
MAX_SEEN = 100_000
# The headers of a forward its signature covers (the ones the edge sends with it).
SIGNED_HEADERS = ("Content-Type", "Authorization", "If-Match", "X-Request-Id")

Refusal = Literal["forged", "stale", "replayed", "overloaded"]


class ForwardRefused(Exception):
    """A forward not taken; `reason` is what the metric counts, the message what 403 says."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason: Refusal = reason


def sign(
    secret: bytes, *, sender: str, target: str, method: str, path: str,
    headers: Mapping[str, str], body: bytes, at_s: float, nonce: str | None = None,
) -> str:  # fmt: skip
    """The header value for a forward from node mark `sender` to node mark `target`."""
    at_ms = int(at_s * 1000)
    nonce = nonce if nonce is not None else secrets.token_urlsafe(16)  # no '.' in it
    mac = _mac(secret, sender, target, at_ms, nonce, method, path, headers, body)
    return f"{sender}.{at_ms}.{nonce}.{mac}"


class ForwardCheck:
    """Checks the forwards reaching one node (marked `own_mark`)."""

    def __init__(
        self, secret: bytes, own_mark: str, *, window_s: float = WINDOW_S,
        max_seen: int = MAX_SEEN,
    ) -> None:  # fmt: skip
        self._secret = secret
        self._mark = own_mark
        self._window_ms = int(window_s * 1000)
        self._max_seen = max_seen
        # Nonces taken, and a heap of (time they leave the window, nonce) to forget them.
        self._seen: set[str] = set()
        self._expiry: list[tuple[int, str]] = []

    def check(
        self, header: str, *, method: str, path: str, headers: Mapping[str, str], body: bytes,
        now_s: float,
    ) -> str:  # fmt: skip
        """The sender's mark of a forward that may be taken; raises ForwardRefused."""
        fields = header.split(".")
        if not self._secret or len(fields) != 4:
            raise _forged()
        sender, at, nonce, given = fields
        if not (nonce and at.isascii() and at.isdigit() and len(at) < 20):
            raise _forged()
        at_ms = int(at)
        expected = _mac(self._secret, sender, self._mark, at_ms, nonce, method, path, headers,
                        body)  # fmt: skip
        # As bytes: compare_digest refuses str with non-ASCII characters, which a client may
        # send.
        if not hmac.compare_digest(given.encode(errors="replace"), expected.encode()):
            raise _forged()
        now_ms = int(now_s * 1000)
        if abs(now_ms - at_ms) > self._window_ms:
            off, side = abs(now_ms - at_ms) / 1000, "before" if at_ms < now_ms else "after"
            raise ForwardRefused(
                "stale",
                f"this forward between nodes was signed {off:.0f} s {side} this node's time"
                f" (more than the {self._window_ms / 1000:.0f} s allowed)",
            )
        self._forget(now_ms)
        if nonce in self._seen:
            raise ForwardRefused("replayed", "this forward between nodes was already taken")
        if len(self._seen) >= self._max_seen:
            raise ForwardRefused("overloaded", "too many forwards between nodes; try again")
        self._seen.add(nonce)
        # Kept until no clock in the window would take its time any more.
        heapq.heappush(self._expiry, (at_ms + self._window_ms, nonce))
        return sender

    def _forget(self, now_ms: int) -> None:
        while self._expiry and self._expiry[0][0] < now_ms:
            _, nonce = heapq.heappop(self._expiry)
            self._seen.discard(nonce)


def _forged() -> ForwardRefused:
    return ForwardRefused("forged", "this forward between nodes is not signed by this deployment")


def _mac(
    secret: bytes, sender: str, target: str, at_ms: int, nonce: str, method: str, path: str,
    headers: Mapping[str, str], body: bytes,
) -> str:  # fmt: skip
    # One field a line: none of them can hold a newline (HTTP header values and paths cannot;
    # marks and nonces are base64url). A header sent empty and one not sent differ.
    sent = [f"{name}:{value}" if (value := headers.get(name)) is not None else "-"
            for name in SIGNED_HEADERS]  # fmt: skip
    message = "\n".join([
        "livecore-forward-1", sender, target, str(at_ms), nonce, method, path,
        hashlib.sha256(body).hexdigest(), *sent,
    ])  # fmt: skip
    return hmac.new(secret, message.encode(errors="replace"), hashlib.sha256).hexdigest()
