"""Subscriptions: viewers subscribing to creators' monthly tiers through the processor's
checkout (or the built-in test lane), and cancelling at period end; the service the routes
and the webhooks use, made of one part per concern:

- tiers.py: the tiers creators offer;
- subscription_events.py: the processor's objects driving each subscription's state;
- subscription_ledger.py: every paid period recorded and posted with the platform's share;
- subscription_access.py: who all that lets in (cached briefly);
- renewals.py: the test lane's renewals.

Without a gateway the test lane runs: subscribing activates at once for a month and
`renew_due` renews or ends.

Imports store, config and this package's parts of subscriptions; never aiohttp.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Final

from livecore.config import TipsConfig
from livecore.store.creator_settings import CreatorSettings
from livecore.store.db import Database, UniqueViolation
from livecore.store.ledger import Ledger
from livecore.store.streams import Stream
from livecore.store.subscriptions import Subscription, Subscriptions
from livecore.store.tiers import Tier, Tiers
from livecore.store.users import User
from livecore.tips.providers import ProviderUnavailable
from livecore.tips.renewals import Renewals, TestLaneRenewals
from livecore.tips.stripe.objects import ProcessorInvoice, ProcessorSubscription
from livecore.tips.subscription_access import SubscriberAccess
from livecore.tips.subscription_events import ProcessorEvents
from livecore.tips.subscription_gateway import SubscriptionGateway, reconciled
from livecore.tips.subscription_ledger import InvoicePosting
from livecore.tips.tiers import NoSuchTier, TierCatalog, TierRetired

logger = logging.getLogger(__name__)

__all__ = [
    "AlreadySubscribed", "IdempotencyKeyRequired", "NoSuchSubscription", "Renewals",
    "SubscribeRefused", "Subscribed", "SubscriptionOver", "SubscriptionService",
]  # fmt: skip

_LIST_LIMIT: Final = 200


class SubscribeRefused(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k} {v}" for k, v in fields.items()))
        self.fields = fields


class AlreadySubscribed(Exception):
    """The viewer has a subscription to this tier that is not over."""


class IdempotencyKeyRequired(Exception):
    """Starting a checkout needs the client's Idempotency-Key."""


class NoSuchSubscription(Exception):
    pass


class SubscriptionOver(Exception):
    """The subscription has ended (or is not in a state that can be changed)."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    test_mode: bool
    subscription: Subscription | None = None  # the test lane: active at once
    checkout_url: str | None = None  # the processor: where the browser goes to pay
    session_id: str | None = None


class SubscriptionService:
    def __init__(
        self,
        db: Database,
        store: Subscriptions,
        ledger: Ledger,
        creator_settings: CreatorSettings,
        settings: TipsConfig,
        gateway: SubscriptionGateway | None,
        *,
        access: SubscriberAccess | None = None,
        access_cache_s: float = 2.0,
    ) -> None:
        self._db = db
        self._store = store
        self._creators = creator_settings
        self._gateway = gateway
        # may_watch and may_chat ask on every playback ticket and chat line; a change made on
        # this node is seen at once (forget), one made elsewhere within access_cache_s. The
        # app passes the one that playback and chat were built with.
        self._access = access or SubscriberAccess(store, access_cache_s)
        self._invoices = InvoicePosting(store, ledger, creator_settings, settings)
        self._tiers = TierCatalog(Tiers(db), settings, gateway)
        self._events = ProcessorEvents(db, store, self._access, self._invoices, settings)
        self._renewals = TestLaneRenewals(db, store, self._access, self._invoices)

    @property
    def test_mode(self) -> bool:
        """No gateway: the built-in test lane, where no money moves."""
        return self._gateway is None

    # -- tiers (tiers.py) -------------------------------------------------------------------

    async def create_tier(self, creator: User, name: str, price_minor: int, currency: str) -> Tier:
        return await self._tiers.create(creator, name, price_minor, currency)

    async def tiers(self, creator_id: int) -> list[Tier]:
        return await self._tiers.offered(creator_id)

    async def my_tiers(self, creator: User) -> list[Tier]:
        return await self._tiers.all_of(creator)

    async def rename_tier(self, creator: User, tier_id: int, name: str) -> Tier | None:
        return await self._tiers.rename(creator, tier_id, name)

    async def retire_tier(self, creator: User, tier_id: int) -> Tier | None:
        return await self._tiers.retire(creator, tier_id)

    # -- subscribing ----------------------------------------------------------------------------

    async def subscribe(
        self, viewer: User, tier_id: int, *, idempotency_key: str | None, success_url: str,
        cancel_url: str,
    ) -> Subscribed:  # fmt: skip
        """Subscribe: at once in the test lane; else a checkout at the processor, whose
        objects (webhooks) then make the subscription."""
        tier = await self._tiers.get(tier_id)
        if tier is None:
            raise NoSuchTier(tier_id)
        if tier.creator_id == viewer.id:
            raise SubscribeRefused({"tier": "is your own: you cannot subscribe to it"})
        if not tier.active:
            raise TierRetired(tier_id)
        if await self._store.open_for(viewer.id, tier.id) is not None:
            raise AlreadySubscribed(tier_id)
        if self._gateway is None:
            return await self._subscribe_test(viewer, tier)
        if idempotency_key is None:
            raise IdempotencyKeyRequired()
        gateway = self._gateway
        price_id = await self._tiers.price_of(tier)
        money = await self._creators.get(tier.creator_id)
        destination = money.stripe_account_id
        bps = self._invoices.bps_of(money)
        fee_percent = bps / 100 if destination else None
        # Scoped to the viewer and tier, so one client's key never meets another's request;
        # hashed, since the processor's keys are at most 255 characters.
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        key = f"livecore-sub-{viewer.id}-{tier.id}-{digest}"
        metadata = {"viewer_id": str(viewer.id), "tier_id": str(tier.id),
                    "creator_id": str(tier.creator_id), "fee_bps": str(bps)}  # fmt: skip
        session_id, url = await reconciled(
            f"tier {tier.id}: checkout",
            lambda: gateway.checkout(
                price_id=price_id,
                customer_email=viewer.email,
                metadata=metadata,
                application_fee_percent=fee_percent,
                destination=destination,
                success_url=success_url,
                cancel_url=cancel_url,
                idempotency_key=key,
            ),
        )
        return Subscribed(False, checkout_url=url, session_id=session_id)

    async def _subscribe_test(self, viewer: User, tier: Tier) -> Subscribed:
        posting = await self._invoices.prepare(tier.currency, tier.creator_id)
        bps = await self._invoices.fee_bps(tier.creator_id)
        try:
            async with self._db.transaction() as conn:
                first = await self._store.create_test(viewer.id, tier.id, tier.creator_id, conn)
                await self._invoices.post_test_period(conn, first, posting, bps)
        except UniqueViolation:
            raise AlreadySubscribed(tier.id) from None
        self.forget()
        logger.info("subscription %d (test lane) to tier %d", first.subscription.id, tier.id)
        return Subscribed(True, first.subscription)

    async def subscriptions_of(self, viewer: User) -> list[Subscription]:
        return await self._store.for_viewer(viewer.id, _LIST_LIMIT)

    async def set_cancel_at_period_end(
        self, viewer: User, subscription_id: int, cancel: bool
    ) -> Subscription:
        """Cancel at the period's end (the viewer keeps access until then), or resume.

        NoSuchSubscription unless it is the viewer's; SubscriptionOver once it has ended.
        """
        sub = await self._store.get(subscription_id)
        if sub is None or sub.viewer_id != viewer.id:
            raise NoSuchSubscription(subscription_id)
        if sub.status == "canceled":
            raise SubscriptionOver(subscription_id)
        if sub.provider == "test":
            changed = await self._store.set_test_cancel(sub.id, viewer.id, cancel)
            if changed is None:
                raise SubscriptionOver(subscription_id)
            self.forget()
            return changed
        if self._gateway is None or sub.provider_ref is None:
            raise ProviderUnavailable("the payment processor is not configured")
        gateway, ref = self._gateway, sub.provider_ref
        answer = await reconciled(
            f"subscription {sub.id}: set cancel_at_period_end",
            lambda: gateway.set_cancel_at_period_end(ref, cancel),
        )
        # The processor's answer is its state as of now (or as of the newest event stored, if
        # the processor's clock runs ahead of this node's).
        now = max(int(time.time()), int(sub.state_at.timestamp()))
        await self._events.apply_subscription(answer, now)
        return await self._store.get(sub.id) or sub

    # -- who it lets in (subscription_access.py) ------------------------------------------------

    async def has_access(self, viewer_id: int, creator_id: int) -> bool:
        return await self._access.has_access(viewer_id, creator_id)

    async def admits(self, user: User, stream: Stream) -> bool:
        return await self._access.admits(user, stream)

    def forget(self) -> None:
        self._access.forget()

    # -- the processor's events (subscription_events.py) ----------------------------------------

    # Each takes the processor's object as tips/stripe/objects.py reads it (None: unusable,
    # logged and ignored).

    async def apply_subscription(
        self, sub: ProcessorSubscription | None, event_created: int
    ) -> None:
        await self._events.apply_subscription(sub, event_created)

    async def apply_invoice_paid(self, inv: ProcessorInvoice | None, event_created: int) -> None:
        await self._events.apply_invoice_paid(inv, event_created)

    async def apply_invoice_failed(self, inv: ProcessorInvoice | None, event_created: int) -> None:
        await self._events.apply_invoice_failed(inv, event_created)

    # -- the test lane's renewals (renewals.py) -------------------------------------------------

    async def renew_due(self, limit: int = 100) -> Renewals:
        return await self._renewals.renew_due(limit)

    async def run_renewals(self, interval_s: float = 60.0, limit: int = 100) -> None:
        await self._renewals.run(interval_s, limit)
