"""Safety fixtures: a node with chat on Redis, platform banned terms, and people to report."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from livecore.config import SafetyConfig
from tests.chat.conftest import FAST_CHAT, stream, user
from tests.conftest import PASSWORD, Client, MakeClient

SAFETY = SafetyConfig(banned_terms=("badword",))


@pytest.fixture
async def node(make_client: MakeClient, redis_url: str) -> Client:
    return await make_client(redis_url=redis_url, chat=FAST_CHAT, safety=SAFETY)


async def admin(client: Client, dsn: str, name: str = "root") -> dict[str, Any]:
    """A new account made admin, logged in again so its session carries the role."""
    await user(client, name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE users SET role = 'admin' WHERE email = $1", f"{name}@example.com"
        )
    finally:
        await conn.close()
    resp = await client.post(
        "/api/v1/auth/login", json={"email": f"{name}@example.com", "password": PASSWORD}
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    client.session.cookie_jar.clear()
    return body


async def owner_and_stream(client: Client) -> tuple[dict[str, Any], int]:
    owner = await user(client, "owner", creator=True)
    stream_id = await stream(client, str(owner["token"]))
    return owner, stream_id
