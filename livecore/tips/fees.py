"""The processor's fee on each paid charge, posted after the payment, off the webhook's path.

Stripe states a charge's fee on its balance transaction, which is read with one more API
call. Doing that inside the webhook would make every payment wait for Stripe twice; instead
settled payments whose fee is not posted yet are found in the database and their fees read
and posted here: soon after each payment (the webhook nudges this loop), and again on every
pass until done, so nothing is lost to a crash, an outage or a charge still being settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from livecore.store.charges import Charges, FeeDue
from livecore.store.db import Database
from livecore.tips.providers import ProcessorRefused, ProviderUnavailable
from livecore.tips.reversals import Reversals

logger = logging.getLogger(__name__)

# (charge id, fee, currency) of a PaymentIntent's charge, or None when not known yet.
FeeLookup = Callable[[str], Awaitable[tuple[str, int, str] | None]]


class FeeRecorder:
    def __init__(
        self,
        db: Database,
        reversals: Reversals,
        lookup: FeeLookup,
        *,
        interval_s: float = 30.0,
        quiet_s: float = 0.5,
        batch: int = 200,
        concurrency: int = 4,
    ) -> None:
        self._charges = Charges(db)
        self._reversals = reversals
        self._lookup = lookup
        self._interval_s = interval_s
        self._quiet_s = quiet_s
        self._batch = batch
        self._limit = asyncio.Semaphore(concurrency)
        self._nudged = asyncio.Event()

    def nudge(self) -> None:
        """A payment was just settled: look for due fees soon."""
        self._nudged.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self._interval_s)
            await self._quiet()
            try:
                while await self.record_due() == self._batch:
                    pass
            except Exception:
                logger.exception("recording processor fees failed; retrying on the next pass")

    async def _quiet(self) -> None:
        """Wait until payments pause for a moment (or the interval passes): during a tip
        burst the webhooks get the CPU, and the fees follow right after."""
        deadline = asyncio.get_running_loop().time() + self._interval_s
        while self._nudged.is_set() and asyncio.get_running_loop().time() < deadline:
            self._nudged.clear()
            await asyncio.sleep(self._quiet_s)

    async def record_due(self) -> int:
        """Post the fees of due payments; returns how many payments were looked at."""
        due = await self._charges.fee_due(self._batch)
        await asyncio.gather(*(self._record(d) for d in due))
        return len(due)

    async def _record(self, due: FeeDue) -> None:
        payment = due.payment_ref
        async with self._limit:
            try:
                found = await self._lookup(payment)
            except ProviderUnavailable as exc:
                logger.info("fee of payment %s not read yet: %s", payment, exc.reason)
                return
            except ProcessorRefused as exc:
                # It will never be readable (e.g. unknown to this Stripe account): say so
                # once, and stop asking.
                logger.error("fee of payment %s cannot be read: %s", payment, exc.reason)
                await self._charges.fee_recorded(due, None)
                return
        if found is None:
            return  # Stripe has not settled the charge yet: the next pass looks again
        charge, fee, currency = found
        await self._reversals.fee(charge, fee, currency)
        await self._charges.fee_recorded(due, charge)
