"""Short-lived publish tokens: going live from the studio without knowing the stream key.

Stream keys are stored hashed, so a page that reloads cannot read the key again, and making
a new one would cut off OBS, which still uses the old one. Instead the studio asks for a
token that says "user U may publish stream S until T", signed with the deployment's secret
key (HMAC-SHA256) like playback tokens. WHIP accepts it as the Bearer token besides the
stream key. It only has to outlive the WHIP POST: a running broadcast is not ended when it
expires, and the stream key keeps working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Final

# Tells a publish token apart from a stream key ("lck_") at a glance and in the WHIP route.
PUBLISH_TOKEN_PREFIX: Final = "lcp_"
PUBLISH_TOKEN_TTL_S: Final = 120
_CONTEXT = b"livecore-publish\x00"  # a playback token's MAC never verifies as this


@dataclass(frozen=True, slots=True)
class PublishGrant:
    stream_id: int
    user_id: int
    expires_at: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: bytes, payload: bytes) -> bytes:
    return hmac.new(secret_key, _CONTEXT + payload, hashlib.sha256).digest()


def sign_publish(secret_key: bytes, grant: PublishGrant) -> str:
    payload = f"{grant.stream_id}.{grant.user_id}.{grant.expires_at}".encode()
    return f"{PUBLISH_TOKEN_PREFIX}{_b64(payload)}.{_b64(_mac(secret_key, payload))}"


def new_publish_token(
    secret_key: bytes, stream_id: int, user_id: int, *, now: float | None = None
) -> tuple[str, int]:
    """A token for `user_id` to publish `stream_id`, and when it expires (unix seconds)."""
    expires_at = int(time.time() if now is None else now) + PUBLISH_TOKEN_TTL_S
    return sign_publish(secret_key, PublishGrant(stream_id, user_id, expires_at)), expires_at


def is_publish_token(token: str) -> bool:
    return token.startswith(PUBLISH_TOKEN_PREFIX)


def verify_publish(
    secret_key: bytes, token: str, stream_id: int, *, now: float | None = None
) -> PublishGrant | None:
    """The grant a token carries if it is genuine, for this stream, and not expired."""
    body = token.removeprefix(PUBLISH_TOKEN_PREFIX)
    if body == token or len(token) > 256 or body.count(".") != 1:
        return None
    payload_text, mac_text = body.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
        if not hmac.compare_digest(mac, _mac(secret_key, payload)):
            return None
        stream_text, user_text, expires_text = payload.decode("ascii").split(".")
        grant = PublishGrant(int(stream_text), int(user_text), int(expires_text))
    except (ValueError, UnicodeDecodeError):
        return None
    if grant.stream_id != stream_id:
        return None
    if grant.expires_at <= (time.time() if now is None else now):
        return None
    return grant
