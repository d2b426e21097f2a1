"""Signed playback tokens for streams only some viewers may watch.

A token says "viewer V may play stream S until T", signed with the deployment's secret key
(HMAC-SHA256, livecore.auth.grants), so any node (and nothing else) can check it without a
database lookup. It rides on every playlist and segment URI as `?token=...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from livecore.auth.grants import GrantToken

_TOKENS: Final = GrantToken(context=b"livecore-playback\x00")


@dataclass(frozen=True, slots=True)
class PlaybackGrant:
    stream_id: int
    viewer_id: int
    expires_at: int  # unix seconds


def sign_playback(secret_key: bytes, grant: PlaybackGrant) -> str:
    return _TOKENS.sign(secret_key, grant.stream_id, grant.viewer_id, grant.expires_at)


def verify_playback(
    secret_key: bytes, token: str, stream_id: int, *, now: float | None = None
) -> PlaybackGrant | None:
    """The grant a token carries if it is genuine, for this stream, and not expired."""
    return _TOKENS.verify(secret_key, token, stream_id, PlaybackGrant, now=now)
