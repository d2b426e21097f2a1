"""A tiny per-node TTL cache with single-flight loading.

For answers many clients ask for at once (the live-stream list during a premiere): one
load per key per TTL, however many requests arrive, and concurrent misses share that load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(
        self, ttl_s: float, *, max_keys: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    def peek(self, key: K) -> tuple[float, V] | None:
        """(expiry, value) while the key's value is fresh, else None: a hit without the
        coroutine `get` costs (for paths that run thousands of times a second)."""
        hit = self._values.get(key)
        return hit if hit is not None and hit[0] > self._clock() else None

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._values.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()  # only at shutdown: aiohttp does not cancel handlers otherwise
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters, if any, re-raise it themselves
            raise
        finally:
            del self._loading[key]
        if len(self._values) >= self._max_keys:
            self._values.clear()
        self._values[key] = (self._clock() + self._ttl_s, value)
        future.set_result(value)
        return value

    def invalidate(self) -> None:
        """Forget every value (this node changed what they were computed from)."""
        self._values.clear()

    def forget(self, key: K) -> None:
        """Forget one key's value: the next get loads it again."""
        self._values.pop(key, None)
