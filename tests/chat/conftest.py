"""Chat fixtures: livecore nodes sharing one PostgreSQL and one Redis, and socket helpers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType

from livecore.config import ChatConfig
from tests.conftest import Client, MakeClient, bearer, register

FAST_CHAT = ChatConfig(tick_ms=20, presence_interval_s=0.3, rate_burst=50, rate_per_s=50.0)


@pytest.fixture
async def node_a(make_client: MakeClient, redis_url: str) -> Client:
    return await make_client(redis_url=redis_url, chat=FAST_CHAT)


@pytest.fixture
async def node_b(make_client: MakeClient, redis_url: str) -> Client:
    return await make_client(redis_url=redis_url, chat=FAST_CHAT)


@pytest.fixture
async def node_c(make_client: MakeClient, redis_url: str) -> Client:
    return await make_client(redis_url=redis_url, chat=FAST_CHAT)


async def user(client: Client, name: str, *, creator: bool = False) -> dict[str, Any]:
    body = await register(client, f"{name}@example.com", creator=creator, display_name=name)
    client.session.cookie_jar.clear()
    return body


async def stream(client: Client, owner_token: str, slug: str = "room-one") -> int:
    resp = await client.post("/api/v1/streams", json={"slug": slug}, headers=bearer(owner_token))
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["stream"]["id"])


class Viewer:
    """A chat socket that collects every event it receives."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.hello: dict[str, Any] = {}
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != WSMsgType.TEXT:
                continue
            for event in json.loads(message.data):
                if event["type"] == "hello":
                    self.hello = event
                self.events.append(event)
            self._arrived.set()

    async def wait_for(self, check: Any, timeout_s: float = 10.0) -> dict[str, Any]:
        """The first event (in arrival order) for which check(event) is true."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if check(event):
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def say(self, text: str, nonce: str) -> dict[str, Any]:
        await self.ws.send_json({"type": "chat", "text": text, "nonce": nonce})
        return await self.wait_for(
            lambda e: e.get("nonce") == nonce and e["type"] in ("ack", "error")
        )

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._task, return_exceptions=True)


async def connect(client: Client, slug: str, token: str | None = None) -> Viewer:
    headers = bearer(token) if token else {}
    ws = await client.ws_connect(f"/ws/{slug}", headers=headers)
    viewer = Viewer(ws)
    await viewer.wait_for(lambda e: e["type"] == "hello")
    return viewer


def chat_config(**changes: Any) -> ChatConfig:
    return replace(FAST_CHAT, **changes)
