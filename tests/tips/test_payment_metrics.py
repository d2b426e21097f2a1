"""Tips whose payment does not go through are counted by reason, and the processor's circuit
is a gauge: what the deployment's alerts on payment failures and the open circuit read."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from livecore.config import Config
from tests.conftest import Client, MakeClient, bearer
from tests.support.stripe_peer import StripePeer
from tests.tips.people import creator_and_fan
from tests.tips.test_stripe_tips import stripe_config


async def _tip(client: Client, token: str, key: str, **body: Any) -> Any:
    payload = {"amount_minor": 1000, "currency": "usd", **body}
    headers = bearer(token) | {"Idempotency-Key": key}
    return await client.post("/api/v1/streams/tipjar/tips", json=payload, headers=headers)


async def _samples(client: Client) -> dict[tuple[str, str], float]:
    text = await (await client.get("/metrics")).text()
    return {
        (s.name, s.labels.get("reason", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("livecore_tips_") and not s.name.endswith("_created")
    }


async def test_payment_failures_by_reason_and_the_open_circuit_are_metrics(
    make_client: MakeClient, config: Config, stripe_peer: StripePeer
) -> None:
    settings = stripe_config(config, stripe_peer, breaker_failures=2, breaker_reset_s=3600.0)
    client = await make_client(stripe=settings.stripe)
    _, fan = await creator_and_fan(client)
    failures = "livecore_tips_payment_failures_total"
    before = await _samples(client)
    assert {reason for name, reason in before if name == failures} == {
        "declined", "refused", "busy", "outage", "unknown",
    }  # fmt: skip
    assert set(before.values()) == {0.0}
    assert before[("livecore_tips_processor_circuit_open", "")] == 0

    declined = await _tip(client, fan["token"], "k1", payment_method="pm_card_chargeDeclined")
    assert declined.status == 402, await declined.text()
    await stripe_peer.stop_listening()
    for key in ("k2", "k3"):  # Stripe unreachable twice: the fallback lane, then the circuit
        assert (await _tip(client, fan["token"], key)).status == 202
    after = await _samples(client)
    assert after[(failures, "declined")] == 1
    assert after[(failures, "outage")] == 2
    assert after[("livecore_tips_processor_circuit_open", "")] == 1
    assert (await _tip(client, fan["token"], "k4")).status == 202  # the circuit is open
    assert (await _samples(client))[(failures, "outage")] == 3
    await stripe_peer.start_listening()
