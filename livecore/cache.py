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
    """With `refresh_ahead_s`, a value asked for in the last `refresh_ahead_s` of its life is
    still returned at once while one load replaces it in the background: keys read all the
    time (every viewer request) never make a crowd wait for a load, and no value older than
    the TTL is ever returned."""

    def __init__(
        self, ttl_s: float, *, max_keys: int = 1024, clock: Callable[[], float] = time.monotonic,
        refresh_ahead_s: float = 0.0,
    ) -> None:  # fmt: skip
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._clock = clock
        self._refresh_ahead_s = min(refresh_ahead_s, ttl_s)
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._refreshing: set[asyncio.Task[V]] = set()
        # Bumped by invalidate and forget: a load that began before is not stored (it may
        # have read what the change replaced).
        self._generation = 0

    def peek(self, key: K) -> tuple[float, V] | None:
        """(expiry, value) while the key's value is fresh (and not due for a refresh ahead),
        else None: a hit without the coroutine `get` costs (for paths that run thousands of
        times a second); on None, ask `get`."""
        hit = self._values.get(key)
        return hit if hit is not None and hit[0] - self._refresh_ahead_s > self._clock() else None

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._values.get(key)
        if hit is not None and (left := hit[0] - self._clock()) > 0:
            if left <= self._refresh_ahead_s and key not in self._loading:
                # Registered as loading now, not when the task first runs: the askers until
                # then must not start refreshes of their own.
                task = asyncio.create_task(self._load(key, load, self._begin(key)))
                self._refreshing.add(task)
                task.add_done_callback(_refreshed(self._refreshing))
            return hit[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, load, self._begin(key))

    def _begin(self, key: K) -> tuple[asyncio.Future[V], int]:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        return future, self._generation

    async def _load(
        self, key: K, load: Callable[[], Awaitable[V]], begun: tuple[asyncio.Future[V], int]
    ) -> V:
        """One load of `key` (the others asking meanwhile wait for `begun`'s future), kept
        unless the cache was invalidated or the key forgotten since it began."""
        future, generation = begun
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
        if generation == self._generation:
            if len(self._values) >= self._max_keys:
                self._values.clear()
            self._values[key] = (self._clock() + self._ttl_s, value)
        future.set_result(value)
        return value

    def invalidate(self) -> None:
        """Forget every value (this node changed what they were computed from)."""
        self._values.clear()
        self._generation += 1

    def forget(self, key: K) -> None:
        """Forget one key's value: the next get loads it again."""
        self._values.pop(key, None)
        self._generation += 1

    def forget_if(self, key: K, value: V) -> None:
        """Forget the key's value if it is still `value`: of the many askers that saw one
        value fail, the first forgets it, and the value a load put there since is kept."""
        hit = self._values.get(key)
        if hit is not None and hit[1] == value:
            self.forget(key)


def _refreshed(tasks: set[asyncio.Task[V]]) -> Callable[[asyncio.Task[V]], None]:
    def done(task: asyncio.Task[V]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            # A refresh that failed leaves the value to expire: the next `get` after that
            # loads it again and its caller sees the error.
            task.exception()

    return done
