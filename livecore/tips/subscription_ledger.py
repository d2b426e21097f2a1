"""A subscription's paid period in the ledger: recorded as an invoice and posted once, with the
platform's share (the creator's own rate when set, else the platform's; for the processor's
invoices, the share agreed at checkout).

Imports store, config and this package's postings.
"""

from __future__ import annotations

from livecore.config import TipsConfig
from livecore.store.creator_settings import CreatorMoney, CreatorSettings
from livecore.store.db import Connection
from livecore.store.ledger import Ledger
from livecore.store.subscriptions import PaidInvoice, Renewal, Subscriptions
from livecore.tips.postings import Posting, post, prepare, split


class InvoicePosting:
    def __init__(
        self,
        store: Subscriptions,
        ledger: Ledger,
        creator_settings: CreatorSettings,
        settings: TipsConfig,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._creators = creator_settings
        self._settings = settings

    async def prepare(self, currency: str, creator_id: int) -> Posting:
        # Made (and cached) before a transaction, which then holds its connection only for
        # the posting itself.
        return await prepare(self._ledger, "subscription", currency, creator_id)

    async def post(self, conn: Connection, paid: PaidInvoice, posting: Posting) -> bool:
        """Record a paid invoice and post it, in the caller's transaction; False (and nothing
        posted) when it was recorded before."""
        if not await self._store.record_invoice(paid, conn):
            return False
        await post(self._ledger, posting, f"invoice:{paid.id}", paid.amount_minor,
                   paid.platform_fee_minor, conn)  # fmt: skip
        return True

    async def post_test_period(
        self, conn: Connection, renewal: Renewal, posting: Posting, bps: int
    ) -> None:
        """A test-lane period, posted as the processor's invoice would be."""
        sub = renewal.subscription
        fee = split(sub.price_minor, bps)[1]
        paid = PaidInvoice(
            f"test_in_{sub.id}_{renewal.number}", sub.id, sub.creator_id, None, None,
            sub.price_minor, fee, sub.currency, renewal.period_start, sub.current_period_end,
        )  # fmt: skip
        await self.post(conn, paid, posting)

    async def fee_bps(self, creator_id: int) -> int:
        return self.bps_of(await self._creators.get(creator_id))

    def bps_of(self, money: CreatorMoney) -> int:
        """The platform's share: the creator's own rate when set, else the platform's."""
        if money.platform_fee_bps is not None:
            return money.platform_fee_bps
        return self._settings.platform_fee_bps
