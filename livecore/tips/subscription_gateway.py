"""The processor's side of subscriptions, as tiers and checkout use it (tips/stripe/ has the
Stripe implementation), and the one way to call it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from livecore.tips.providers import ProviderUnavailable
from livecore.tips.stripe.objects import ProcessorSubscription

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SubscriptionGateway(Protocol):
    """The processor's side of subscriptions (Stripe Checkout in subscription mode).

    Every method raises ProviderUnavailable when the processor cannot be reached (with
    `unknown` when the request may have been applied) and may raise the processor's own
    refusal for requests it will never accept.
    """

    async def create_price(self, tier_id: int, name: str, amount_minor: int, currency: str) -> str:
        """A monthly price for the tier; returns the processor's price id (idempotent per
        tier id)."""
        ...

    async def rename_price(self, price_id: str, name: str) -> None:
        """Give the product the price is of (what checkout pages and invoices show) a new name;
        naming it again is harmless."""
        ...

    async def checkout(
        self, *, price_id: str, customer_email: str, metadata: dict[str, str],
        application_fee_percent: float | None, destination: str | None, success_url: str,
        cancel_url: str, idempotency_key: str,
    ) -> tuple[str, str]:  # fmt: skip
        """Start a checkout; returns (its session id, the URL the browser goes to). Every
        subscription and invoice object it leads to carries `metadata`."""
        ...

    async def set_cancel_at_period_end(
        self, subscription_ref: str, cancel: bool
    ) -> ProcessorSubscription | None:
        """Set or clear cancel-at-period-end; returns the processor's subscription as it now
        is, read as a webhook's is (None when its answer names no subscription id)."""
        ...


async def reconciled(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Make an idempotent processor call, asking once more at once when its outcome is
    unknown (the same request returns what the first one made, or makes it once)."""
    try:
        return await call()
    except ProviderUnavailable as exc:
        if not exc.unknown:
            raise
    logger.info("%s: reconciling after an unknown outcome", what)
    return await call()
