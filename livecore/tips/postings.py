"""The chart of accounts and the entries each kind of posting makes: the one place that says
where money goes. Every posting livecore makes (the tip settlement's batched statement in
store/tips.py included) takes its entries from POSTINGS.

Accounts (store/ledger.py keeps them; a positive entry grows the debit side):
- creator (one per creator and currency): a credit (negative) balance is what the platform
  owes the creator; a debit one is what the creator owes.
- platform_revenue: the platform's share, as credits.
- processor_clearing: money the processor holds for the platform (its payments, less fees).
- processor_fees, refunds, disputes: where fees, refunded and disputed money go.
- payouts_in_transit, payouts_paid: a payout on its way, and paid.

Each posting names three amounts: `gross` (what was paid, refunded, disputed, paid out, or
the fee), `fee` (the platform's share of it) and `net` (gross - fee, the creator's share).
External references (each posted once): `tip:{tip id}`, `invoice:{invoice id}`,
`refund:{charge}:{refunded total}`, `dispute:{id}`, `dispute:{id}:won`, `fee:{charge}`,
`dispute-fee:{balance transaction}`, `payout:{id}`, `payout:{id}:paid|failed`.

Imports only store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from livecore.store.db import Connection
from livecore.store.ledger import AccountKind, Entry, Ledger

PostingKind = Literal[
    "tip", "tip_manual", "subscription", "refund", "dispute", "dispute_won", "processor_fee",
    "payout", "payout_paid", "payout_failed",
]  # fmt: skip
Amount = Literal["gross", "fee", "net"]
# One entry of a posting: the account, which of its amounts, and its sign.
Leg = tuple[AccountKind, Amount, Literal[1, -1]]

POSTINGS: Final[dict[PostingKind, tuple[Leg, ...]]] = {
    # A tip paid through the processor: the processor holds it; the creator is owed the
    # rest after the platform's share.
    "tip": (("processor_clearing", "gross", 1), ("creator", "net", -1),
            ("platform_revenue", "fee", -1)),
    # A fallback-lane tip the viewer paid the creator directly: the creator owes the share.
    "tip_manual": (("creator", "fee", 1), ("platform_revenue", "fee", -1)),
    # A subscription's paid invoice, as a tip.
    "subscription": (("processor_clearing", "gross", 1), ("creator", "net", -1),
                     ("platform_revenue", "fee", -1)),
    # Refunded or disputed money leaves the creator's balance and the platform's share.
    "refund": (("creator", "net", 1), ("platform_revenue", "fee", 1), ("refunds", "gross", -1)),
    "dispute": (("creator", "net", 1), ("platform_revenue", "fee", 1),
                ("disputes", "gross", -1)),
    # A won dispute gives back what its opening took.
    "dispute_won": (("creator", "net", -1), ("platform_revenue", "fee", -1),
                    ("disputes", "gross", 1)),
    # The processor's fee (negative: one given back) is the platform's expense.
    "processor_fee": (("processor_fees", "gross", 1), ("processor_clearing", "gross", -1)),
    "payout": (("creator", "gross", 1), ("payouts_in_transit", "gross", -1)),
    "payout_paid": (("payouts_in_transit", "gross", 1), ("payouts_paid", "gross", -1)),
    # A failed payout puts the money back on the creator's balance.
    "payout_failed": (("creator", "gross", -1), ("payouts_in_transit", "gross", 1)),
}  # fmt: skip


def split(amount_minor: int, fee_bps: int) -> tuple[int, int]:
    """(creator's share, platform's share) in minor units; rounding favours the creator."""
    fee = amount_minor * fee_bps // 10_000
    return amount_minor - fee, fee


@dataclass(frozen=True, slots=True)
class Posting:
    """A kind of posting with its accounts made, for one currency (and creator)."""

    kind: PostingKind
    currency: str
    accounts: tuple[int, ...]  # one per leg of POSTINGS[kind]

    def entries(self, gross: int, fee: int = 0) -> list[Entry]:
        """The posting's entries for these amounts; a leg of zero has no entry."""
        amounts = {"gross": gross, "fee": fee, "net": gross - fee}
        made = [
            Entry(account, sign * amounts[amount], self.currency)
            for account, (_, amount, sign) in zip(self.accounts, POSTINGS[self.kind], strict=True)
        ]
        return [e for e in made if e.amount_minor]

    def account(self, kind: AccountKind) -> int:
        """The id of the posting's account of that kind."""
        for account, (leg, _, _) in zip(self.accounts, POSTINGS[self.kind], strict=True):
            if leg == kind:
                return account
        raise KeyError(kind)


async def prepare(
    ledger: Ledger, kind: PostingKind, currency: str, creator_id: int | None = None,
    *, known: Mapping[AccountKind, int] | None = None,
) -> Posting:  # fmt: skip
    """A posting's accounts, made on first use (`known`: ids the caller has already, e.g.
    the account it locked). Called before the caller's transaction (the ids are cached once
    committed), so that the transaction holds its connection only for the posting itself."""
    accounts = []
    for leg, _, _ in POSTINGS[kind]:
        if known is not None and leg in known:
            accounts.append(known[leg])
            continue
        owner = creator_id if leg == "creator" else None
        accounts.append(await ledger.account(leg, currency, owner))
    return Posting(kind, currency, tuple(accounts))


async def post(
    ledger: Ledger, posting: Posting, external_ref: str, gross: int, fee: int = 0,
    conn: Connection | None = None,
) -> int | None:  # fmt: skip
    """Post `posting` for these amounts once per `external_ref` (None: posted before)."""
    return await ledger.post(external_ref, posting.kind, posting.entries(gross, fee), conn=conn)
