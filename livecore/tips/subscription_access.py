"""Who a subscription lets in: asked on every playback ticket and chat line, so cached briefly.

A change made on this node is seen at once (`forget`); one made on another node within the
cache's lifetime.
"""

from __future__ import annotations

from livecore.cache import TtlCache
from livecore.store.streams import Stream
from livecore.store.subscriptions import Subscriptions
from livecore.store.users import User


class SubscriberAccess:
    def __init__(self, store: Subscriptions, cache_s: float) -> None:
        self._store = store
        self._cache: TtlCache[tuple[int, int], bool] | None = (
            TtlCache(cache_s, max_keys=50_000) if cache_s > 0 else None
        )

    async def has_access(self, viewer_id: int, creator_id: int) -> bool:
        """Whether a subscription of the viewer to any of the creator's tiers lets them in:
        active and paid up (a canceled-at-period-end one until then), or past due within
        its grace. Cached briefly."""
        if self._cache is None:
            return await self._store.has_access(viewer_id, creator_id)
        return await self._cache.get(
            (viewer_id, creator_id), lambda: self._store.has_access(viewer_id, creator_id)
        )

    async def admits(self, user: User, stream: Stream) -> bool:
        """The extra check for may_watch and may_chat: a subscriber of the stream's owner."""
        return await self.has_access(user.id, stream.owner_id)

    def forget(self) -> None:
        """Subscriptions changed on this node: answer access questions afresh."""
        if self._cache is not None:
            self._cache.invalidate()
