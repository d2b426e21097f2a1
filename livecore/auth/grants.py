"""Signed, short-lived grants: "holder H may use stream S until T" as a URL-safe token.

Playback and publish tokens are both written this way. The payload is `S.H.T` in ASCII
digits; the token is the payload and its HMAC-SHA256 under the deployment's secret key, each
in unpadded URL-safe base64, joined by a dot, after the kind's prefix (if it has one). The MAC
covers the kind's context before the payload, so a token of one kind never verifies as
another. Any node can check a token without a database lookup.

May import: nothing from livecore.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

# Longer than any token this module makes (with a prefix): refused before any decoding.
MAX_TOKEN_CHARS: Final = 256

_G = TypeVar("_G")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class GrantToken:
    """How one kind of grant is written as a token, and read back."""

    context: bytes  # mixed into the MAC, so kinds never stand in for one another
    prefix: str = ""  # tells the kind apart at a glance; "" for none

    def sign(self, secret_key: bytes, stream_id: int, holder_id: int, expires_at: int) -> str:
        """The token for `holder_id` to use `stream_id` until `expires_at` (unix seconds)."""
        payload = f"{stream_id}.{holder_id}.{expires_at}".encode()
        return f"{self.prefix}{_b64(payload)}.{_b64(self._mac(secret_key, payload))}"

    def verify(
        self,
        secret_key: bytes,
        token: str,
        stream_id: int,
        grant: Callable[[int, int, int], _G],
        *,
        now: float | None = None,
    ) -> _G | None:
        """`grant(stream_id, holder_id, expires_at)` if the token is genuine, of this kind,
        for this stream and not expired; None otherwise, whatever is wrong with it."""
        if not token.startswith(self.prefix) or len(token) > MAX_TOKEN_CHARS:
            return None
        body = token[len(self.prefix) :]
        if body.count(".") != 1:
            return None
        payload_text, mac_text = body.split(".")
        try:
            payload, mac = _unb64(payload_text), _unb64(mac_text)
            if not hmac.compare_digest(mac, self._mac(secret_key, payload)):
                return None
            signed_for, holder_id, expires_at = map(int, payload.decode("ascii").split("."))
        except (ValueError, UnicodeDecodeError):
            return None
        if signed_for != stream_id:
            return None
        if expires_at <= (time.time() if now is None else now):
            return None
        return grant(signed_for, holder_id, expires_at)

    def _mac(self, secret_key: bytes, payload: bytes) -> bytes:
        return hmac.new(secret_key, self.context + payload, hashlib.sha256).digest()
