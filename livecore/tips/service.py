"""Tips: validate, create once per Idempotency-Key, charge through the provider, and when the
payment succeeds post it to the ledger with the platform's share and tell the room."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from livecore.config import TipsConfig
from livecore.events.bus import EventBus
from livecore.store.ledger import Entry, Ledger
from livecore.store.streams import Stream
from livecore.store.tips import Tip, Tips
from livecore.store.users import User, Users
from livecore.tips.providers import Payment, PaymentProvider

logger = logging.getLogger(__name__)

# Clears a tip's message for the room (banned terms); wired to chat by app.py.
MessageScreen = Callable[[int, str], Awaitable[str]]


class TipRefused(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k} {v}" for k, v in fields.items()))
        self.fields = fields


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was used before for a different tip."""


@dataclass(frozen=True, slots=True)
class TipResult:
    tip: Tip
    payment: Payment | None  # None: an earlier request with the same key made this tip
    test_mode: bool


def split(amount_minor: int, fee_bps: int) -> tuple[int, int]:
    """(creator's share, platform's share) in minor units; rounding favours the creator."""
    fee = amount_minor * fee_bps // 10_000
    return amount_minor - fee, fee


class TipService:
    def __init__(
        self,
        tips: Tips,
        users: Users,
        ledger: Ledger,
        bus: EventBus,
        settings: TipsConfig,
        provider: PaymentProvider,
        screen: MessageScreen | None = None,
    ) -> None:
        self._tips = tips
        self._users = users
        self._ledger = ledger
        self._bus = bus
        self._settings = settings
        self._provider = provider
        self._screen = screen

    async def send(
        self, viewer: User, stream: Stream, amount_minor: int, currency: str, message: str,
        idempotency_key: str,
    ) -> TipResult:  # fmt: skip
        problems = {}
        s = self._settings
        if not s.min_tip_minor <= amount_minor <= s.max_tip_minor:
            problems["amount_minor"] = f"must be between {s.min_tip_minor} and {s.max_tip_minor}"
        if currency not in s.currencies:
            problems["currency"] = "must be one of " + ", ".join(s.currencies)
        if viewer.id == stream.owner_id:
            problems["stream"] = "you cannot tip your own stream"
        if problems:
            raise TipRefused(problems)
        tip, created = await self._tips.create(
            stream.id, viewer.id, stream.owner_id, amount_minor, currency, message,
            self._provider.name, idempotency_key,
        )  # fmt: skip
        if not created:
            same = (tip.stream_id, tip.amount_minor, tip.currency, tip.message) == (
                stream.id, amount_minor, currency, message,
            )  # fmt: skip
            if not same:
                raise IdempotencyMismatch(idempotency_key)
            # A retry: the first request charged (or is charging); never charge again.
            return TipResult(tip, None, self._provider.test_mode)
        payment = await self._provider.create(tip)
        if payment.status == "succeeded":
            tip = await self.settle(tip.id, payment.provider_ref) or tip
        return TipResult(tip, payment, self._provider.test_mode)

    async def settle(self, tip_id: int, provider_ref: str) -> Tip | None:
        """Record a successful payment: ledger posting and room event, each exactly once.

        Safe to repeat (a webhook delivered twice, a retry after a crash): the ledger posts
        the tip's reference once, and only the call that flips the tip publishes its event.
        """
        tip = await self._tips.get(tip_id)
        if tip is None:
            return None
        creator_share, platform_share = split(tip.amount_minor, self._settings.platform_fee_bps)
        clearing = await self._ledger.account("processor_clearing", tip.currency)
        creator = await self._ledger.account("creator", tip.currency, tip.creator_id)
        entries = [Entry(clearing, tip.amount_minor, tip.currency),
                   Entry(creator, -creator_share, tip.currency)]  # fmt: skip
        if platform_share:
            revenue = await self._ledger.account("platform_revenue", tip.currency)
            entries.append(Entry(revenue, -platform_share, tip.currency))
        await self._ledger.post(f"tip:{tip.id}", "tip", entries)
        settled = await self._tips.settle(tip.id, provider_ref)
        if settled is None:
            return None
        message = await self._screen(tip.stream_id, tip.message) if self._screen else tip.message
        viewer = await self._users.get(tip.viewer_id)
        await self._bus.publish(
            tip.stream_id,
            "tip",
            {"tip_id": tip.id, "amount_minor": tip.amount_minor, "currency": tip.currency,
             "message": message,
             "user": {"id": tip.viewer_id, "name": viewer.display_name if viewer else ""}},
        )  # fmt: skip
        logger.info("tip %d settled: %d %s", tip.id, tip.amount_minor, tip.currency)
        return settled

    async def owed(self, creator: User) -> dict[str, int]:
        """What the platform owes a creator, by currency (the creator account's credit)."""
        balances = await self._ledger.balances("creator", creator.id)
        return {currency: -balance for currency, balance in balances.items() if balance}
