"""Creators' monthly tiers: offered, renamed and retired. With a processor, a tier's price (and
its product's name) is made there first: if the processor fails, nothing is stored.

Imports store, config and this package's subscription gateway.
"""

from __future__ import annotations

import logging
from typing import Final

from livecore.config import TipsConfig
from livecore.store.db import UniqueViolation
from livecore.store.tiers import Tier, Tiers
from livecore.store.users import User
from livecore.tips.subscription_gateway import SubscriptionGateway, reconciled

logger = logging.getLogger(__name__)

# Stripe's largest unit amount; far above any sensible monthly price.
MAX_PRICE_MINOR: Final = 99_999_999
TIER_NAME_MAX: Final = 60


class TierForbidden(Exception):
    """Only creators (and admins) offer subscriptions."""


class TierRefused(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k} {v}" for k, v in fields.items()))
        self.fields = fields


class TierExists(Exception):
    """The creator has a tier of that name already (perhaps no longer offered)."""


class NoSuchTier(Exception):
    pass


class TierRetired(Exception):
    """The tier is no longer offered to new subscribers."""


class TierCatalog:
    def __init__(
        self, store: Tiers, settings: TipsConfig, gateway: SubscriptionGateway | None
    ) -> None:
        self._store = store
        self._settings = settings
        self._gateway = gateway

    async def create(self, creator: User, name: str, price_minor: int, currency: str) -> Tier:
        """Offer a monthly tier. With a gateway its price is made at the processor first:
        ProviderUnavailable (or the processor's refusal) then stores nothing."""
        if creator.role not in ("creator", "admin"):
            raise TierForbidden("only creators can offer subscriptions")
        name = name.strip()
        problems = {}
        if not 1 <= len(name) <= TIER_NAME_MAX:
            problems["name"] = f"must be 1 to {TIER_NAME_MAX} characters"
        if not 1 <= price_minor <= MAX_PRICE_MINOR:
            problems["price_minor"] = f"must be between 1 and {MAX_PRICE_MINOR}"
        if currency not in self._settings.currencies:
            problems["currency"] = "must be one of " + ", ".join(self._settings.currencies)
        if problems:
            raise TierRefused(problems)
        if await self._store.name_taken(creator.id, name):
            raise TierExists(name)
        tier_id: int | None = None
        price_id: str | None = None
        if self._gateway is not None:
            gateway = self._gateway
            # The price is made for the tier's id (its idempotency key) before the tier is
            # stored: if the processor fails, nothing is.
            reserved = tier_id = await self._store.next_id()
            price_id = await reconciled(
                f"tier {reserved}: create price",
                lambda: gateway.create_price(reserved, name, price_minor, currency),
            )
        try:
            tier = await self._store.create(
                creator.id, name, price_minor, currency, tier_id=tier_id, stripe_price_id=price_id
            )
        except UniqueViolation:
            raise TierExists(name) from None
        logger.info("tier %d created by user %d: %d %s", tier.id, creator.id, price_minor, currency)
        return tier

    async def get(self, tier_id: int) -> Tier | None:
        return await self._store.get(tier_id)

    async def offered(self, creator_id: int) -> list[Tier]:
        """The tiers a creator offers now."""
        return await self._store.of_creator(creator_id)

    async def all_of(self, creator: User) -> list[Tier]:
        """All of a creator's tiers, including those no longer offered."""
        return await self._store.of_creator(creator.id, include_inactive=True)

    async def rename(self, creator: User, tier_id: int, name: str) -> Tier | None:
        """Rename one of the creator's tiers (retired ones too); None when it is not theirs.
        With a gateway the processor's product is renamed first: if that fails, nothing is."""
        name = name.strip()
        if not 1 <= len(name) <= TIER_NAME_MAX:
            raise TierRefused({"name": f"must be 1 to {TIER_NAME_MAX} characters"})
        tier = await self._store.get(tier_id)
        if tier is None or tier.creator_id != creator.id:
            return None
        if tier.name == name:
            return tier
        if await self._store.name_taken(creator.id, name):
            raise TierExists(name)
        if self._gateway is not None and tier.stripe_price_id is not None:
            gateway, price_id = self._gateway, tier.stripe_price_id
            await reconciled(
                f"tier {tier.id}: rename", lambda: gateway.rename_price(price_id, name)
            )
        try:
            renamed = await self._store.rename(tier.id, creator.id, name)
        except UniqueViolation:
            raise TierExists(name) from None
        logger.info("tier %d renamed by user %d", tier.id, creator.id)
        return renamed

    async def retire(self, creator: User, tier_id: int) -> Tier | None:
        """Stop offering a tier (its subscriptions continue); None when it is not theirs."""
        return await self._store.deactivate(tier_id, creator.id)

    async def price_of(self, tier: Tier) -> str:
        """The tier's price at the processor: one made while no processor was configured is
        made on first use."""
        if tier.stripe_price_id is not None:
            return tier.stripe_price_id
        assert self._gateway is not None  # asked only with a processor
        gateway = self._gateway
        price_id = await reconciled(
            f"tier {tier.id}: create price",
            lambda: gateway.create_price(tier.id, tier.name, tier.price_minor, tier.currency),
        )
        await self._store.set_price_id(tier.id, price_id)
        return price_id
