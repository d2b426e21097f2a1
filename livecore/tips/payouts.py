"""Creator payouts: what a creator may withdraw, the payout itself, and how it settles.

A payout takes the whole available amount in one currency off the creator's account and
puts it in transit, in one database transaction that first locks that account's row, so that
two requests at once can never pay the same money. Then, on the Stripe rail, the money is
transferred to the creator's connected account; without one (or without a rail) the payout
waits for a manual bank transfer that an admin marks paid or failed. A failed payout puts the
money back on the creator's account.

Ledger postings (their entries are in postings.py): "payout" (`payout:{id}`) moves the
amount from the creator's account into transit; "payout_paid" (`payout:{id}:paid`) from
transit to paid; "payout_failed" (`payout:{id}:failed`) from transit back to the creator.

Locks are always taken in one order, so that payouts never deadlock with each other: the
payout's row, then the creator's account, then the platform's accounts.

Imports only store, config and this package's providers and postings.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from livecore.config import TipsConfig
from livecore.store.creator_settings import CreatorMoney, CreatorSettings
from livecore.store.db import Database
from livecore.store.ledger import AccountKind, Ledger
from livecore.store.payouts import Payout, Payouts, PayoutStatus, Position
from livecore.store.users import User
from livecore.tips.postings import PostingKind, post, prepare
from livecore.tips.providers import PayoutFailed, ProviderUnavailable

logger = logging.getLogger(__name__)

# Money given back by a failed payout was available before: it is not held again.
NOT_HELD: Final = ["payout_failed"]
# Stripe keeps an idempotency key for at least 24 hours: a transfer is retried under its
# key only within that window, so that a retry can never pay twice. An older payout still
# unanswered is left to an admin, who checks the processor and marks it paid or failed.
RETRY_WINDOW: Final = timedelta(hours=23)
_LIST_LIMIT: Final = 200
# Currencies without a minor unit (Stripe's list); every other one is shown with 2 decimals.
_ZERO_DECIMAL: Final = frozenset(
    ("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
     "xaf", "xof", "xpf")
)  # fmt: skip


class PayoutRail(Protocol):
    """How a payout's money reaches the creator (a Stripe Connect transfer)."""

    @property
    def name(self) -> Literal["stripe", "manual"]: ...

    async def transfer(
        self, payout_id: int, amount_minor: int, currency: str, destination: str
    ) -> str:
        """Send the payout to `destination`; returns the processor's transfer id.

        The payout's id keys the request, so calling again for the same payout (a retry)
        never pays twice. Raises PayoutFailed when refused for good, ProviderUnavailable
        when the processor is down or the outcome is unknown (the payout is retried later).
        """
        ...


class PayoutInvalid(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k} {v}" for k, v in fields.items()))
        self.fields = fields


class PayoutRefused(Exception):
    """Nothing can be paid out now (nothing available, or payouts are held for a debt)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayoutNotFound(Exception):
    pass


class PayoutConflict(Exception):
    """The payout is settled otherwise already, or is not an admin's to settle."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PayoutSummary:
    """A creator's position in one currency, in minor units.

    `owed` is what the platform owes (negative: the creator owes the platform `debt`).
    Of what is owed, `held` is earned too recently to be paid out and `available` may be
    (held + available = owed whenever nothing is in debt).
    """

    currency: str
    owed_minor: int
    held_minor: int
    available_minor: int
    debt_minor: int


def summarize(position: Position) -> PayoutSummary:
    owed = -position.balance_minor
    held = min(position.recent_credits_minor, max(0, owed))
    return PayoutSummary(position.currency, owed, held, max(0, owed - held), max(0, -owed))


def amount_text(amount_minor: int, currency: str) -> str:
    """An amount for people to read: `12.50 USD`."""
    if currency in _ZERO_DECIMAL:
        return f"{amount_minor} {currency.upper()}"
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d} {currency.upper()}"


class PayoutService:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        payouts: Payouts,
        creator_settings: CreatorSettings,
        settings: TipsConfig,
        rail: PayoutRail | None,
        *,
        transfer_timeout_s: float = 30.0,
        retry_after_s: float = 120.0,
    ) -> None:
        """`rail` None: every payout waits for a manual transfer. A payout whose transfer
        had no answer is retried once untouched for `retry_after_s`, which must be longer
        than `transfer_timeout_s` so that two attempts never run at once."""
        self._db = db
        self._ledger = ledger
        self._payouts = payouts
        self._creators = creator_settings
        self._settings = settings
        self._rail = rail
        self._transfer_timeout_s = transfer_timeout_s
        self._retry_after = timedelta(seconds=retry_after_s)

    @property
    def _hold(self) -> timedelta:
        return timedelta(days=self._settings.payout_hold_days)

    async def summary(self, creator_id: int) -> dict[str, PayoutSummary]:
        """The creator's position in each currency they have an account in."""
        positions = await self._payouts.positions(creator_id, self._hold, NOT_HELD)
        return {p.currency: summarize(p) for p in positions}

    async def payouts_of(self, creator_id: int) -> list[Payout]:
        """The creator's payouts, newest first."""
        return await self._payouts.for_creator(creator_id, _LIST_LIMIT)

    async def listing(self, status: PayoutStatus | None) -> list[Payout]:
        """Every creator's payouts (in one status when given), newest first."""
        return await self._payouts.listing(status, _LIST_LIMIT)

    async def creator_money(self, user_id: int) -> CreatorMoney:
        return await self._creators.get(user_id)

    async def set_creator_money(
        self, user_id: int, platform_fee_bps: int | None, stripe_account_id: str | None
    ) -> CreatorMoney:
        """Set a creator's revenue share (None: the default) and Stripe connected account
        (None: payouts wait for a manual transfer).

        Raises PayoutConflict when the account would change while a Stripe payout is in
        transit: a retry is sent to the account as it is then, and must meet the first
        attempt's (the processor refuses one idempotency key with other parameters).
        """
        before = await self._creators.get(user_id)
        changes = before.stripe_account_id != stripe_account_id
        if changes and await self._payouts.count_in_transit(user_id, "stripe"):
            raise PayoutConflict(
                "this creator has a payout in transit through Stripe: its Stripe account can"
                " change once that payout is settled"
            )
        return await self._creators.put(user_id, platform_fee_bps, stripe_account_id)

    async def request(self, creator: User, currency: str) -> Payout:
        """Pay out everything available in `currency`.

        Raises PayoutInvalid (a currency not taken) or PayoutRefused (nothing available, or
        a debt). On the Stripe rail the transfer is made before this returns: the payout
        comes back paid, failed (the money back on the balance), or still in transit when
        the processor did not answer (retried by `retry_in_transit`).
        """
        if currency not in self._settings.currencies:
            raise PayoutInvalid(
                {"currency": "must be one of " + ", ".join(self._settings.currencies)}
            )
        money = await self._creators.get(creator.id)
        destination = money.stripe_account_id if self._rail is not None else None
        # Account ids first, outside the transaction (cached after their first use).
        in_transit = await self._ledger.account("payouts_in_transit", currency)
        async with self._db.transaction() as conn:
            position = await self._payouts.lock_position(
                creator.id, currency, self._hold, NOT_HELD, conn
            )
            if position is None:
                raise PayoutRefused(f"nothing to pay out: you have no {currency.upper()} earnings")
            summary = summarize(position)
            self._refuse_unless_available(summary)
            amount = summary.available_minor
            payout = await self._payouts.create(
                creator.id, amount, currency, "stripe" if destination else "manual", conn
            )
            known: dict[AccountKind, int] = {
                "creator": position.account_id,
                "payouts_in_transit": in_transit,
            }
            posting = await prepare(self._ledger, "payout", currency, creator.id, known=known)
            await post(self._ledger, posting, f"payout:{payout.id}", amount, conn=conn)
        logger.info(
            "payout %d: %d %s to creator %d (%s)",
            payout.id, amount, currency, creator.id, payout.rail,
        )  # fmt: skip
        if destination is None:
            return payout
        return await self._send(payout, destination)

    def _refuse_unless_available(self, summary: PayoutSummary) -> None:
        currency = summary.currency
        if summary.debt_minor:
            raise PayoutRefused(
                f"payouts are held: you owe {amount_text(summary.debt_minor, currency)}"
                " (refunds or chargebacks after an earlier payout); new earnings pay it first"
            )
        if summary.available_minor > 0:
            return
        if summary.held_minor:
            days = self._settings.payout_hold_days
            raise PayoutRefused(
                f"nothing is available yet: {amount_text(summary.held_minor, currency)} is"
                f" held for {days:g} days after it is earned"
            )
        raise PayoutRefused(f"nothing to pay out: your {currency.upper()} balance is 0")

    async def _send(self, payout: Payout, destination: str) -> Payout:
        """Transfer a payout in transit, and record the processor's answer if it gave one."""
        assert self._rail is not None  # only Stripe-rail payouts are sent, and only with one
        try:
            async with asyncio.timeout(self._transfer_timeout_s):
                ref = await self._rail.transfer(
                    payout.id, payout.amount_minor, payout.currency, destination
                )
        except PayoutFailed as exc:
            logger.warning("payout %d: refused by the processor: %s", payout.id, exc.reason)
            return (await self._settle(payout.id, "failed", None, exc.reason, by_admin=False))[0]
        except (ProviderUnavailable, TimeoutError) as exc:
            # It may have been made: only a retry with the same payout id (its key) tells.
            reason = exc.reason if isinstance(exc, ProviderUnavailable) else "timed out"
            logger.warning("payout %d: no answer (%s); it stays in transit", payout.id, reason)
            await self._payouts.touch(payout.id)
            return payout
        return (await self._settle(payout.id, "paid", ref, None, by_admin=False))[0]

    async def retry_in_transit(self, limit: int = 50) -> int:
        """Send again, one at a time, up to `limit` Stripe-rail payouts the processor has
        not answered for; returns how many were tried."""
        if self._rail is None:
            return 0
        tried: list[int] = []
        while len(tried) < limit:
            payout = await self._payouts.claim_unsent(
                "stripe", self._retry_after, RETRY_WINDOW, tried
            )
            if payout is None:
                break
            tried.append(payout.id)
            destination = (await self._creators.get(payout.creator_id)).stripe_account_id
            if destination is None:
                logger.error(
                    "payout %d: creator %d has no Stripe account any more; an admin must"
                    " settle it", payout.id, payout.creator_id,
                )  # fmt: skip
                continue
            logger.info("payout %d: sending again", payout.id)
            await self._send(payout, destination)
        return len(tried)

    async def run_retries(self, interval_s: float = 60.0, limit: int = 50) -> None:
        """Run retry_in_transit every interval_s until cancelled (returns at once without a
        rail, as nothing is ever sent)."""
        if self._rail is None:
            return
        while True:
            try:
                await self.retry_in_transit(limit)
            except Exception:
                logger.exception("payout retries failed; trying again in %.0f s", interval_s)
            await asyncio.sleep(interval_s)

    async def mark_paid(self, payout_id: int) -> tuple[Payout, bool]:
        """An admin saw the money arrive. Returns the payout and whether this changed it
        (marking it paid again changes nothing). Raises PayoutNotFound, PayoutConflict."""
        return await self._settle(payout_id, "paid", None, None, by_admin=True)

    async def mark_failed(self, payout_id: int, reason: str) -> tuple[Payout, bool]:
        """An admin saw the transfer fail: the money goes back on the creator's balance."""
        return await self._settle(payout_id, "failed", None, reason, by_admin=True)

    async def _settle(
        self, payout_id: int, status: Literal["paid", "failed"], provider_ref: str | None,
        failure: str | None, *, by_admin: bool,
    ) -> tuple[Payout, bool]:  # fmt: skip
        found = await self._payouts.get(payout_id)
        if found is None:
            raise PayoutNotFound(payout_id)
        currency, amount = found.currency, found.amount_minor
        kind: PostingKind = "payout_paid" if status == "paid" else "payout_failed"
        # Account ids first, outside the transaction (cached after their first use).
        posting = await prepare(self._ledger, kind, currency, found.creator_id)
        async with self._db.transaction() as conn:
            payout = await self._payouts.lock(payout_id, conn)
            if payout is None:
                raise PayoutNotFound(payout_id)
            if payout.status == status:
                return payout, False
            if payout.status != "in_transit":
                raise PayoutConflict(f"payout {payout_id} has {payout.status} already")
            if by_admin:
                self._check_admin_may_settle(payout)
            if status == "failed":
                await self._payouts.lock_account(posting.account("creator"), conn)
            payout = await self._payouts.finish(payout_id, status, provider_ref, failure, conn)
            await post(self._ledger, posting, f"payout:{payout_id}:{status}", amount, conn=conn)
        logger.info("payout %d: %s", payout_id, status)
        return payout, True

    def _check_admin_may_settle(self, payout: Payout) -> None:
        if payout.rail != "stripe":
            return
        # While its transfer may still be retried, only the processor's answer settles it.
        if datetime.now(UTC) - payout.created_at < RETRY_WINDOW:
            hours = RETRY_WINDOW.total_seconds() / 3600
            raise PayoutConflict(
                f"payout {payout.id} is being sent through Stripe and settles itself; an admin"
                f" may settle it once its retries stop ({hours:g} hours after it was made)"
            )
