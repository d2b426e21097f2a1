"""Rate limits and duplicate suppression for chat, per node or shared through Redis.

The shared limiter is one round trip per check: a Lua script refills and takes from a token
bucket stored in a Redis hash, using Redis's clock, so every node draws from the same bucket
whatever its own clock says. When Redis fails the caller falls back to the local limiter.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livecore.config import Config

_TIMEOUT_S = 1.0
_MAX_KEYS = 100_000


class LimiterUnavailable(Exception):
    """Redis did not answer; use the local limiter meanwhile."""


class TokenBucket:
    """`capacity` tokens, refilled at `refill_per_s`; take() returns 0 or the wait in seconds."""

    def __init__(
        self,
        capacity: float,
        refill_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._tokens = capacity
        self._at = clock()

    def take(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.refill_per_s)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.refill_per_s


class RateLimiter(Protocol):
    async def allow(self, key: str) -> float:
        """0.0 when allowed (and counted); otherwise the seconds to wait."""
        ...


class LocalRateLimiter:
    def __init__(self, capacity: float, refill_per_s: float) -> None:
        self._capacity = capacity
        self._refill = refill_per_s
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def allow(self, key: str) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._capacity, self._refill)
            if len(self._buckets) > _MAX_KEYS:
                self._buckets.popitem(last=False)  # the least recently seen key
        else:
            self._buckets.move_to_end(key)
        return bucket.take()


_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    def __init__(self, client: aioredis.Redis, capacity: float, refill_per_s: float) -> None:
        self._script = client.register_script(_BUCKET)
        self._args = [str(capacity), str(refill_per_s)]

    async def allow(self, key: str) -> float:
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                wait = await self._script(keys=[f"livecore:rate:{key}"], args=self._args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return float(wait)


class DuplicateFilter:
    """The same user posting the same (normalised) text again within `window_s` is refused.

    Shared through Redis when given a client (SET NX EX: one round trip), else per node.
    """

    def __init__(self, window_s: float, client: aioredis.Redis | None = None) -> None:
        self._window_s = window_s
        self._client = client
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def first_time(self, key: str, normalised_text: str) -> bool:
        if self._window_s <= 0:
            return True
        digest = hashlib.blake2b(f"{key}\x00{normalised_text}".encode(), digest_size=16)
        name = digest.hexdigest()
        if self._client is not None:
            try:
                async with asyncio.timeout(_TIMEOUT_S):
                    return bool(
                        await self._client.set(
                            f"livecore:dup:{name}", 1, nx=True, px=int(self._window_s * 1000)
                        )
                    )
            except (RedisError, OSError, TimeoutError):
                pass  # fall through to this node's own memory
        now = time.monotonic()
        last = self._seen.get(name)
        if last is not None and now - last < self._window_s:
            return False
        self._seen[name] = now
        self._seen.move_to_end(name)
        while len(self._seen) > _MAX_KEYS:
            self._seen.popitem(last=False)
        return True


@dataclass
class ChatLimits:
    rate: RateLimiter
    local_rate: RateLimiter
    duplicates: DuplicateFilter
    client: aioredis.Redis | None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def chat_limits(config: Config) -> ChatLimits:
    """Limiters shared through Redis when redis_url is set, per node otherwise."""
    c = config.chat
    local = LocalRateLimiter(c.rate_burst, c.rate_per_s)
    if not config.redis_url:
        return ChatLimits(local, local, DuplicateFilter(c.duplicate_window_s), None)
    client = aioredis.Redis.from_url(config.redis_url, socket_timeout=1, socket_connect_timeout=1)
    return ChatLimits(
        RedisRateLimiter(client, c.rate_burst, c.rate_per_s),
        local,
        DuplicateFilter(c.duplicate_window_s, client),
        client,
    )
