"""Tips: validate and limit, create once per Idempotency-Key, charge through the processor or
its fallback lane, and when the payment succeeds post it to the ledger with the platform's
share and tell the room.

A tip is made in the database before the processor is called, and the processor's
idempotency key is the tip's id: a retried request, a timeout reconciled by retrying, or a
webhook arriving before the answer all meet the same one payment. Each request to the
processor is counted on the tip until answered; a tip with one left unanswered may have been
paid, so it is reconciled with the processor first and never moved to the fallback lane
(charging.py). What a request ends in, and its errors, are in outcomes.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from livecore.config import TipsConfig
from livecore.events.bus import EventBus
from livecore.events.types import TipSent
from livecore.store.creator_settings import CreatorMoney, CreatorSettings
from livecore.store.errors import StatementRefused
from livecore.store.ledger import Ledger
from livecore.store.streams import Stream
from livecore.store.stripe_customers import StripeCustomers
from livecore.store.tips import (
    LimitReached,
    Provider,
    Settled,
    Settlement,
    Tip,
    Tips,
    TipStatus,
    VelocityLimits,
)
from livecore.store.users import User, Users
from livecore.tips.batching import Backlog, Batcher
from livecore.tips.breaker import CircuitBreaker
from livecore.tips.charging import Charger
from livecore.tips.metrics import FailureReason
from livecore.tips.outcomes import (
    IdempotencyMismatch,
    Lane,
    TipForbidden,
    TipOptions,
    TipRefused,
    TipRejected,
    TipResult,
    TipsUnavailable,
    limited,
)
from livecore.tips.postings import PostingKind, prepare, split
from livecore.tips.providers import (
    CardPayment,
    PaymentProvider,
    ProcessorRefused,
    ProviderUnavailable,
    SavedCard,
)

logger = logging.getLogger(__name__)

# Clears a tip's message for the room (banned terms): the chat's rules (tips/setup.py).
MessageScreen = Callable[[int, str], Awaitable[str]]
# Is this viewer barred from this stream (banned from its chat)? Made by tips/setup.py.
Blocked = Callable[[int, int], Awaitable[bool]]


class TipService:
    def __init__(
        self,
        tips: Tips,
        users: Users,
        ledger: Ledger,
        bus: EventBus,
        settings: TipsConfig,
        provider: PaymentProvider,
        *,
        creator_settings: CreatorSettings,
        customers: StripeCustomers | None = None,
        breaker: CircuitBreaker | None = None,
        screen: MessageScreen | None = None,
        blocked: Blocked | None = None,
        on_failure: Callable[[FailureReason], None] | None = None,
    ) -> None:
        self._tips = tips
        self._users = users
        self._ledger = ledger
        self._bus = bus
        self._settings = settings
        self._provider = provider
        self._creators = creator_settings
        self._customers = customers
        self._screen = screen
        self._blocked = blocked
        self._settlements: Batcher[Settlement, Settled] = Batcher(self._settle_batch)
        self._reads: Batcher[int, Tip | None] = Batcher(tips.get_many)
        self._names: Batcher[int, User | None] = Batcher(users.get_many)
        # A settled tip's room event is sent after its caller (a webhook) is answered.
        self._announcements: Backlog[Tip] = Backlog(self._announce)
        self._charger = Charger(tips, provider, settings, breaker, self.settle, on_failure)

    @property
    def test_mode(self) -> bool:
        return self._provider.test_mode

    async def options(self, viewer: User | None, stream: Stream) -> TipOptions:
        """The limits `send` applies to this viewer, for a form to say before sending."""
        s = self._settings
        high, young_until, refusal = s.max_tip_minor, None, None
        if viewer is not None:
            lifts = viewer.created_at + timedelta(hours=s.new_account_hours)
            if lifts > datetime.now(UTC) and s.new_account_max_tip_minor < high:
                high, young_until = s.new_account_max_tip_minor, lifts
            if viewer.id == stream.owner_id:
                refusal = "you cannot tip your own stream"
            elif self._blocked is not None and await self._blocked(stream.id, viewer.id):
                refusal = "you are banned from this stream"
        return TipOptions(
            s.currencies, s.min_tip_minor, high, young_until, refusal,
            self.test_mode, self._provider.publishable_key,
        )  # fmt: skip

    async def send(
        self, viewer: User, stream: Stream, amount_minor: int, currency: str, message: str,
        idempotency_key: str, payment_method: str | None = None,
    ) -> TipResult:  # fmt: skip
        creator = await self._creators.get(stream.owner_id)
        # A retry is answered whatever the limits or a ban would now say of a new tip.
        found = await self._tips.by_key(viewer.id, idempotency_key)
        if found is None:
            await self._check(viewer, stream, amount_minor, currency)
            fingerprint, card = await self._card(viewer, payment_method)
            tip, created = await self._new_tip(
                viewer, stream, creator, amount_minor, currency, message, idempotency_key,
                fingerprint,
            )  # fmt: skip
        else:
            tip, created, card = found, False, None
        if not created:
            same = (tip.stream_id, tip.amount_minor, tip.currency, tip.message) == (
                stream.id, amount_minor, currency, message,
            )  # fmt: skip
            if not same:
                raise IdempotencyMismatch(idempotency_key)
            if tip.status != "pending" or tip.provider != self._provider.name:
                # Settled, failed, or moved to the fallback lane: answer what happened.
                lane: Lane = "fallback" if tip.provider == "manual" else "primary"
                return TipResult(tip, None, self.test_mode, lane, created=False)
            # Pending with the processor: asking again with the same key is safe (the
            # processor answers with the same payment), and gives the browser what it needs.
            if card is None and payment_method is not None:
                # As the first request sent it (its customer was kept before it was sent),
                # without asking anything new of the processor: a tip that may have been
                # paid is never refused here.
                known = await self._customers.get(viewer.id) if self._customers else None
                card = CardPayment(payment_method, known)
        return await self._charger.charge(tip, creator.stripe_account_id, card, created)

    async def _new_tip(
        self, viewer: User, stream: Stream, creator: CreatorMoney, amount_minor: int,
        currency: str, message: str, idempotency_key: str, card_fingerprint: str | None,
    ) -> tuple[Tip, bool]:  # fmt: skip
        """Store a new tip within the limits: (tip, True), or (the same key's tip, False)
        when a request with the same key stored it first."""
        s = self._settings
        bps = s.platform_fee_bps if creator.platform_fee_bps is None else creator.platform_fee_bps
        _, fee = split(amount_minor, bps)
        limits = VelocityLimits(
            s.viewer_tips_per_minute, s.viewer_daily_minor, s.card_tips_per_hour
        )
        try:
            return await self._tips.create(
                stream.id, viewer.id, stream.owner_id, amount_minor, currency, message,
                self._provider.name, idempotency_key, fee, limits=limits,
                card_fingerprint=card_fingerprint,
            )  # fmt: skip
        except LimitReached as exc:
            raise limited(exc.which, s) from None

    async def _check(self, viewer: User, stream: Stream, amount: int, currency: str) -> None:
        problems = {}
        s = self._settings
        if not s.min_tip_minor <= amount <= s.max_tip_minor:
            problems["amount_minor"] = f"must be between {s.min_tip_minor} and {s.max_tip_minor}"
        young = datetime.now(UTC) - viewer.created_at < timedelta(hours=s.new_account_hours)
        if young and amount > s.new_account_max_tip_minor:
            problems["amount_minor"] = (
                f"accounts younger than {s.new_account_hours:g} hours may tip at most "
                f"{s.new_account_max_tip_minor}"
            )
        if currency not in s.currencies:
            problems["currency"] = "must be one of " + ", ".join(s.currencies)
        if viewer.id == stream.owner_id:
            problems["stream"] = "you cannot tip your own stream"
        if problems:
            raise TipRefused(problems)
        if self._blocked is not None and await self._blocked(stream.id, viewer.id):
            raise TipForbidden("you are banned from this stream")

    async def _card(
        self, viewer: User, payment_method: str | None
    ) -> tuple[str | None, CardPayment | None]:
        """The card to charge at once, if the viewer named one, with its fingerprint (its
        per-card limit is checked when the tip is stored; unknown when the processor cannot
        say, and the charge itself then meets the outage or refusal).

        The card goes with the viewer's own customer at the processor (made the first time):
        a card saved to anyone else is refused here, and one saved to no one is saved to the
        viewer by its payment. TipRefused when the processor has no such card.
        """
        if payment_method is None:
            return None, None
        try:
            saved = await self._provider.card(payment_method)
        except ProviderUnavailable:
            saved = SavedCard(None, None)
        except ProcessorRefused as exc:
            if exc.kind == "invalid_request":  # no such payment method: the viewer's mistake
                raise TipRefused({"payment_method": f"was refused: {exc.reason}"}) from None
            saved = SavedCard(None, None)  # the platform's keys or permissions
        customer = await self._customer(viewer)
        if saved.customer is not None and saved.customer != customer:
            raise TipRefused({"payment_method": "is not one of your saved cards"})
        return saved.fingerprint, CardPayment(payment_method, customer)

    async def _customer(self, viewer: User) -> str | None:
        """The viewer's customer at the processor, made and kept the first time."""
        known = await self._customers.get(viewer.id) if self._customers else None
        if known is not None or self._customers is None:
            return known
        try:
            made = await self._provider.customer(viewer.id, viewer.email)
        except ProviderUnavailable as exc:
            raise TipsUnavailable(exc.reason) from None
        except ProcessorRefused as exc:
            raise TipRejected(None, exc.reason, exc.kind, exc.param) from None
        return await self._customers.keep(viewer.id, made) if made is not None else None

    async def record_card(self, provider_ref: str, fingerprint: str) -> None:
        await self._tips.record_card(None, provider_ref, fingerprint)

    async def settle(
        self, tip_id: int, provider_ref: str, charge_ref: str | None = None,
        known: Tip | None = None,
    ) -> Tip | None:  # fmt: skip
        """Record a successful payment: ledger posting and room event, each exactly once.

        Safe to repeat (a webhook delivered twice, a retry after a crash): the tip flips and
        its posting is made in one statement, and only the call that flipped it publishes
        the room event.
        """
        found = known if known is not None else await self._tips.get(tip_id)
        if found is None:
            return None
        return (await self._settle(found, provider_ref, charge_ref, None, None)).tip

    async def settle_event(
        self, tip: Tip, provider_ref: str, charge_ref: str | None, event_id: str,
        event_type: str,
    ) -> Settled:  # fmt: skip
        """`settle` for the processor's event reporting the payment, recorded as processed by
        the same statement when it is new (a new event's whole work is one round trip)."""
        return await self._settle(tip, provider_ref, charge_ref, event_id, event_type)

    async def _settle(
        self, found: Tip, provider_ref: str, charge_ref: str | None, event_id: str | None,
        event_type: str | None,
    ) -> Settled:  # fmt: skip
        if event_id is None and found.status not in ("pending", "failed"):
            return Settled(None, False)
        # A fallback-lane tip was paid to the creator directly: the creator owes the share.
        kind: PostingKind = "tip_manual" if found.provider == "manual" else "tip"
        # Account ids first (cached after their first use).
        posting = await prepare(self._ledger, kind, found.currency, found.creator_id)
        entries = posting.entries(found.amount_minor, found.platform_fee_minor)
        settled = await self._settlements.submit(
            Settlement(found.id, found.provider, provider_ref, charge_ref, kind,
                       entries if len(entries) > 1 else [], event_id, event_type)
        )  # fmt: skip
        tip = settled.tip
        if tip is not None:
            await self._announcements.add(tip)
            logger.info("tip %d settled: %d %s", tip.id, tip.amount_minor, tip.currency)
        return settled

    async def _settle_batch(self, batch: Sequence[Settlement]) -> list[Settled | Exception]:
        """Settle a batch in one statement. A tip twice in a batch (a webhook delivered twice
        at once) is settled by its first request; if the batch fails, each request is tried
        alone so that one bad payment cannot hold up the others."""
        first: dict[int, Settlement] = {}
        for item in batch:
            first.setdefault(item.tip_id, item)
        unique = list(first.values())
        results: dict[int, Settled | Exception] = {}
        try:
            results = dict(zip(first, await self._tips.settle_many(unique), strict=True))
        except StatementRefused:
            if len(unique) == 1:
                raise
            for item in unique:
                try:
                    (results[item.tip_id],) = await self._tips.settle_many([item])
                except StatementRefused as exc:
                    results[item.tip_id] = exc
        return [
            results[item.tip_id] if first[item.tip_id] is item else Settled(None, False)
            for item in batch
        ]

    async def announced(self) -> None:
        """Return once the room events of every tip settled so far are sent."""
        await self._announcements.join()

    async def _announce(self, tip: Tip) -> None:
        message = await self._screen(tip.stream_id, tip.message) if self._screen else tip.message
        viewer = await self._names.submit(tip.viewer_id)
        await self._bus.publish(
            tip.stream_id,
            TipSent(tip.id, tip.amount_minor, tip.currency, message, tip.provider == "test",
                    tip.viewer_id, viewer.display_name if viewer else ""),
        )  # fmt: skip

    async def get(self, tip_id: int) -> Tip | None:
        """A tip, read together with the others asked for at the same moment (a burst of
        payment webhooks reads its tips in a few statements)."""
        return await self._reads.submit(tip_id)

    async def fail(self, tip_id: int, reason: str) -> Tip | None:
        return await self._tips.fail(tip_id, reason)

    async def paid_by_processor(self, tip: Tip) -> Tip | None:
        """The tip the processor's payment is for, in the processor's lane: a tip in the
        fallback lane that the processor was paid for after all (a payment begun before it
        was moved, by a version that moved such tips) is brought back, so that it is posted
        as the processor's payment, never as an invoice the creator collects. None when it
        cannot be (settled in another lane already: the viewer paid twice)."""
        if tip.provider == self._provider.name:
            return tip
        back = await self._tips.reclaim(tip.id, self._provider.name)
        if back is None:
            logger.error(
                "tip %d was paid through the processor and settled in the %s lane: refund"
                " the viewer's second payment",
                tip.id,
                tip.provider,
            )
        else:
            logger.warning("tip %d brought back from the fallback lane: paid after all", tip.id)
        return back

    async def by_payment(self, provider_ref: str) -> Tip | None:
        return await self._tips.by_provider_ref(provider_ref)

    async def creator_tips(
        self, creator: User, status: TipStatus | None, provider: Provider | None, limit: int
    ) -> list[Tip]:
        return await self._tips.list_for_creator(creator.id, status, provider, limit)

    async def settle_manual(self, creator: User, tip_id: int, paid: bool) -> Tip | None:
        """The creator says a fallback-lane tip's invoice was paid (or will not be)."""
        tip = await self._tips.get(tip_id)
        if tip is None or tip.creator_id != creator.id or tip.provider != "manual":
            return None
        if paid:
            return await self.settle(tip.id, f"manual_{tip.id}") or await self._tips.get(tip.id)
        return await self._tips.fail(tip.id, "the creator marked the invoice unpaid") or tip

    async def owed(self, creator: User) -> dict[str, int]:
        """What the platform owes a creator, by currency (the creator account's credit)."""
        balances = await self._ledger.balances("creator", creator.id)
        return {currency: -balance for currency, balance in balances.items() if balance}
