"""Rate limits and duplicate suppression: a hand-driven clock for the local ones, the real
test Redis (two clients standing for two nodes) for the shared ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from livecore.chat.limits import (
    FallbackDuplicateFilter,
    LimiterUnavailable,
    LocalDuplicateFilter,
    LocalRateLimiter,
    RedisDuplicateFilter,
    RedisRateLimiter,
    TokenBucket,
    chat_limits,
)
from livecore.config import ChatConfig, Config
from tests.support.clock import ManualClock
from tests.support.services import free_port


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


async def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


@pytest.fixture
async def node_a(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = await _client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def node_b(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = await _client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    """A client for a loopback port nobody listens on."""
    client = await _client(f"redis://127.0.0.1:{free_port()}/0")
    yield client
    await client.aclose()


@pytest.fixture
async def silent_redis() -> AsyncIterator[aioredis.Redis]:
    """A client for a server that accepts connections and never answers."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(4096):
                pass
        finally:
            writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=30)
    yield client
    await client.aclose()
    server.close()
    await server.wait_closed()


# -- TokenBucket --------------------------------------------------------------------------------


def test_bucket_allows_a_burst_then_says_how_long_to_wait(clock: ManualClock) -> None:
    bucket = TokenBucket(capacity=3, refill_per_s=0.5, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(2.0)  # one token at 0.5 per second
    clock.now += 1.0
    assert bucket.take() == pytest.approx(1.0)  # half a token back, half to go


def test_bucket_refills_with_time_up_to_capacity(clock: ManualClock) -> None:
    bucket = TokenBucket(capacity=2, refill_per_s=1.0, clock=clock)
    bucket.take()
    bucket.take()
    clock.now += 1.0
    assert bucket.tokens == pytest.approx(1.0)
    assert bucket.take() == 0.0
    assert bucket.take() > 0
    clock.now += 3600
    assert bucket.tokens == 2  # never more than the capacity
    assert [bucket.take() for _ in range(3)][2] > 0


def test_refused_takes_do_not_cost_tokens(clock: ManualClock) -> None:
    bucket = TokenBucket(capacity=1, refill_per_s=1.0, clock=clock)
    bucket.take()
    for _ in range(5):
        assert bucket.take() > 0
    clock.now += 1.0
    assert bucket.take() == 0.0


def test_bucket_survives_a_clock_stepping_back(clock: ManualClock) -> None:
    bucket = TokenBucket(capacity=1, refill_per_s=1.0, clock=clock)
    clock.now -= 100
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(1.0)


def test_bucket_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(capacity=0.5, refill_per_s=1.0)
    with pytest.raises(ValueError, match="refill"):
        TokenBucket(capacity=1, refill_per_s=0)
    with pytest.raises(ValueError, match="more than the capacity"):
        TokenBucket(capacity=1, refill_per_s=1).take(2)


# -- LocalRateLimiter -----------------------------------------------------------------------


async def test_local_limiter_keeps_one_bucket_per_key(clock: ManualClock) -> None:
    limiter = LocalRateLimiter(2, 1.0, clock=clock)
    assert [await limiter.allow("s1:alice") for _ in range(3)][:2] == [0.0, 0.0]
    assert await limiter.allow("s1:alice") == pytest.approx(1.0)
    assert await limiter.allow("s1:bob") == 0.0
    clock.now += 1.0
    assert await limiter.allow("s1:alice") == 0.0


async def test_local_limiter_forgets_the_least_recently_used_key(clock: ManualClock) -> None:
    limiter = LocalRateLimiter(1, 0.01, max_keys=2, clock=clock)
    await limiter.allow("a")
    await limiter.allow("b")
    assert await limiter.allow("a") > 0  # "a" is now the most recently used
    await limiter.allow("c")  # evicts "b"
    assert len(limiter) == 2
    assert await limiter.allow("a") > 0  # still remembered
    assert await limiter.allow("b") == 0.0  # forgotten: starts with a full bucket


# -- RedisRateLimiter -------------------------------------------------------------------------


async def test_redis_limiter_is_shared_by_nodes(
    node_a: aioredis.Redis, node_b: aioredis.Redis
) -> None:
    a = RedisRateLimiter(node_a, 3, 0.5)
    b = RedisRateLimiter(node_b, 3, 0.5)
    results = [await a.allow("s1:alice"), await b.allow("s1:alice"), await a.allow("s1:alice")]
    assert results == [0.0, 0.0, 0.0]
    wait = await b.allow("s1:alice")
    assert 1.0 < wait <= 2.0  # one token at 0.5 per second, minus the time that passed
    assert await a.allow("s1:alice") > 0
    assert await b.allow("s1:bob") == 0.0  # other keys have their own bucket


async def test_redis_limiter_refills_on_redis_time(node_a: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(node_a, 1, 20.0)
    assert await limiter.allow("k") == 0.0
    wait = await limiter.allow("k")
    assert 0 < wait <= 0.05
    await asyncio.sleep(wait + 0.02)
    assert await limiter.allow("k") == 0.0


async def test_concurrent_checks_from_two_nodes_never_overspend(
    node_a: aioredis.Redis, node_b: aioredis.Redis
) -> None:
    a = RedisRateLimiter(node_a, 5, 0.01)
    b = RedisRateLimiter(node_b, 5, 0.01)
    waits = await asyncio.gather(*(lim.allow("k") for lim in (a, b) * 10))
    assert sum(w == 0.0 for w in waits) == 5  # the script is atomic: exactly the burst


async def test_redis_limiter_keys_expire_once_full_again(node_a: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(node_a, 2, 1.0, prefix="test:rate:")
    await limiter.allow("k")
    ttl_ms = await node_a.pttl("test:rate:k")
    assert 1000 < ttl_ms <= 2000  # one token short: full in 1 s, plus a 1 s margin


async def test_redis_limiter_is_one_round_trip(node_a: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(node_a, 10, 1.0)
    await limiter.allow("warm-up")  # may load the script first
    await node_a.config_resetstat()
    for _ in range(4):
        await limiter.allow("k")
    stats = await node_a.info("commandstats")
    called = {
        name.removeprefix("cmdstat_"): s["calls"]
        for name, s in stats.items()
        if not name.startswith(("cmdstat_config", "cmdstat_info"))  # this test's own
    }
    # Commands run inside the script are counted too, but EVALSHA is the only one sent.
    assert called.pop("evalsha") == 4
    assert set(called) <= {"time", "hmget", "hset", "pexpire"}


async def test_redis_limiter_failure_is_limiter_unavailable(dead_redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(dead_redis, 3, 1.0)
    with pytest.raises(LimiterUnavailable):
        await limiter.allow("k")


async def test_redis_limiter_times_out(silent_redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(silent_redis, 3, 1.0, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        await limiter.allow("k")
    assert time.monotonic() - started < 1.0


async def test_after_a_failure_redis_is_skipped_for_a_while(
    silent_redis: aioredis.Redis, clock: ManualClock
) -> None:
    limiter = RedisRateLimiter(silent_redis, 3, 1.0, timeout_s=0.2, cooldown_s=5, clock=clock)
    with pytest.raises(LimiterUnavailable):
        await limiter.allow("k")
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        await limiter.allow("k")
    assert time.monotonic() - started < 0.1  # failed at once, no second timeout
    clock.now += 5
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        await limiter.allow("k")
    assert time.monotonic() - started >= 0.15  # tried Redis again


async def test_redis_limiter_recovers_when_redis_is_back(
    node_a: aioredis.Redis, clock: ManualClock
) -> None:
    limiter = RedisRateLimiter(node_a, 3, 1.0, cooldown_s=5, clock=clock)
    limiter._guard._down_until = clock.now + 5  # as after a failure
    with pytest.raises(LimiterUnavailable):
        await limiter.allow("k")
    clock.now += 5
    assert await limiter.allow("k") == 0.0
    assert limiter._guard._down_until is None


# -- duplicate filters ------------------------------------------------------------------------


async def test_local_duplicates_are_refused_within_the_window(clock: ManualClock) -> None:
    dups = LocalDuplicateFilter(30, clock=clock)
    assert await dups.first_time("s1:alice", "hello")
    assert not await dups.first_time("s1:alice", "hello")
    assert await dups.first_time("s1:bob", "hello")  # another user
    assert await dups.first_time("s1:alice", "hello there")  # another text
    assert await dups.first_time("s2:alice", "hello")  # another stream
    clock.now += 29
    assert not await dups.first_time("s1:alice", "hello")
    clock.now += 1  # 30 s after the first post: repeats did not extend the window
    assert await dups.first_time("s1:alice", "hello")


async def test_local_duplicate_memory_is_bounded(clock: ManualClock) -> None:
    dups = LocalDuplicateFilter(30, max_entries=3, clock=clock)
    for i in range(10):
        assert await dups.first_time("u", f"message {i}")
    assert len(dups) == 3
    assert not await dups.first_time("u", "message 9")
    assert await dups.first_time("u", "message 0")  # dropped to make room


async def test_local_duplicate_memory_drops_expired_entries(clock: ManualClock) -> None:
    dups = LocalDuplicateFilter(30, clock=clock)
    for i in range(5):
        await dups.first_time("u", f"message {i}")
    clock.now += 31
    await dups.first_time("u", "new")
    assert len(dups) == 1


async def test_a_zero_window_turns_duplicate_checks_off(node_a: aioredis.Redis) -> None:
    for dups in (LocalDuplicateFilter(0), RedisDuplicateFilter(node_a, 0)):
        assert await dups.first_time("u", "same")
        assert await dups.first_time("u", "same")


async def test_redis_duplicates_are_shared_by_nodes(
    node_a: aioredis.Redis, node_b: aioredis.Redis
) -> None:
    a = RedisDuplicateFilter(node_a, 30)
    b = RedisDuplicateFilter(node_b, 30)
    assert await a.first_time("s1:alice", "hello")
    assert not await b.first_time("s1:alice", "hello")
    assert await b.first_time("s1:bob", "hello")


async def test_redis_duplicates_expire(node_a: aioredis.Redis) -> None:
    dups = RedisDuplicateFilter(node_a, 0.1, prefix="test:dup:")
    assert await dups.first_time("u", "hi")
    (name,) = await node_a.keys("test:dup:*")
    assert 0 < await node_a.pttl(name) <= 100
    assert len(name) == len(b"test:dup:") + 32  # a digest: no user text in key names
    await asyncio.sleep(0.15)
    assert await dups.first_time("u", "hi")


async def test_redis_duplicate_failure_falls_back_to_local(
    dead_redis: aioredis.Redis, clock: ManualClock
) -> None:
    redis_dups = RedisDuplicateFilter(dead_redis, 30)
    with pytest.raises(LimiterUnavailable):
        await redis_dups.first_time("u", "hi")
    dups = FallbackDuplicateFilter(redis_dups, LocalDuplicateFilter(30, clock=clock))
    assert await dups.first_time("u", "hi")
    assert not await dups.first_time("u", "hi")


# -- wiring ------------------------------------------------------------------------------------


def _config(redis_url: str = "") -> Config:
    chat = ChatConfig(rate_burst=2, rate_per_s=0.5, duplicate_window_s=30)
    return replace(Config(secret_key="x" * 32), redis_url=redis_url, chat=chat)


async def test_chat_limits_without_redis_are_local() -> None:
    limits = chat_limits(_config())
    assert limits.client is None
    assert isinstance(limits.rate, LocalRateLimiter) and limits.rate is limits.local_rate
    assert [await limits.rate.allow("k") for _ in range(3)][2] > 0
    assert await limits.duplicates.first_time("k", "hi")
    assert not await limits.duplicates.first_time("k", "hi")
    await limits.close()


async def test_chat_limits_with_redis_share_state(redis_url: str) -> None:
    one, two = chat_limits(_config(redis_url)), chat_limits(_config(redis_url))
    try:
        assert isinstance(one.rate, RedisRateLimiter)
        assert isinstance(one.local_rate, LocalRateLimiter)
        assert [await one.rate.allow("k"), await two.rate.allow("k")] == [0.0, 0.0]
        assert await one.rate.allow("k") > 0
        assert await one.duplicates.first_time("k", "hi")
        assert not await two.duplicates.first_time("k", "hi")
    finally:
        await one.close()
        await two.close()
