"""Who may watch a stream, and the signed tokens that carry that answer to the HLS origin.

Public streams play for anyone. Subscriber-only streams play with a token issued to users
who pass `may_watch`: the owner, the stream's moderators, admins, and whoever an extra check
admits (active subscribers: the money package's check, passed in at construction).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from livecore.auth.playback import PlaybackGrant, sign_playback, verify_playback
from livecore.cache import TtlCache
from livecore.store.streams import Stream, Streams
from livecore.store.users import User

# An extra admission rule (e.g. "has an active subscription"), or None.
WatchCheck = Callable[[User, Stream], Awaitable[bool]]


class PlaybackRefused(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PlaybackTicket:
    token: str | None  # None: a public stream, no token needed
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class _Access:
    stream_id: int
    protected: bool


class PlaybackPolicy:
    def __init__(
        self,
        streams: Streams,
        secret_key: bytes,
        *,
        token_ttl_s: int,
        extra_check: WatchCheck | None = None,
    ) -> None:
        self._streams = streams
        self._secret_key = secret_key
        self._token_ttl_s = token_ttl_s
        self._extra_check = extra_check
        # Segment requests arrive many times a second per viewer: the stream's visibility is
        # read from the database at most once a second per stream and node, refreshed ahead
        # in its last half second (no viewer request waits for that read).
        self._access: TtlCache[str, _Access | None] = TtlCache(
            1.0, max_keys=10_000, refresh_ahead_s=0.5
        )
        # Chat joins too (thousands a second in a premiere's first minute): the same bound.
        self._streams_by_slug: TtlCache[str, Stream | None] = TtlCache(1.0, max_keys=10_000)

    async def stream(self, slug: str) -> Stream | None:
        """The stream a viewer names, read from the database at most once a second per
        stream and node (at once after a change made on this node)."""
        return await self._streams_by_slug.get(slug, lambda: self._streams.by_slug(slug))

    async def may_watch(self, user: User, stream: Stream) -> bool:
        if stream.visibility == "public" or user.role == "admin" or user.id == stream.owner_id:
            return True
        if await self._streams.is_moderator(stream.id, user.id):
            return True
        return self._extra_check is not None and await self._extra_check(user, stream)

    async def ticket(self, user: User | None, stream: Stream) -> PlaybackTicket:
        """A playback ticket for `user`, or PlaybackRefused."""
        if stream.visibility == "public":
            return PlaybackTicket(None, None)
        if user is None or not await self.may_watch(user, stream):
            raise PlaybackRefused(stream.slug)
        expires_at = int(time.time()) + self._token_ttl_s
        token = sign_playback(self._secret_key, PlaybackGrant(stream.id, user.id, expires_at))
        return PlaybackTicket(token, expires_at)

    async def admit(self, slug: str, token: str | None) -> str:
        """Check an HLS request; returns the query its URIs carry. PlaybackRefused if denied."""

        # Every HLS request of every viewer passes here: a fresh answer is taken without
        # making the loader.
        if (hit := self._access.peek(slug)) is not None:
            access = hit[1]
        else:

            async def load() -> _Access | None:
                stream = await self._streams.by_slug(slug)
                return _Access(stream.id, stream.visibility != "public") if stream else None

            access = await self._access.get(slug, load)
        if access is None or not access.protected:
            return ""  # unknown streams get the origin's own 404
        if token is None or verify_playback(self._secret_key, token, access.stream_id) is None:
            raise PlaybackRefused(slug)
        return f"?token={token}"

    def forget(self) -> None:
        """Visibility changed on this node: read it afresh."""
        self._access.invalidate()
        self._streams_by_slug.invalidate()
