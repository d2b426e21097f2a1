"""Subscriptions: creators' monthly tiers, viewers subscribing through the processor's checkout
(or the built-in test lane), the processor's objects driving each subscription's state, every
paid period posted to the ledger with the platform's share, and who all that lets in.

State follows the processor's objects, never the order its events arrive in: each change
carries its event time and an older one changes nothing, `canceled` is final, and a paid
invoice is recorded and posted once, in one database transaction. Without a gateway the test
lane runs: subscribing activates at once for a month and `renew_due` renews or ends.

Imports store, config and tips (the revenue split, the processor's errors); never aiohttp.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

from livecore.cache import TtlCache
from livecore.config import TipsConfig
from livecore.ids import parse_int
from livecore.store.creator_settings import CreatorMoney, CreatorSettings
from livecore.store.db import Connection, Database, UniqueViolation
from livecore.store.ledger import Ledger
from livecore.store.streams import Stream
from livecore.store.subscriptions import (
    PaidInvoice,
    ProcessorState,
    Renewal,
    Subscription,
    Subscriptions,
    SubscriptionStatus,
    Tier,
)
from livecore.store.users import User
from livecore.tips.postings import Posting, post, prepare, split
from livecore.tips.providers import ProviderUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Stripe's largest unit amount; far above any sensible monthly price.
MAX_PRICE_MINOR: Final = 99_999_999
TIER_NAME_MAX: Final = 60
_LIST_LIMIT: Final = 200
_STRIPE_ID: Final = re.compile(r"[\x21-\x7e]{1,255}")
_LAST_TIME: Final = 253402300799  # 9999-12-31T23:59:59Z, the last time datetime holds
_MAX_AMOUNT_MINOR: Final = 10**12  # far beyond any one invoice; sums stay within bigint
# The processor's subscription statuses, as livecore keeps them. A paused subscription lets
# nobody in but may resume, like an incomplete one; so does an unpaid one (Stripe has stopped
# retrying but keeps it, and makes it active again when the open invoice is paid).
_STATUSES: Final[dict[str, SubscriptionStatus]] = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "incomplete",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
    "incomplete": "incomplete",
    "paused": "incomplete",
}


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

    async def set_cancel_at_period_end(self, subscription_ref: str, cancel: bool) -> dict[str, Any]:
        """Set or clear cancel-at-period-end; returns the processor's subscription object."""
        ...


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


@dataclass(frozen=True, slots=True)
class Renewals:
    renewed: int
    ended: int


# -- the processor's objects, made into values at the edge ----------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose subscription it is, from the metadata the checkout put on it."""

    viewer_id: int
    tier_id: int
    creator_id: int
    # The platform's share agreed at checkout (basis points): Stripe keeps applying that
    # share (application_fee_percent) to every invoice, whatever an admin sets later.
    fee_bps: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessorSubscription:
    ref: str
    status: SubscriptionStatus | None  # None: a status livecore does not know
    raw_status: str
    cancel_at_period_end: bool
    period_end: datetime | None
    owner: Owner | None


@dataclass(frozen=True, slots=True)
class ProcessorInvoice:
    id: str
    subscription_ref: str | None
    amount_paid_minor: int
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    charge_ref: str | None
    payment_ref: str | None  # the PaymentIntent that paid it
    owner: Owner | None


def _time(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _LAST_TIME:
        return datetime.fromtimestamp(value, UTC)
    return None


def stripe_id(value: Any) -> str | None:
    """An expandable Stripe field: an id, or the expanded object with its id. Stripe's ids
    are short printable ASCII; anything else (NUL, 100 KiB) is no id and never reaches SQL."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(value: Any) -> dict[str, Any]:
    """The first element of a Stripe list object (`{"data": [...]}`)."""
    data = _dict(value).get("data")
    return _dict(data[0]) if isinstance(data, list) and data else {}


def _owner(metadata: Any) -> Owner | None:
    ids = [parse_int(_dict(metadata).get(k)) for k in ("viewer_id", "tier_id", "creator_id")]
    viewer, tier, creator = ids
    if viewer is None or tier is None or creator is None:
        return None
    fee_bps = parse_int(_dict(metadata).get("fee_bps"), maximum=10_000)
    return Owner(viewer, tier, creator, fee_bps)


def parse_subscription(obj: dict[str, Any]) -> ProcessorSubscription | None:
    """A Stripe subscription object as livecore needs it; None without an id."""
    ref = stripe_id(obj.get("id"))
    if ref is None:
        return None
    raw = str(obj.get("status") or "")
    # Current API versions keep the period on the items; older ones on the subscription.
    period_end = _time(_first(obj.get("items")).get("current_period_end"))
    if period_end is None:
        period_end = _time(obj.get("current_period_end"))
    return ProcessorSubscription(
        ref, _STATUSES.get(raw), raw, obj.get("cancel_at_period_end") is True, period_end,
        _owner(obj.get("metadata")),
    )  # fmt: skip


def parse_invoice(invoice: dict[str, Any]) -> ProcessorInvoice | None:
    """A Stripe invoice object as livecore needs it; None when it is unusable."""
    invoice_id = stripe_id(invoice.get("id"))
    currency = invoice.get("currency")
    amount = invoice.get("amount_paid", 0)
    if (
        invoice_id is None or len(invoice_id) > 255
        or not (isinstance(currency, str) and len(currency) == 3 and currency.isascii()
                and currency.isalpha())
        or not isinstance(amount, int) or isinstance(amount, bool)
        or not 0 <= amount <= _MAX_AMOUNT_MINOR
    ):  # fmt: skip
        return None
    # Current API versions name the subscription under parent.subscription_details; older
    # ones at the top level (with its metadata under subscription_details).
    details = _dict(_dict(invoice.get("parent")).get("subscription_details"))
    subscription_ref = stripe_id(details.get("subscription")) or stripe_id(
        invoice.get("subscription")
    )
    metadata = details.get("metadata") or _dict(invoice.get("subscription_details")).get("metadata")
    period = _dict(_first(invoice.get("lines")).get("period"))
    # Current API versions no longer carry `charge`; its payments (when included) may.
    charge_ref = stripe_id(invoice.get("charge")) or stripe_id(
        _dict(_first(invoice.get("payments")).get("payment")).get("charge")
    )
    return ProcessorInvoice(
        invoice_id, subscription_ref, amount, currency.lower(), _time(period.get("start")),
        _time(period.get("end")), charge_ref, invoice_payment(invoice), _owner(metadata),
    )  # fmt: skip


def invoice_payment(invoice: dict[str, Any]) -> str | None:
    """The PaymentIntent that paid an invoice: on current API versions under
    `payments.data[].payment.payment_intent` (invoices no longer name a charge); refunds and
    disputes of the charge name it too."""
    payments = _dict(invoice.get("payments")).get("data")
    for paid in payments if isinstance(payments, list) else []:
        payment = _dict(_dict(paid).get("payment"))
        if payment.get("type") == "payment_intent":
            return stripe_id(payment.get("payment_intent"))
    return stripe_id(invoice.get("payment_intent"))  # older API versions


def _event_time(event_created: int) -> datetime:
    return _time(event_created) or datetime.now(UTC)


# -- the service ------------------------------------------------------------------------------


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
        access_cache_s: float = 2.0,
    ) -> None:
        self._db = db
        self._store = store
        self._ledger = ledger
        self._creators = creator_settings
        self._settings = settings
        self._gateway = gateway
        # may_watch and may_chat ask on every playback ticket and chat line; a change made on
        # this node is seen at once (forget), one made elsewhere within access_cache_s.
        self._access: TtlCache[tuple[int, int], bool] | None = (
            TtlCache(access_cache_s, max_keys=50_000) if access_cache_s > 0 else None
        )

    @property
    def test_mode(self) -> bool:
        """No gateway: the built-in test lane, where no money moves."""
        return self._gateway is None

    # -- tiers ----------------------------------------------------------------------------------

    async def create_tier(self, creator: User, name: str, price_minor: int, currency: str) -> Tier:
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
        if await self._store.tier_name_taken(creator.id, name):
            raise TierExists(name)
        tier_id: int | None = None
        price_id: str | None = None
        if self._gateway is not None:
            gateway = self._gateway
            # The price is made for the tier's id (its idempotency key) before the tier is
            # stored: if the processor fails, nothing is.
            reserved = tier_id = await self._store.next_tier_id()
            price_id = await _reconciled(
                f"tier {reserved}: create price",
                lambda: gateway.create_price(reserved, name, price_minor, currency),
            )
        try:
            tier = await self._store.create_tier(
                creator.id, name, price_minor, currency, tier_id=tier_id, stripe_price_id=price_id
            )
        except UniqueViolation:
            raise TierExists(name) from None
        logger.info("tier %d created by user %d: %d %s", tier.id, creator.id, price_minor, currency)
        return tier

    async def tiers(self, creator_id: int) -> list[Tier]:
        """The tiers a creator offers now."""
        return await self._store.tiers(creator_id)

    async def my_tiers(self, creator: User) -> list[Tier]:
        """All of a creator's tiers, including those no longer offered."""
        return await self._store.tiers(creator.id, include_inactive=True)

    async def rename_tier(self, creator: User, tier_id: int, name: str) -> Tier | None:
        """Rename one of the creator's tiers (retired ones too); None when it is not theirs.
        With a gateway the processor's product is renamed first: if that fails, nothing is."""
        name = name.strip()
        if not 1 <= len(name) <= TIER_NAME_MAX:
            raise TierRefused({"name": f"must be 1 to {TIER_NAME_MAX} characters"})
        tier = await self._store.tier(tier_id)
        if tier is None or tier.creator_id != creator.id:
            return None
        if tier.name == name:
            return tier
        if await self._store.tier_name_taken(creator.id, name):
            raise TierExists(name)
        if self._gateway is not None and tier.stripe_price_id is not None:
            gateway, price_id = self._gateway, tier.stripe_price_id
            await _reconciled(
                f"tier {tier.id}: rename", lambda: gateway.rename_price(price_id, name)
            )
        try:
            renamed = await self._store.rename_tier(tier.id, creator.id, name)
        except UniqueViolation:
            raise TierExists(name) from None
        logger.info("tier %d renamed by user %d", tier.id, creator.id)
        return renamed

    async def retire_tier(self, creator: User, tier_id: int) -> Tier | None:
        """Stop offering a tier (its subscriptions continue); None when it is not theirs."""
        return await self._store.deactivate_tier(tier_id, creator.id)

    # -- subscribing ----------------------------------------------------------------------------

    async def subscribe(
        self, viewer: User, tier_id: int, *, idempotency_key: str | None, success_url: str,
        cancel_url: str,
    ) -> Subscribed:  # fmt: skip
        """Subscribe: at once in the test lane; else a checkout at the processor, whose
        objects (webhooks) then make the subscription."""
        tier = await self._store.tier(tier_id)
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
        price_id = tier.stripe_price_id
        if price_id is None:
            # Made while no processor was configured: its price is made on first use.
            price_id = await _reconciled(
                f"tier {tier.id}: create price",
                lambda: gateway.create_price(tier.id, tier.name, tier.price_minor, tier.currency),
            )
            await self._store.set_price_id(tier.id, price_id)
        money = await self._creators.get(tier.creator_id)
        destination = money.stripe_account_id
        bps = self._bps_of(money)
        fee_percent = bps / 100 if destination else None
        # Scoped to the viewer and tier, so one client's key never meets another's request;
        # hashed, since the processor's keys are at most 255 characters.
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        key = f"livecore-sub-{viewer.id}-{tier.id}-{digest}"
        metadata = {"viewer_id": str(viewer.id), "tier_id": str(tier.id),
                    "creator_id": str(tier.creator_id), "fee_bps": str(bps)}  # fmt: skip
        session_id, url = await _reconciled(
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
        accounts = await self._accounts(tier.currency, tier.creator_id)
        bps = await self._fee_bps(tier.creator_id)
        try:
            async with self._db.transaction() as conn:
                first = await self._store.create_test(viewer.id, tier.id, tier.creator_id, conn)
                await self._post_test_period(conn, first, accounts, bps)
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
        obj = await _reconciled(
            f"subscription {sub.id}: set cancel_at_period_end",
            lambda: gateway.set_cancel_at_period_end(ref, cancel),
        )
        # The processor's answer is its state as of now (or as of the newest event stored, if
        # the processor's clock runs ahead of this node's).
        now = max(int(time.time()), int(sub.state_at.timestamp()))
        await self.apply_subscription(obj, now)
        return await self._store.get(sub.id) or sub

    # -- who it lets in -------------------------------------------------------------------------

    async def has_access(self, viewer_id: int, creator_id: int) -> bool:
        """Whether a subscription of the viewer to any of the creator's tiers lets them in:
        active and paid up (a canceled-at-period-end one until then), or past due within
        its grace. Cached briefly (see access_cache_s)."""
        if self._access is None:
            return await self._store.has_access(viewer_id, creator_id)
        return await self._access.get(
            (viewer_id, creator_id), lambda: self._store.has_access(viewer_id, creator_id)
        )

    async def admits(self, user: User, stream: Stream) -> bool:
        """The extra check for may_watch and may_chat: a subscriber of the stream's owner."""
        return await self.has_access(user.id, stream.owner_id)

    def forget(self) -> None:
        """Subscriptions changed on this node: answer access questions afresh."""
        if self._access is not None:
            self._access.invalidate()

    # -- the processor's events -----------------------------------------------------------------

    async def apply_subscription(self, obj: dict[str, Any], event_created: int) -> None:
        """Apply a processor's subscription object (created, updated or deleted) as of the
        event's time: an older event than the state stored changes nothing, and an ended
        subscription stays ended. Objects livecore cannot place are logged and ignored."""
        sub = parse_subscription(obj)
        if sub is None:
            logger.warning("subscription object without an id: ignored")
            return
        if sub.status is None:
            logger.warning("subscription %s: unknown status %r, ignored", sub.ref, sub.raw_status)
            return
        owner = await self._owner_of(sub.ref, sub.owner, await self._store.by_ref(sub.ref))
        if owner is None:
            return
        at = _event_time(event_created)
        state = ProcessorState(
            sub.ref, owner.tier_id, owner.viewer_id, owner.creator_id, sub.status,
            sub.period_end, sub.cancel_at_period_end, self._grace_from(at), at,
        )  # fmt: skip
        changed, duplicate = await self._store.apply_processor(state)
        self._report(sub.ref, duplicate)
        if changed is None:
            logger.info("subscription %s: stored state is newer or final; unchanged", sub.ref)
            return
        self.forget()
        logger.info("subscription %d (%s) is %s", changed.id, sub.ref, changed.status)

    async def apply_invoice_paid(self, invoice: dict[str, Any], event_created: int) -> None:
        """A subscription's invoice was paid: record and post it once (nothing for a zero
        amount), and make the subscription active and paid up to the period's end, creating
        it from the invoice's metadata if its own event has not arrived yet."""
        inv = parse_invoice(invoice)
        if inv is None:
            logger.warning("invoice object without a usable id, amount or currency: ignored")
            return
        ref = inv.subscription_ref
        if ref is None:
            logger.info("invoice %s is not a subscription's: ignored", inv.id)
            return
        known = await self._store.by_ref(ref)
        owner = await self._owner_of(ref, inv.owner, known)
        if owner is None:
            return
        at = _event_time(event_created)
        accounts, bps = None, 0
        if inv.amount_paid_minor > 0:
            accounts = await self._accounts(inv.currency, owner.creator_id)
            agreed = inv.owner.fee_bps if inv.owner is not None else None
            bps = agreed if agreed is not None else await self._fee_bps(owner.creator_id)
        async with self._db.transaction() as conn:
            if known is None:
                state = ProcessorState(
                    ref, owner.tier_id, owner.viewer_id, owner.creator_id, "active",
                    inv.period_end, False, None, at,
                )  # fmt: skip
                # Made only if still missing: the subscription's own events, applied
                # meanwhile, know more than an invoice does.
                _, duplicate = await self._store.apply_processor(state, conn, create_only=True)
                self._report(ref, duplicate)
            sub = await self._store.lock_ref(ref, conn)
            if sub is None:  # cannot be: it was just stored, and rows are never deleted
                raise LookupError(ref)
            posted = False
            if accounts is not None:
                fee = split(inv.amount_paid_minor, bps)[1]
                paid = PaidInvoice(
                    inv.id, sub.id, sub.creator_id, inv.charge_ref, inv.payment_ref,
                    inv.amount_paid_minor, fee, inv.currency, inv.period_start, inv.period_end,
                )  # fmt: skip
                posted = await self._post(conn, paid, accounts)
            await self._store.mark_paid(sub.id, inv.period_end, at, conn)
        self.forget()
        logger.info(
            "invoice %s of subscription %d paid: %d %s%s", inv.id, sub.id,
            inv.amount_paid_minor, inv.currency, "" if posted else " (nothing posted)",
        )  # fmt: skip

    async def apply_invoice_failed(self, invoice: dict[str, Any], event_created: int) -> None:
        """A renewal's payment failed: the subscription is past due and keeps access for the
        grace period from its first failure. A subscription never paid, ended, or unknown
        here is not changed."""
        inv = parse_invoice(invoice)
        if inv is None or inv.subscription_ref is None:
            logger.info("failed invoice without a subscription: ignored")
            return
        at = _event_time(event_created)
        changed = await self._store.mark_past_due(inv.subscription_ref, at, self._grace_from(at))
        if changed is None:
            logger.info(
                "subscription %s: payment of invoice %s failed; state unchanged",
                inv.subscription_ref, inv.id,
            )  # fmt: skip
            return
        self.forget()
        logger.info(
            "subscription %d past due until %s", changed.id,
            changed.grace_until.isoformat() if changed.grace_until else "-",
        )  # fmt: skip

    async def _owner_of(
        self, ref: str, owner: Owner | None, known: Subscription | None
    ) -> Owner | None:
        """Whose subscription `ref` is: as stored, else as its metadata says (when that names
        a real viewer and a tier of the named creator); None (logged) otherwise."""
        if known is not None:
            return Owner(known.viewer_id, known.tier_id, known.creator_id)
        if owner is None:
            logger.warning("subscription %s: no livecore metadata, ignored", ref)
            return None
        if not await self._store.owner_known(owner.viewer_id, owner.tier_id, owner.creator_id):
            logger.warning(
                "subscription %s: metadata names an unknown viewer %d, tier %d or creator %d;"
                " ignored", ref, owner.viewer_id, owner.tier_id, owner.creator_id,
            )  # fmt: skip
            return None
        return owner

    @staticmethod
    def _report(ref: str, duplicate: bool) -> None:
        if duplicate:
            logger.error(
                "subscription %s is a second open subscription of its viewer to one tier: kept"
                " as canceled; cancel and refund it at the processor", ref,
            )  # fmt: skip

    def _grace_from(self, at: datetime) -> datetime:
        return at + timedelta(days=self._settings.past_due_grace_days)

    # -- the test lane's renewals ---------------------------------------------------------------

    async def renew_due(self, limit: int = 100) -> Renewals:
        """Renew (and post) test-lane subscriptions whose period has ended, and end those
        canceled at period end; at most `limit` of each. Safe on several nodes at once."""
        ended = await self._store.end_due_test(limit)
        renewed = 0
        for sub in await self._store.due_test(limit):
            accounts = await self._accounts(sub.currency, sub.creator_id)
            bps = await self._fee_bps(sub.creator_id)
            async with self._db.transaction() as conn:
                renewal = await self._store.renew_test(sub.id, conn)
                if renewal is not None:
                    await self._post_test_period(conn, renewal, accounts, bps)
                    renewed += 1
        if renewed or ended:
            self.forget()
            logger.info("test lane: %d subscriptions renewed, %d ended", renewed, ended)
        return Renewals(renewed, ended)

    async def run_renewals(self, interval_s: float = 60.0, limit: int = 100) -> None:
        """Run renew_due every interval_s (at once again while batches come back full);
        runs until cancelled."""
        while True:
            try:
                done = await self.renew_due(limit)
            except Exception:
                logger.exception("test-lane renewals failed; trying again in %.0f s", interval_s)
                done = Renewals(0, 0)
            if done.renewed < limit and done.ended < limit:
                await asyncio.sleep(interval_s)

    # -- posting --------------------------------------------------------------------------------

    async def _post_test_period(
        self, conn: Connection, renewal: Renewal, accounts: Posting, bps: int
    ) -> None:
        sub = renewal.subscription
        fee = split(sub.price_minor, bps)[1]
        paid = PaidInvoice(
            f"test_in_{sub.id}_{renewal.number}", sub.id, sub.creator_id, None, None,
            sub.price_minor, fee, sub.currency, renewal.period_start, sub.current_period_end,
        )  # fmt: skip
        await self._post(conn, paid, accounts)

    async def _post(self, conn: Connection, paid: PaidInvoice, accounts: Posting) -> bool:
        """Record a paid invoice and post it, in the caller's transaction; False (and nothing
        posted) when it was recorded before."""
        if not await self._store.record_invoice(paid, conn):
            return False
        await post(self._ledger, accounts, f"invoice:{paid.id}", paid.amount_minor,
                   paid.platform_fee_minor, conn)  # fmt: skip
        return True

    async def _accounts(self, currency: str, creator_id: int) -> Posting:
        # Made (and cached) before a transaction, which then holds its connection only for
        # the posting itself.
        return await prepare(self._ledger, "subscription", currency, creator_id)

    async def _fee_bps(self, creator_id: int) -> int:
        return self._bps_of(await self._creators.get(creator_id))

    def _bps_of(self, money: CreatorMoney) -> int:
        """The platform's share: the creator's own rate when set, else the platform's."""
        if money.platform_fee_bps is not None:
            return money.platform_fee_bps
        return self._settings.platform_fee_bps


async def _reconciled(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Make an idempotent processor call, asking once more at once when its outcome is
    unknown (the same request returns what the first one made, or makes it once)."""
    try:
        return await call()
    except ProviderUnavailable as exc:
        if not exc.unknown:
            raise
    logger.info("%s: reconciling after an unknown outcome", what)
    return await call()
