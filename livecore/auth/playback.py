"""Signed playback tokens for streams only some viewers may watch.

A token says "viewer V may play stream S until T", signed with the deployment's secret key
(HMAC-SHA256), so any node (and nothing else) can check it without a database lookup. It
rides on every playlist and segment URI as `?token=...`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

_CONTEXT = b"livecore-playback\x00"


@dataclass(frozen=True, slots=True)
class PlaybackGrant:
    stream_id: int
    viewer_id: int
    expires_at: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: bytes, payload: bytes) -> bytes:
    return hmac.new(secret_key, _CONTEXT + payload, hashlib.sha256).digest()


def sign_playback(secret_key: bytes, grant: PlaybackGrant) -> str:
    payload = f"{grant.stream_id}.{grant.viewer_id}.{grant.expires_at}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret_key, payload))}"


def verify_playback(
    secret_key: bytes, token: str, stream_id: int, *, now: float | None = None
) -> PlaybackGrant | None:
    """The grant a token carries if it is genuine, for this stream, and not expired."""
    if len(token) > 256 or token.count(".") != 1:
        return None
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
        if not hmac.compare_digest(mac, _mac(secret_key, payload)):
            return None
        stream_text, viewer_text, expires_text = payload.decode("ascii").split(".")
        grant = PlaybackGrant(int(stream_text), int(viewer_text), int(expires_text))
    except (ValueError, UnicodeDecodeError):
        return None
    if grant.stream_id != stream_id:
        return None
    if grant.expires_at <= (time.time() if now is None else now):
        return None
    return grant
