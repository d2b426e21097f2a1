"""Helpers of the data-rights tests: a creator with a stream and a tier, a fan who chats,
tips and subscribes."""

from __future__ import annotations

import asyncio
from typing import Any

from livecore.store import Database
from tests.chat.conftest import connect, user
from tests.conftest import Client, bearer, create_stream


async def tip(client: Client, token: str, slug: str, key: str, amount: int = 500) -> None:
    resp = await client.post(
        f"/api/v1/streams/{slug}/tips", json={"amount_minor": amount, "currency": "usd"},
        headers=bearer(token) | {"Idempotency-Key": key},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()


async def tier(client: Client, token: str, name: str = "Gold") -> int:
    resp = await client.post(
        "/api/v1/me/tiers", json={"name": name, "price_minor": 300, "currency": "usd"},
        headers=bearer(token),
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["tier"]["id"])


async def subscribe(client: Client, token: str, tier_id: int) -> int:
    resp = await client.post(f"/api/v1/tiers/{tier_id}/subscribe", headers=bearer(token))
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["subscription"]["id"])


async def say(client: Client, slug: str, token: str, *lines: str) -> None:
    """Say the lines in the stream's chat and wait until they are stored."""
    chat = await connect(client, slug, token)
    try:
        for n, text in enumerate(lines):
            assert (await chat.say(text, f"n{n}"))["type"] == "ack"
    finally:
        await chat.close()


async def stored(db: Database, *texts: str) -> None:
    """Wait until the chat's writer has stored lines with these texts."""
    async with asyncio.timeout(20):
        while True:
            found = await db.pool.fetchval(
                "SELECT count(*) FROM chat_messages WHERE text = ANY($1::text[])", list(texts)
            )
            if found == len(texts):
                return
            await asyncio.sleep(0.05)


async def creator_with_fan(client: Client, db: Database) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ann (a creator, stream ann-live, tier Gold) and Bob, who chats there, tips her twice
    and subscribes; Ann chats too."""
    ann = await user(client, "ann", creator=True)
    await create_stream(client, ann["token"], "ann-live", title="Ann's show")
    tier_id = await tier(client, ann["token"])
    bob = await user(client, "bob")
    await say(client, "ann-live", bob["token"], "bob says hi", "bob again")
    await say(client, "ann-live", ann["token"], "ann answers")
    await tip(client, bob["token"], "ann-live", "bob-1")
    await tip(client, bob["token"], "ann-live", "bob-2", 700)
    await subscribe(client, bob["token"], tier_id)
    await stored(db, "bob says hi", "bob again", "ann answers")
    return ann, bob
