"""The money part of the app, in two entries of app.py's table of contents.

`setup_access` comes first: who a subscription lets in (`SubscriberAccess`), which playback
(streams/) and chat are built with. `setup` comes after the chat (a tip's message passes the
chat's rules, appkeys.CHAT_SCREEN): tips, subscriptions, the processor's webhooks and fees,
payouts, the renewals and retries in the background, and every money route. Stripe when a
secret key is configured; else the built-in test provider (test mode). Only app.py imports
this module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from livecore.appkeys import (
    BUS,
    CHAT_SCREEN,
    CONFIG,
    DB,
    METRICS,
    PAYOUTS,
    SUBSCRIBER_ACCESS,
    SUBSCRIPTIONS,
    TIPS,
    USERS,
    WEBHOOKS,
)
from livecore.store.chat import ChatStore
from livecore.store.creator_settings import CreatorSettings
from livecore.store.ledger import Ledger
from livecore.store.payouts import Payouts
from livecore.store.stripe_customers import StripeCustomers
from livecore.store.stripe_events import StripeEvents
from livecore.store.subscriptions import Subscriptions
from livecore.store.tips import Tips
from livecore.tips import (
    earnings_routes,
    figures_routes,
    payout_routes,
    routes,
    subscription_routes,
    webhook_routes,
)
from livecore.tips.breaker import CircuitBreaker
from livecore.tips.fees import FeeRecorder
from livecore.tips.metrics import TipsMetrics
from livecore.tips.payouts import PayoutService
from livecore.tips.providers import PaymentProvider, TestProvider
from livecore.tips.reversals import Reversals
from livecore.tips.service import TipService
from livecore.tips.stripe.gateway import StripeGateway, StripeProvider, StripeRail
from livecore.tips.subscription_access import SubscriberAccess
from livecore.tips.subscriptions import SubscriptionService
from livecore.tips.webhooks import WebhookHandler

# may_watch and may_chat ask on every playback ticket and chat line: a change made on this
# node is seen at once (forget), one made on another node within this long.
ACCESS_CACHE_S = 2.0


def setup_access(app: web.Application) -> None:
    """Add the subscriber check's context: before the streams' and the chat's."""
    app.cleanup_ctx.append(_access)


def setup(app: web.Application) -> None:
    """Add the money context (after the chat's) and the money routes."""
    app.cleanup_ctx.append(_money)
    routes.setup(app)
    earnings_routes.setup(app)
    payout_routes.setup(app)
    subscription_routes.setup(app)
    figures_routes.setup(app)
    webhook_routes.setup(app)


async def _access(app: web.Application) -> AsyncIterator[None]:
    app[SUBSCRIBER_ACCESS] = SubscriberAccess(Subscriptions(app[DB]), ACCESS_CACHE_S)
    yield


async def _money(app: web.Application) -> AsyncIterator[None]:
    """Tips, subscriptions, payouts and the ledger behind them."""
    config = app[CONFIG]
    db = app[DB]
    ledger = Ledger(db)
    creators = CreatorSettings(db)
    gateway = StripeGateway(config.stripe) if config.stripe.secret_key else None
    provider: PaymentProvider = StripeProvider(gateway) if gateway else TestProvider()
    breaker = CircuitBreaker(config.stripe.breaker_failures, config.stripe.breaker_reset_s)
    metrics = TipsMetrics(app[METRICS].registry, breaker)
    chat_store = ChatStore(db)

    async def blocked(stream_id: int, user_id: int) -> bool:
        bans = await chat_store.active_bans(stream_id)
        return any(ban.user_id == user_id and ban.until is None for ban in bans)

    tips = app[TIPS] = TipService(
        Tips(db), app[USERS], ledger, app[BUS], config.tips, provider,
        creator_settings=creators, customers=StripeCustomers(db), breaker=breaker,
        blocked=blocked, screen=app[CHAT_SCREEN], on_failure=metrics.failed,
    )  # fmt: skip
    subscriptions = app[SUBSCRIPTIONS] = SubscriptionService(
        db, Subscriptions(db), ledger, creators, config.tips, gateway,
        access=app[SUBSCRIBER_ACCESS],
    )  # fmt: skip
    reversals = Reversals(db, ledger)
    fees = FeeRecorder(db, reversals, gateway.payment_fee) if gateway else None
    app[WEBHOOKS] = WebhookHandler(
        StripeEvents(db), tips, reversals, subscriptions, fees.nudge if fees else None
    )
    # The processor renews real subscriptions, and its fees are read after each payment;
    # the test lane renews its own.
    task = asyncio.create_task(
        fees.run() if fees else subscriptions.run_renewals(60.0), name="money-background"
    )
    payouts = app[PAYOUTS] = PayoutService(
        db, ledger, Payouts(db), creators, config.tips, StripeRail(gateway) if gateway else None
    )
    # Stripe transfers that had no answer are sent again (returns at once without Stripe).
    payout_retries = asyncio.create_task(payouts.run_retries(60.0), name="payout-retries")
    yield
    payout_retries.cancel()
    await asyncio.gather(payout_retries, return_exceptions=True)
    # Tips settled just before shutdown still reach their rooms (the bus closes later).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await app[TIPS].announced()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if gateway is not None:
        await gateway.close()
