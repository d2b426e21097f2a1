"""What the premiere's people do besides watching: the creator's setup, the chat storm's
senders, the tip burst and the subscriptions. Runs in the orchestrator's event loop.

Tips go through livecore's API (a PaymentIntent at the Stripe-shaped peer), are paid at the
peer, and settle through its signed webhooks, some delivered twice and each retried on another
node until a node answers (as Stripe retries). Chat senders count a line as acked when the
server's `ack` names its nonce; only acked lines are owed to every viewer.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from loadtests.premiere.deployment import WEBHOOK_SECRET, Deployment
from loadtests.premiere.generator import LINE_PREFIX
from loadtests.premiere.scenario import Scenario
from tests.support.stripe_peer import event_body, sign_payload

PASSWORD = "premiere passphrase"


@dataclass
class Setup:
    slug: str
    stream_key: str
    creator_token: str
    tier_id: int | None
    senders: list[str]
    tippers: list[str]
    fans: list[str]


@dataclass
class Record:
    t0: float
    acked: dict[int, int] = field(default_factory=dict)  # seq -> send wall ns
    ack_ms: list[tuple[float, float]] = field(default_factory=list)  # (t, send to ack)
    sent: int = 0
    send_errors: dict[str, int] = field(default_factory=dict)
    tips: list[tuple[float, float, str]] = field(default_factory=list)  # (t, ms, outcome)
    tip_keys: list[str] = field(default_factory=list)
    subscriptions: list[tuple[float, str]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)

    def error(self, kind: str) -> None:
        self.errors.append((time.time() - self.t0, kind))


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body: dict[str, Any] = await resp.json()
    if resp.status >= 300:
        raise RuntimeError(f"{resp.method} {resp.url.path}: {resp.status} {body}")
    return body


async def register(http: aiohttp.ClientSession, base: str, name: str, creator: bool = False) -> str:
    body = {"email": f"{name}-{time.time_ns()}@example.com", "password": PASSWORD,
            "display_name": f"{name}-{time.time_ns() % 10**6}", "creator": creator}  # fmt: skip
    return str((await _json(await http.post(f"{base}/api/v1/auth/register", json=body)))["token"])


async def _accounts(http: aiohttp.ClientSession, base: str, prefix: str, n: int) -> list[str]:
    """n viewer accounts, a few at a time: sign-ups hash passwords (argon2), CPU work that
    must not crowd out the evening; they are made before it starts."""
    limit = asyncio.Semaphore(4)

    async def one(i: int) -> str:
        async with limit:
            return await register(http, base, f"{prefix}{i}")

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def set_up(http: aiohttp.ClientSession, base: str, scenario: Scenario) -> Setup:
    """The creator, the stream, a tier, and every account the evening uses."""
    creator = await register(http, base, "creator", creator=True)
    auth = {"Authorization": f"Bearer {creator}"}
    slug = f"premiere-{time.time_ns() % 10**9}"
    made = await http.post(f"{base}/api/v1/streams", json={"slug": slug}, headers=auth)
    stream = await _json(made)
    tier_id = None
    if scenario.subscriptions.count:
        tier = {"name": "Front row", "price_minor": 500, "currency": "usd"}
        made_tier = await _json(await http.post(f"{base}/api/v1/me/tiers", json=tier, headers=auth))
        tier_id = int(made_tier["tier"]["id"])
    senders = await _accounts(http, base, "sender", scenario.chat.senders)
    tippers = await _accounts(
        http, base, "tipper", scenario.tips.tippers if scenario.tips.tips else 0
    )
    fans = await _accounts(http, base, "fan", scenario.subscriptions.count)
    return Setup(slug, str(stream["stream_key"]), creator, tier_id, senders, tippers, fans)


def _alive(deployment: Deployment) -> list[str]:
    return [b for i, b in enumerate(deployment.bases) if deployment.alive(i)]


async def chat_storm(
    http: aiohttp.ClientSession,
    deployment: Deployment,
    scenario: Scenario,
    setup: Setup,
    rec: Record,
) -> None:
    storm = scenario.chat
    tokens = setup.senders
    sockets: list[aiohttp.ClientWebSocketResponse | None] = [None] * storm.senders
    readers: list[asyncio.Task[None]] = []

    async def connect(i: int) -> aiohttp.ClientWebSocketResponse | None:
        for base in random.sample(_alive(deployment), len(_alive(deployment))):
            try:
                ws = await http.ws_connect(
                    f"{base}/ws/{setup.slug}", headers={"Authorization": f"Bearer {tokens[i]}"}
                )
            except (aiohttp.ClientError, OSError, TimeoutError):
                continue
            readers.append(asyncio.create_task(read(ws)))
            return ws
        return None

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            for event in json.loads(msg.data):
                nonce = event.get("nonce")
                if event.get("type") == "ack" and nonce is not None:
                    seq = int(nonce)
                    sent = rec.acked[seq] = pending.pop(seq, 0)
                    now = time.time_ns()
                    rec.ack_ms.append((now / 1e9 - rec.t0, (now - sent) / 1e6))
                elif event.get("type") == "error":
                    code = str(event.get("code"))
                    rec.send_errors[code] = rec.send_errors.get(code, 0) + 1

    pending: dict[int, int] = {}
    await asyncio.sleep(max(0.0, rec.t0 + storm.at_s - time.time()))
    count = int(storm.rate * storm.seconds)
    start = time.monotonic()
    for seq in range(count):
        delay = start + seq / storm.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        i = seq % storm.senders
        ws = sockets[i]
        if ws is None or ws.closed:
            ws = sockets[i] = await connect(i)
            if ws is None:
                rec.error("chat sender: no node accepted the socket")
                continue
        now = time.time_ns()
        pending[seq] = now
        try:
            await ws.send_str(json.dumps({"type": "chat", "nonce": str(seq),
                                          "text": f"{LINE_PREFIX}{seq} {now}"}))  # fmt: skip
            rec.sent += 1
        except (ConnectionError, RuntimeError):
            sockets[i] = None
    await asyncio.sleep(3.0)  # the last acks
    for ws in sockets:
        if ws is not None:
            await ws.close()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def _deliver(
    http: aiohttp.ClientSession, deployment: Deployment, event: dict[str, Any], rec: Record
) -> str:
    """Deliver one webhook event, retried on any live node until one answers (bounded)."""
    body = event_body(event)
    for attempt in range(10):
        base = random.choice(_alive(deployment))
        headers = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET),
                   "Content-Type": "application/json"}  # fmt: skip
        try:
            async with http.post(f"{base}/webhooks/stripe", data=body, headers=headers) as resp:
                answer = await resp.json()
                if resp.status == 200:
                    return str(answer.get("outcome"))
                rec.error(f"webhook HTTP {resp.status}")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.2 * 2**attempt)
    return "undelivered"


async def tip_burst(
    http: aiohttp.ClientSession,
    deployment: Deployment,
    scenario: Scenario,
    setup: Setup,
    rec: Record,
) -> None:
    burst = scenario.tips
    if not burst.tips:
        return
    tokens = setup.tippers
    await asyncio.sleep(max(0.0, rec.t0 + burst.at_s - time.time()))
    limit = asyncio.Semaphore(burst.concurrency)
    peer = deployment.peer
    assert peer is not None

    async def tip(n: int) -> None:
        key = f"premiere-tip-{n}"
        rec.tip_keys.append(key)
        headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}", "Idempotency-Key": key}
        started = time.perf_counter()
        async with limit:
            outcome = "error"
            for _ in range(5):  # the same key again after a failure: made once
                base = random.choice(_alive(deployment))
                try:
                    url = f"{base}/api/v1/streams/{setup.slug}/tips"
                    tip = {"amount_minor": 500 + n % 500, "currency": "usd", "message": "premiere"}
                    async with http.post(url, headers=headers, json=tip) as resp:
                        body = await resp.json()
                        status = resp.status
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                    await asyncio.sleep(0.5)
                    continue
                if status >= 500 or status == 429:
                    rec.error(f"tip HTTP {status}")
                    await asyncio.sleep(0.5)
                    continue
                if status >= 300:
                    outcome = f"refused {status}"
                    break
                secret = str(body.get("client_secret") or "")
                if not secret:  # the manual lane (Stripe unreachable): settled by the creator
                    outcome = "manual"
                    break
                events = peer.succeed_payment_intent(secret.split("_secret_")[0])
                paid = next(e for e in events if e["type"] == "payment_intent.succeeded")
                outcome = await _deliver(http, deployment, paid, rec)
                if random.random() < burst.duplicates:
                    await _deliver(http, deployment, paid, rec)
                break
        rec.tips.append((time.time() - rec.t0, (time.perf_counter() - started) * 1000, outcome))

    await asyncio.gather(*(tip(n) for n in range(burst.tips)))


async def subscribe(
    http: aiohttp.ClientSession,
    deployment: Deployment,
    scenario: Scenario,
    setup: Setup,
    rec: Record,
) -> None:
    subs = scenario.subscriptions
    if not subs.count or setup.tier_id is None:
        return
    tokens = setup.fans
    await asyncio.sleep(max(0.0, rec.t0 + subs.at_s - time.time()))
    peer = deployment.peer
    assert peer is not None

    async def one(n: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[n]}", "Idempotency-Key": f"premiere-sub-{n}"}
        base = random.choice(_alive(deployment))
        try:
            async with http.post(
                f"{base}/api/v1/tiers/{setup.tier_id}/subscribe", headers=headers
            ) as r:
                body = await _json(r)
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
            rec.error(f"subscribe: {type(exc).__name__}")
            return
        outcomes = [await _deliver(http, deployment, e, rec)
                    for e in peer.complete_checkout(str(body["session_id"]))]  # fmt: skip
        rec.subscriptions.append((time.time() - rec.t0, ",".join(outcomes)))

    await asyncio.gather(*(one(n) for n in range(subs.count)))
