"""Charging a stored tip: through the processor (each request counted on the tip until
answered, and heard by the circuit breaker), reconciled with it when an earlier request may
have reached it, or moved to the fallback lane when it is down and nothing can have been
paid. A tip that may have been paid never moves to another lane.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from livecore.config import TipsConfig
from livecore.store.tips import Tip, Tips
from livecore.tips.breaker import CircuitBreaker
from livecore.tips.metrics import FailureReason
from livecore.tips.outcomes import (
    TipBusy,
    TipDeclined,
    TipRejected,
    TipResult,
    TipsUnavailable,
    TipUnconfirmed,
)
from livecore.tips.providers import (
    CardPayment,
    Payment,
    PaymentDeclined,
    PaymentProvider,
    ProcessorRefused,
    ProviderUnavailable,
)

logger = logging.getLogger(__name__)

# Record a successful payment (TipService.settle): the settled tip, None when it was not.
Settle = Callable[[int, str], Awaitable[Tip | None]]


class Charger:
    def __init__(
        self, tips: Tips, provider: PaymentProvider, settings: TipsConfig,
        breaker: CircuitBreaker | None, settle: Settle,
        failed: Callable[[FailureReason], None] | None = None,
    ) -> None:  # fmt: skip
        self._tips = tips
        self._provider = provider
        self._settings = settings
        self._breaker = breaker
        self.settle = settle
        self._failed = failed or _not_counted

    @property
    def test_mode(self) -> bool:
        return self._provider.test_mode

    async def charge(
        self, tip: Tip, destination: str | None, card: CardPayment | None, created: bool
    ) -> TipResult:
        if tip.provider_ref is not None or tip.open_calls:
            # An earlier request may have reached the processor: what it did comes first.
            payment = await self._reconcile(tip, destination, card)
            return await self._record(tip, payment, created)
        breaker = self._breaker
        if breaker is not None and not breaker.allow():
            return await self._fallback(tip, "circuit open")
        try:
            payment = await self._ask(tip, self._provider.create, destination, card)
        except PaymentDeclined as exc:
            # A decline is the card's answer, not an outage: it never falls back.
            raise await self._declined(tip, exc) from None
        except ProcessorRefused as exc:
            raise await self._rejected(tip, exc) from None
        except ProviderUnavailable as exc:
            if exc.unknown:
                # It may have reached the processor: never move it elsewhere. Ask again at
                # once; a retry with the same Idempotency-Key (or the processor's webhook)
                # settles it otherwise.
                logger.info("tip %d: reconciling after an unknown outcome", tip.id)
                payment = await self._reconcile(tip, destination, card)
            elif not exc.outage:
                # Rate limited: refused before anything was done, and no outage either.
                self._failed("busy")
                failed = await self._tips.fail(tip.id, exc.reason) or tip
                raise TipBusy(failed) from None
            else:
                return await self._fallback(tip, exc.reason)
        return await self._record(tip, payment, created)

    async def _reconcile(
        self, tip: Tip, destination: str | None, card: CardPayment | None
    ) -> Payment:
        """Ask the processor what became of a tip an earlier request may have paid, whatever
        the breaker says: the tip is never moved to another lane while that is unknown."""
        try:
            return await self._ask(tip, self._provider.find, destination, card)
        except PaymentDeclined as exc:
            raise await self._declined(tip, exc) from None
        except ProcessorRefused as exc:
            raise await self._rejected(tip, exc) from None
        except ProviderUnavailable as exc:
            logger.warning("tip %d: outcome unknown (%s)", tip.id, exc.reason)
            self._failed("unknown")
            raise TipUnconfirmed(tip) from None

    async def _declined(self, tip: Tip, exc: PaymentDeclined) -> TipDeclined:
        self._failed("declined")
        failed = await self._tips.fail(tip.id, exc.reason) or tip
        return TipDeclined(failed, exc.reason, exc.code)

    async def _rejected(self, tip: Tip, exc: ProcessorRefused) -> TipRejected:
        # Refused before anything was done: the same request would be refused again.
        self._failed("refused")
        failed = await self._tips.fail(tip.id, exc.reason) or tip
        return TipRejected(failed, exc.reason, exc.kind, exc.param)

    async def _record(self, tip: Tip, payment: Payment, created: bool) -> TipResult:
        if payment.status == "succeeded":
            tip = await self.settle(tip.id, payment.provider_ref) or tip
        elif payment.status == "failed":
            tip = await self._tips.fail(tip.id, "payment canceled") or tip
        else:
            await self._tips.attach(tip.id, payment.provider_ref)
        return TipResult(
            tip, payment, self.test_mode, "primary", self._provider.publishable_key, created
        )

    async def _ask(
        self, tip: Tip, call: Callable[[Tip, str | None, CardPayment | None], Awaitable[Payment]],
        destination: str | None, card: CardPayment | None,
    ) -> Payment:  # fmt: skip
        """Make one request about `tip` to the processor. Until it is answered it counts as
        an open call on the tip (one left open, its outcome unknown, keeps the tip from the
        fallback lane). The breaker hears what it showed: only an outage (transport failure,
        5xx) counts against it; any answer, a refusal or a decline included, shows the
        processor is up; a request ended by anything else (cancelled) frees a half-open
        trial."""
        breaker = self._breaker
        await self._tips.call_started(tip.id)
        up: bool | None = None
        answered = False
        try:
            payment = await call(tip, destination, card)
            up = answered = True
        except (PaymentDeclined, ProcessorRefused):
            up = answered = True
            raise
        except ProviderUnavailable as exc:
            up, answered = not exc.outage, not exc.unknown
            raise
        finally:
            if breaker is not None:
                if up is None:
                    breaker.released()
                elif up:
                    breaker.succeeded()
                else:
                    breaker.failed()
            if answered:
                await self._tips.call_answered(tip.id)
        return payment

    async def _fallback(self, tip: Tip, reason: str) -> TipResult:
        self._failed("outage")
        if self._settings.fallback == "none":
            raise TipsUnavailable(reason)
        moved = await self._tips.to_lane(tip.id, "manual")
        if moved is None:
            # Another request for the same key reached the processor meanwhile, or may have.
            current = await self._tips.get(tip.id) or tip
            if current.status == "pending" and current.provider_ref is None:
                raise TipUnconfirmed(current)
            return TipResult(current, None, self.test_mode, created=False)
        logger.warning("tip %d sent to the fallback lane: %s", tip.id, reason)
        return TipResult(moved, None, self.test_mode, "fallback")


def _not_counted(reason: FailureReason) -> None:
    """No metrics (tests that build a Charger alone)."""
