"""Short-lived publish tokens: going live from the studio without knowing the stream key.

Stream keys are stored hashed, so a page that reloads cannot read the key again, and making
a new one would cut off OBS, which still uses the old one. Instead the studio asks for a
token that says "user U may publish stream S until T", signed with the deployment's secret
key (HMAC-SHA256, livecore.auth.grants) like playback tokens. WHIP accepts it as the Bearer
token besides the stream key. It only has to outlive the WHIP POST: a running broadcast is not
ended when it expires, and the stream key keeps working.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from livecore.auth.grants import GrantToken

# Tells a publish token apart from a stream key ("lck_") at a glance and in the WHIP route.
PUBLISH_TOKEN_PREFIX: Final = "lcp_"
PUBLISH_TOKEN_TTL_S: Final = 120
# Its own MAC context: a playback token's MAC never verifies as this.
_TOKENS: Final = GrantToken(context=b"livecore-publish\x00", prefix=PUBLISH_TOKEN_PREFIX)


@dataclass(frozen=True, slots=True)
class PublishGrant:
    stream_id: int
    user_id: int
    expires_at: int  # unix seconds


def sign_publish(secret_key: bytes, grant: PublishGrant) -> str:
    return _TOKENS.sign(secret_key, grant.stream_id, grant.user_id, grant.expires_at)


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
    return _TOKENS.verify(secret_key, token, stream_id, PublishGrant, now=now)
