"""Random sequences of money events through livecore's own services, checked after each step:
every transaction balances, no entry ever changes, balances equal the sum of their entries,
and no event is applied twice however often it is delivered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecore.config import TipsConfig
from livecore.events.bus import LocalBus
from livecore.store import Database
from livecore.store.creator_settings import CreatorSettings
from livecore.store.ledger import Ledger
from livecore.store.tips import Tips
from livecore.store.users import Users
from livecore.tips.providers import TestProvider
from livecore.tips.reversals import Reversals
from livecore.tips.service import TipService


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = await Database.connect(dsn, max_size=4)
    yield database
    await database.close()


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


_step = st.one_of(
    st.tuples(st.just("tip"), st.integers(100, 50_000), st.integers(0, 1)),
    st.tuples(st.just("redeliver"), st.integers(0, 50), st.integers(0, 0)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 100)),
    st.tuples(st.just("dispute"), st.integers(0, 50), st.integers(0, 2)),
    st.tuples(st.just("fee"), st.integers(0, 50), st.integers(1, 500)),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
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
    creators = [await _user(db, "creator") for _ in range(2)]
    streams = [await _stream(db, c) for c in creators]
    viewer = await _user(db, "viewer")
    run = uuid.uuid4().hex[:8]
    paid: list[tuple[int, str, int]] = []  # (tip id, charge, amount)
    refunded: dict[str, int] = {}
    seen_disputes: dict[str, str] = {}
    for n, (op, a, b) in enumerate(steps):
        before = await _entries(db)
        transactions = await db.pool.fetchval("SELECT count(*) FROM ledger_transactions")
        expect_new: bool | None = None  # None: may or may not post
        if op == "tip":
            tip, _ = await tips_store.create(
                streams[b], viewer, creators[b], a, "usd", "", "stripe", f"{run}-{n}", a // 5
            )
            charge = f"ch_{run}_{n}"
            assert await tips.settle(tip.id, f"pi_{run}_{n}", charge) is not None
            paid.append((tip.id, charge, a))
            expect_new = True
        elif not paid:
            continue
        elif op == "redeliver":
            tip_id, charge, _ = paid[a % len(paid)]
            assert await tips.settle(tip_id, f"pi_again_{n}", charge) is None
            expect_new = False
        elif op == "refund":
            _, charge, amount = paid[a % len(paid)]
            total = min(amount, refunded.get(charge, 0) + amount * b // 100)
            posted = await reversals.refund(charge, None, total)
            assert posted == max(0, total - refunded.get(charge, 0))
            expect_new = posted > 0
            refunded[charge] = max(total, refunded.get(charge, 0))
        elif op == "dispute":
            _, charge, amount = paid[a % len(paid)]
            status = ("needs_response", "won", "lost")[b]
            await reversals.dispute(f"dp_{charge}", charge, None, amount, "usd", status)
            seen_disputes[charge] = status
        else:
            _, charge, _ = paid[a % len(paid)]
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
