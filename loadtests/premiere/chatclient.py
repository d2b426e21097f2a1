"""A lean chat viewer: one WebSocket on an asyncio Protocol, read-only after the upgrade.

aiohttp's client costs several times more CPU per frame and per handshake; a premiere's
generator has thousands of these on a small machine and must not be what is measured. The
viewer speaks just enough of RFC 6455 for livecore's chat: the upgrade (or a refusal with its
status and Retry-After), unmasked server frames, pong, close.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import cast

from loadtests.wsframes import server_frames, upgrade_answer

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(host: str, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class ChatSocket(asyncio.Protocol):
    """Calls `on_text(socket, payload)` for each text frame, `on_refused(socket, status,
    retry_after_s)` when the upgrade is refused and `on_lost(socket)` when the connection
    ends (after a refusal too)."""

    def __init__(
        self,
        request: bytes,
        on_text: Callable[[ChatSocket, bytes], None],
        on_refused: Callable[[ChatSocket, int, float | None], None],
        on_lost: Callable[[ChatSocket], None],
    ) -> None:
        self.request = request
        self.on_text = on_text
        self.on_refused = on_refused
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.started_ns = time.time_ns()
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost(self)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data, self.buf = self.buf + data, b""
        if not self.upgraded:
            answer = upgrade_answer(data)
            if answer is None:
                self.buf = data
                return
            if answer.status != 101:
                self.on_refused(self, answer.status, answer.retry_after_s)
                self.close()
                return
            self.upgraded = True
            data = answer.rest
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        frames, used = server_frames(data)
        for opcode, payload in frames:
            if opcode == 1:
                self.on_text(self, payload)
            elif opcode == 9:  # ping: a pong, masked as clients must
                self.send(0x8A, payload)
            elif opcode == 8:
                self.send(0x88, payload[:2])
                self.close()
                return
        if used < len(data):
            self.buf = data[used:]

    def send(self, b0: int, payload: bytes) -> None:
        """One client frame (masked with a zero key: the frame format is what matters)."""
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = bytes((b0, 0x80 | n))
        elif n < 65536:
            head = bytes((b0, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((b0, 0x80 | 127)) + n.to_bytes(8, "big")
        self.transport.write(head + b"\0\0\0\0" + payload)


def jitter(low: float, high: float) -> float:
    """A uniform delay in [low, high): spreads reconnects so they do not arrive as a herd."""
    return low + (high - low) * int.from_bytes(os.urandom(2), "big") / 65536
