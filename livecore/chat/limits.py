"""Chat rate limits and duplicate suppression, per node or shared by all nodes through Redis.

Imports only `config` from livecore. The Redis limiter is one round trip per check: a Lua
script refills and takes from a token bucket kept in a Redis hash, reading Redis's own
clock (`TIME`), so every node draws from the same bucket whatever its own clock says.

Every Redis call has a deadline. A failed or late call raises `LimiterUnavailable`, and for
a few seconds afterwards calls fail at once without trying, so that while Redis is down a
message costs no timeout and the caller goes straight to its local fallback.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from livecore.config import Config

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
T = TypeVar("T")


class LimiterUnavailable(Exception):
    """Redis failed or did not answer in time; use a local limiter meanwhile."""


# -- token bucket ---------------------------------------------------------------------------


class TokenBucket:
    """`capacity` tokens that refill at `refill_per_s`; not thread-safe, never blocks."""

    def __init__(
        self, capacity: float, refill_per_s: float, *, clock: Clock = time.monotonic
    ) -> None:
        if capacity < 1 or refill_per_s <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and refill_per_s > 0")
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        return self._refilled(self._clock())

    def take(self, cost: float = 1.0) -> float:
        """Take `cost` tokens: 0.0 when taken, else the seconds until they are there."""
        if cost > self.capacity:
            raise ValueError(f"cost {cost} is more than the capacity {self.capacity}")
        now = self._clock()
        self._tokens = self._refilled(now)
        self._at = now
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self.refill_per_s

    def _refilled(self, now: float) -> float:
        # max(): a clock that steps back must not drain the bucket.
        return min(self.capacity, self._tokens + max(0.0, now - self._at) * self.refill_per_s)


# -- rate limiters ---------------------------------------------------------------------------


class RateLimiter(Protocol):
    async def allow(self, key: str) -> float:
        """Count one message for `key`: 0.0 when allowed, else the seconds to wait."""
        ...


class LocalRateLimiter:
    """Token buckets in this process's memory, at most `max_keys` of them.

    When full, the least recently used key is forgotten (it starts again with a full
    bucket): by then it has almost always refilled anyway.
    """

    def __init__(
        self,
        capacity: float,
        refill_per_s: float,
        *,
        max_keys: int = 100_000,
        clock: Clock = time.monotonic,
    ) -> None:
        TokenBucket(capacity, refill_per_s)  # validates the arguments now, not at first use
        self._capacity = capacity
        self._refill_per_s = refill_per_s
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def allow(self, key: str) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            while len(self._buckets) >= self._max_keys:
                self._buckets.popitem(last=False)
            bucket = TokenBucket(self._capacity, self._refill_per_s, clock=self._clock)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        return bucket.take()


# KEYS[1]: the bucket (a hash of tokens and the time they were counted).
# ARGV: capacity, refill per second. Returns the wait in seconds, as a string: Redis would
# truncate a Lua number to an integer.
_TAKE_TOKEN = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
-- Gone once it would be full again: a missing bucket reads as a full one.
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class _RedisGuard:
    """Deadline, error translation and a short back-off around each Redis call."""

    def __init__(self, what: str, timeout_s: float, cooldown_s: float, clock: Clock) -> None:
        self._what = what
        self._timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._down_until: float | None = None

    async def call(self, make_call: Callable[[], Awaitable[T]]) -> T:
        if self._down_until is not None and self._clock() < self._down_until:
            raise LimiterUnavailable(f"{self._what}: Redis failed recently")
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await make_call()
        except (RedisError, OSError, TimeoutError) as exc:
            if self._down_until is None:
                logger.warning("%s: Redis unavailable (%r); using the local fallback",
                               self._what, exc)  # fmt: skip
            self._down_until = self._clock() + self._cooldown_s
            raise LimiterUnavailable(f"{self._what}: {exc!r}") from exc
        if self._down_until is not None:
            logger.info("%s: Redis is back", self._what)
            self._down_until = None
        return result


class RedisRateLimiter:
    """Token buckets in Redis, shared by every node; one EVALSHA per check.

    Raises `LimiterUnavailable` when Redis fails or takes longer than `timeout_s`, and for
    `cooldown_s` after that without trying.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        capacity: float,
        refill_per_s: float,
        *,
        prefix: str = "livecore:chat:rate:",
        timeout_s: float = 0.5,
        cooldown_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        TokenBucket(capacity, refill_per_s)  # same validation as the local limiter
        # redis-py sends EVALSHA, and loads the script only if the server lacks it.
        self._script = client.register_script(_TAKE_TOKEN)
        self._args = (repr(float(capacity)), repr(float(refill_per_s)))
        self._prefix = prefix
        self._guard = _RedisGuard("chat rate limit", timeout_s, cooldown_s, clock)

    async def allow(self, key: str) -> float:
        keys = [self._prefix + key]
        wait = await self._guard.call(lambda: self._script(keys=keys, args=self._args))
        return float(wait.decode() if isinstance(wait, bytes) else wait)


# -- duplicate messages ----------------------------------------------------------------------


class DuplicateFilter(Protocol):
    async def first_time(self, key: str, normalised_text: str) -> bool:
        """Record `normalised_text` for `key`; False if it was recorded within the window.

        `key` names the sender (stream and user); pass text through `text.normalise` so
        that "Hello!!!" and "hello!!" count as the same message.
        """
        ...


def _digest(key: str, normalised_text: str) -> str:
    # A fixed-size digest keeps memory and Redis keys small whatever the message length.
    return hashlib.blake2b(f"{key}\0{normalised_text}".encode(), digest_size=16).hexdigest()


class LocalDuplicateFilter:
    """Recent messages in this process's memory: at most `max_entries`, oldest dropped."""

    def __init__(
        self, window_s: float, *, max_entries: int = 100_000, clock: Clock = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._max_entries = max_entries
        self._clock = clock
        # digest -> when it was recorded. The window is fixed, so insertion order is also
        # expiry order and stale entries are always at the front.
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    async def first_time(self, key: str, normalised_text: str) -> bool:
        if self._window_s <= 0:
            return True
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) + self._window_s <= now:
            self._seen.popitem(last=False)
        digest = _digest(key, normalised_text)
        if digest in self._seen:
            return False  # the window runs from the first post; repeats do not extend it
        while len(self._seen) >= self._max_entries:
            self._seen.popitem(last=False)
        self._seen[digest] = now
        return True


class RedisDuplicateFilter:
    """Recent messages in Redis, shared by every node: one SET NX PX per check."""

    def __init__(
        self,
        client: aioredis.Redis,
        window_s: float,
        *,
        prefix: str = "livecore:chat:dup:",
        timeout_s: float = 0.5,
        cooldown_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self._window_ms = round(window_s * 1000)
        self._prefix = prefix
        self._guard = _RedisGuard("chat duplicate filter", timeout_s, cooldown_s, clock)

    async def first_time(self, key: str, normalised_text: str) -> bool:
        if self._window_ms <= 0:
            return True
        name = self._prefix + _digest(key, normalised_text)
        created = await self._guard.call(
            lambda: self._client.set(name, b"1", nx=True, px=self._window_ms)
        )
        return bool(created)


class FallbackDuplicateFilter:
    """`primary` (Redis), or `fallback` (local) whenever the primary is unavailable."""

    def __init__(self, primary: DuplicateFilter, fallback: DuplicateFilter) -> None:
        self._primary = primary
        self._fallback = fallback

    async def first_time(self, key: str, normalised_text: str) -> bool:
        try:
            return await self._primary.first_time(key, normalised_text)
        except LimiterUnavailable:
            return await self._fallback.first_time(key, normalised_text)


# -- wiring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """The limiters a node's chat uses; `close()` closes the Redis client, if any."""

    rate: RateLimiter
    local_rate: RateLimiter  # for when `rate` raises LimiterUnavailable
    duplicates: DuplicateFilter  # falls back by itself
    client: aioredis.Redis | None = None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def chat_limits(config: Config) -> ChatLimits:
    """Build the limiters: shared through Redis when `redis_url` is set, else per node."""
    chat = config.chat
    local_rate = LocalRateLimiter(chat.rate_burst, chat.rate_per_s)
    local_duplicates = LocalDuplicateFilter(chat.duplicate_window_s)
    if not config.redis_url:
        return ChatLimits(local_rate, local_rate, local_duplicates)
    # Socket timeouts too: a connect that hangs must not outlive the per-call deadline.
    client = aioredis.Redis.from_url(config.redis_url, socket_timeout=1, socket_connect_timeout=1)
    return ChatLimits(
        rate=RedisRateLimiter(client, chat.rate_burst, chat.rate_per_s),
        local_rate=local_rate,
        duplicates=FallbackDuplicateFilter(
            RedisDuplicateFilter(client, chat.duplicate_window_s), local_duplicates
        ),
        client=client,
    )
