"""The webhook events livecore applies are ones Stripe sends, and the README's setup list
(what an operator enables on the endpoint) is exactly them."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from stripe.params import WebhookEndpointCreateParams

from livecore.appkeys import WEBHOOKS
from tests.conftest import Client

# Read at import: the tests run on the event loop, where file reads are refused.
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _stripe_event_types() -> set[str]:
    # Stripe's own library lists every event type an endpoint can be enabled for.
    enabled = WebhookEndpointCreateParams.__annotations__["enabled_events"]
    (literal,) = typing.get_args(enabled)
    return set(typing.get_args(literal))


def _readme_event_types(text: str) -> set[str]:
    start = text.index("2. **Webhooks.**")
    listed = text[start : text.index("and put its signing secret", start)]
    return set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", listed))


async def test_every_event_applied_is_one_stripe_sends(client: Client) -> None:
    assert client.app is not None
    applied = client.app[WEBHOOKS].event_types
    assert "invoice.paid" in applied
    assert applied <= _stripe_event_types()


async def test_the_readme_lists_exactly_the_events_applied(client: Client) -> None:
    assert client.app is not None
    assert _readme_event_types(README) == client.app[WEBHOOKS].event_types
