"""Random sequences of money events (tips, subscription invoices, redeliveries, refunds,
disputes, fees, payouts paid or failed) through livecore's own services, checked after each step:
every transaction balances, no entry ever changes, balances equal the sum of their entries,
and no event is applied twice however often it is delivered."""

from __future__ import annotations

import time
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecore.config import TipsConfig
from livecore.events.bus import LocalBus
from livecore.store import Database
from livecore.store.creator_settings import CreatorSettings
from livecore.store.ledger import Ledger
from livecore.store.payouts import Payouts
from livecore.store.subscriptions import Subscriptions
from livecore.store.tips import Tips
from livecore.store.users import Users
from livecore.tips.payouts import PayoutRefused, PayoutService
from livecore.tips.providers import TestProvider
from livecore.tips.reversals import Reversals
from livecore.tips.service import TipService
from livecore.tips.stripe.objects import parse_invoice
from livecore.tips.subscriptions import SubscriptionService


async def _user(db: Database, role: str) -> int:
    return int(
        await db.pool.fetchval(
            "INSERT INTO users (email, display_name, password_hash, role)"
            " VALUES ($1, 'p', 'x', $2) RETURNING id",
            f"p-{uuid.uuid4().hex[:10]}@example.com",
            role,
        )
    )


async def _stream(db: Database, owner: int) -> int:
    return int(
        await db.pool.fetchval(
            "INSERT INTO streams (owner_id, slug) VALUES ($1, $2) RETURNING id",
            owner,
            f"p-{uuid.uuid4().hex[:10]}",
        )
    )


async def _entries(db: Database) -> dict[int, tuple[Any, ...]]:
    rows = await db.pool.fetch(
        "SELECT id, transaction_id, account_id, amount_minor, currency FROM ledger_entries"
    )
    return {r["id"]: tuple(r) for r in rows}


def _invoice(run: str, n: int, amount: int, sub: str, owner: dict[str, str]) -> dict[str, Any]:
    """A paid Stripe invoice as current API versions shape it."""
    now = int(time.time())
    return {
        "id": f"in_{run}_{n}", "object": "invoice", "amount_paid": amount, "currency": "usd",
        "lines": {"data": [{"period": {"start": now, "end": now + 30 * 86400}}]},
        "parent": {"subscription_details": {"subscription": sub, "metadata": owner}},
        "payments": {"data": [{"payment": {"type": "payment_intent",
                                           "payment_intent": f"pi_{run}_{n}"}}]},
    }  # fmt: skip


_step = st.one_of(
    st.tuples(st.just("tip"), st.integers(100, 50_000), st.integers(0, 1)),
    st.tuples(st.just("invoice"), st.integers(100, 20_000), st.integers(0, 1)),
    st.tuples(st.just("redeliver"), st.integers(0, 50), st.integers(0, 0)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 100)),
    st.tuples(st.just("dispute"), st.integers(0, 50), st.integers(0, 2)),
    st.tuples(st.just("fee"), st.integers(0, 50), st.integers(1, 500)),
    # A payout request by creator a % 2, then marked paid (b = 1) or failed (b = 2).
    st.tuples(st.just("payout"), st.integers(0, 1), st.integers(0, 2)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_step, min_size=1, max_size=20))
async def test_random_money_events_keep_every_invariant(
    db: Database, steps: list[tuple[str, int, int]]
) -> None:
    ledger = Ledger(db)
    tips_store = Tips(db)
    tips = TipService(
        tips_store, Users(db), ledger, LocalBus(), TipsConfig(), TestProvider(),
        creator_settings=CreatorSettings(db),
    )  # fmt: skip
    reversals = Reversals(db, ledger)
    users = Users(db)
    payouts = PayoutService(
        db, ledger, Payouts(db), CreatorSettings(db), TipsConfig(payout_hold_days=0.0), None
    )
    subscriptions = SubscriptionService(
        db, Subscriptions(db), ledger, CreatorSettings(db), TipsConfig(), None
    )
    creators = [await _user(db, "creator") for _ in range(2)]
    streams = [await _stream(db, c) for c in creators]
    viewer = await _user(db, "viewer")
    run = uuid.uuid4().hex[:8]
    tiers = []
    for c in creators:
        creator = await users.get(c)
        assert creator is not None
        tiers.append((await subscriptions.create_tier(creator, f"t{run}", 500, "usd")).id)
    # (tip id or invoice id, charge, its PaymentIntent, amount)
    paid: list[tuple[int | str, str, str, int]] = []
    refunded: dict[str, int] = {}
    for n, (op, a, b) in enumerate(steps):
        before = await _entries(db)
        transactions = await db.pool.fetchval("SELECT count(*) FROM ledger_transactions")
        expect_new: bool | None = None  # None: may or may not post
        if op == "payout":
            creator = await users.get(creators[a])
            assert creator is not None
            try:
                payout = await payouts.request(creator, "usd")
            except PayoutRefused:
                expect_new = False  # nothing available, or a debt holds it
            else:
                expect_new = True
                if b == 1:
                    await payouts.mark_paid(payout.id)
                elif b == 2:
                    await payouts.mark_failed(payout.id, "bank refused")
            owed = -(await ledger.balances("creator", creators[a])).get("usd", 0)
            assert b == 2 or not expect_new or owed <= 0, "a payout left money behind"
        elif op == "tip":
            tip, _ = await tips_store.create(
                streams[b], viewer, creators[b], a, "usd", "", "stripe", f"{run}-{n}", a // 5
            )
            charge = f"ch_{run}_{n}"
            assert await tips.settle(tip.id, f"pi_{run}_{n}", charge) is not None
            paid.append((tip.id, charge, f"pi_{run}_{n}", a))
            expect_new = True
        elif op == "invoice":
            meta = {"viewer_id": str(viewer), "tier_id": str(tiers[b]),
                    "creator_id": str(creators[b])}  # fmt: skip
            invoice = _invoice(run, n, a, f"sub_{run}_{b}", meta)
            await subscriptions.apply_invoice_paid(parse_invoice(invoice), int(time.time()))
            # The refund of an invoice's charge names the charge and its PaymentIntent.
            paid.append((invoice["id"], f"ch_{run}_{n}", f"pi_{run}_{n}", a))
            expect_new = True
        elif not paid:
            continue
        elif op == "redeliver":
            key, charge, payment, amount = paid[a % len(paid)]
            if isinstance(key, int):
                assert await tips.settle(key, payment, charge) is None
            else:
                meta = {"viewer_id": str(viewer), "tier_id": str(tiers[0]),
                        "creator_id": str(creators[0])}  # fmt: skip
                again = _invoice(run, 0, amount, f"sub_{run}_0", meta) | {"id": key}
                await subscriptions.apply_invoice_paid(parse_invoice(again), int(time.time()))
            expect_new = False
        elif op == "refund":
            _, charge, payment, amount = paid[a % len(paid)]
            total = min(amount, refunded.get(charge, 0) + amount * b // 100)
            posted = await reversals.refund(charge, payment, total)
            assert posted == max(0, total - refunded.get(charge, 0))
            expect_new = posted > 0
            refunded[charge] = max(total, refunded.get(charge, 0))
        elif op == "dispute":
            _, charge, payment, amount = paid[a % len(paid)]
            status = ("needs_response", "won", "lost")[b]
            await reversals.dispute(f"dp_{charge}", charge, payment, amount, "usd", status)
        else:
            _, charge, _, _ = paid[a % len(paid)]
            await reversals.fee(charge, b, "usd")
        check = await ledger.check()
        assert check.ok, (op, check)
        after = await _entries(db)
        assert all(after[k] == v for k, v in before.items()), "an entry changed or vanished"
        grew = await db.pool.fetchval("SELECT count(*) FROM ledger_transactions") > transactions
        if expect_new is not None:
            assert grew == expect_new, (op, a, b)
    # Every external reference was posted once, and replays of all of them post nothing.
    refs = await db.pool.fetchval(
        "SELECT count(*) - count(DISTINCT external_ref) FROM ledger_transactions"
    )
    assert refs == 0
