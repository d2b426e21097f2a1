"""The test lane's renewals: without a processor, each subscription's month is renewed (and
posted) here when it ends, or the subscription ends if it was canceled at period end. The
processor renews its own.

Imports store and this package's access cache and invoice posting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from livecore.store.db import Database
from livecore.store.subscriptions import Subscriptions
from livecore.tips.subscription_access import SubscriberAccess
from livecore.tips.subscription_ledger import InvoicePosting

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Renewals:
    renewed: int
    ended: int


class TestLaneRenewals:
    def __init__(
        self, db: Database, store: Subscriptions, access: SubscriberAccess,
        invoices: InvoicePosting,
    ) -> None:  # fmt: skip
        self._db = db
        self._store = store
        self._access = access
        self._invoices = invoices

    async def renew_due(self, limit: int = 100) -> Renewals:
        """Renew (and post) test-lane subscriptions whose period has ended, and end those
        canceled at period end; at most `limit` of each. Safe on several nodes at once."""
        ended = await self._store.end_due_test(limit)
        renewed = 0
        for sub in await self._store.due_test(limit):
            posting = await self._invoices.prepare(sub.currency, sub.creator_id)
            bps = await self._invoices.fee_bps(sub.creator_id)
            async with self._db.transaction() as conn:
                renewal = await self._store.renew_test(sub.id, conn)
                if renewal is not None:
                    await self._invoices.post_test_period(conn, renewal, posting, bps)
                    renewed += 1
        if renewed or ended:
            self._access.forget()
            logger.info("test lane: %d subscriptions renewed, %d ended", renewed, ended)
        return Renewals(renewed, ended)

    async def run(self, interval_s: float = 60.0, limit: int = 100) -> None:
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
