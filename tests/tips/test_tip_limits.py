"""Velocity limits hold under concurrent tips (checked and stored atomically), and a retry of
a tip already made is answered whatever the limits or a ban would say of a new one."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from typing import Any

from livecore.config import Config
from livecore.store import Database
from livecore.store.ledger import Ledger
from tests.conftest import Client, MakeClient, bearer, register
from tests.support.stripe_peer import StripePeer
from tests.tips.people import creator_and_fan
from tests.tips.test_stripe_tips import stripe_config


async def _tip(client: Client, token: str, key: str, **body: Any) -> Any:
    payload = {"amount_minor": 500, "currency": "usd", **body}
    headers = bearer(token) | {"Idempotency-Key": key}
    return await client.post("/api/v1/streams/tipjar/tips", json=payload, headers=headers)


async def _burst(client: Client, token: str, n: int, prefix: str, **body: Any) -> Counter[int]:
    answers = await asyncio.gather(*(_tip(client, token, f"{prefix}{i}", **body) for i in range(n)))
    return Counter(a.status for a in answers)


async def test_concurrent_tips_never_pass_the_per_minute_limit(
    client: Client, db: Database
) -> None:
    _, fan = await creator_and_fan(client)  # 10 tips a minute (the default)
    assert await _burst(client, fan["token"], 30, "k") == {201: 10, 429: 20}
    assert await db.pool.fetchval("SELECT count(*) FROM tips") == 10
    assert (await Ledger(db).check()).ok


async def test_concurrent_tips_never_pass_the_daily_limit(
    make_client: MakeClient, config: Config, db: Database
) -> None:
    tips = replace(config.tips, viewer_tips_per_minute=1000, viewer_daily_minor=5000)
    client = await make_client(tips=tips)
    _, fan = await creator_and_fan(client)
    assert await _burst(client, fan["token"], 30, "k") == {201: 10, 429: 20}
    assert await db.pool.fetchval("SELECT sum(amount_minor) FROM tips") == 5000
    assert (await Ledger(db).check()).ok


async def test_concurrent_tips_never_pass_the_per_card_limit(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer, db: Database
) -> None:
    tips = replace(config.tips, card_tips_per_hour=3)
    client = await make_client(stripe=stripe_config(config, stripe_peer).stripe, tips=tips)
    _, fan = await creator_and_fan(client)
    other = await register(client, "other@example.com", display_name="Other")
    client.session.cookie_jar.clear()
    # One card from two accounts at once.
    bursts = await asyncio.gather(
        _burst(client, fan["token"], 6, "fan", payment_method="pm_card_visa"),
        _burst(client, other["token"], 6, "other", payment_method="pm_card_visa"),
    )
    assert sum(bursts, Counter()) == {201: 3, 429: 9}
    assert len(stripe_peer.payment_intents) == 3
    assert (await Ledger(db).check()).ok


async def test_a_retry_is_answered_when_a_new_tip_would_be_limited(
    make_client: MakeClient, config: Config
) -> None:
    client = await make_client(tips=replace(config.tips, viewer_tips_per_minute=2))
    _, fan = await creator_and_fan(client)
    first = await _tip(client, fan["token"], "k1")
    assert first.status == 201
    assert (await _tip(client, fan["token"], "k2")).status == 201
    assert (await _tip(client, fan["token"], "k3")).status == 429
    again = await _tip(client, fan["token"], "k1")
    assert again.status == 200, await again.text()
    assert (await again.json())["tip"] == (await first.json())["tip"]


async def test_a_retry_is_answered_after_the_viewer_is_banned(client: Client) -> None:
    creator, fan = await creator_and_fan(client)
    first = await _tip(client, fan["token"], "k1")
    assert first.status == 201
    ban = await client.post(
        "/api/v1/streams/tipjar/chat/bans", json={"user_id": fan["user"]["id"]},
        headers=bearer(creator["token"]),
    )  # fmt: skip
    assert ban.status == 201, await ban.text()
    assert (await _tip(client, fan["token"], "k2")).status == 403
    again = await _tip(client, fan["token"], "k1")
    assert again.status == 200, await again.text()
    assert (await again.json())["tip"]["id"] == (await first.json())["tip"]["id"]
