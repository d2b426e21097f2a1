from __future__ import annotations

import redis.asyncio as aioredis


async def test_redis_server_answers_on_loopback(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping()
        await client.set("livecore:test", "1")
        assert await client.get("livecore:test") == b"1"
    finally:
        await client.aclose()
