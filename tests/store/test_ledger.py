"""The ledger's invariants, enforced by PostgreSQL itself, under random sequences."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecore.store import Database
from livecore.store.ledger import Entry, Ledger, Unbalanced


async def _creator(db: Database, name: str = "c") -> int:
    return int(
        await db.pool.fetchval(
            "INSERT INTO users (email, display_name, password_hash, role)"
            " VALUES ($1, $2, 'x', 'creator') RETURNING id",
            f"{name}-{uuid.uuid4().hex[:8]}@example.com",
            name,
        )
    )


async def test_balanced_transaction_moves_balances(db: Database) -> None:
    ledger = Ledger(db)
    creator = await ledger.account("creator", "usd", await _creator(db))
    clearing = await ledger.account("processor_clearing", "usd")
    revenue = await ledger.account("platform_revenue", "usd")
    tx = await ledger.post(
        "pi_1", "tip",
        [Entry(clearing, 1000, "usd"), Entry(creator, -900, "usd"), Entry(revenue, -100, "usd")],
    )  # fmt: skip
    assert tx is not None
    assert (await ledger.balance(creator), await ledger.balance(revenue)) == (-900, -100)
    assert (await ledger.check()).ok


async def test_same_external_reference_posts_once(db: Database) -> None:
    ledger = Ledger(db)
    a, b = await ledger.account("processor_clearing", "usd"), await ledger.account("refunds", "usd")
    entries = [Entry(a, 500, "usd"), Entry(b, -500, "usd")]
    results = await asyncio.gather(*(ledger.post("evt_dup", "tip", entries) for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    assert await ledger.balance(a) == 500


async def test_unbalanced_posting_changes_nothing(db: Database) -> None:
    ledger = Ledger(db)
    a, b = await ledger.account("processor_clearing", "eur"), await ledger.account("refunds", "eur")
    with pytest.raises(Unbalanced):
        await ledger.post("bad", "tip", [Entry(a, 500, "eur"), Entry(b, -499, "eur")])
    assert await ledger.balance(a) == 0
    # The database refuses it too, even when the check in Python is bypassed.
    with pytest.raises(asyncpg.CheckViolationError):
        async with db.transaction() as conn:
            tx = await conn.fetchval(
                "INSERT INTO ledger_transactions (kind, external_ref) VALUES ('x', 'raw')"
                " RETURNING id"
            )
            await conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount_minor, currency)"
                " VALUES ($1, $2, 7, 'eur')",
                tx,
                a,
            )
    assert (await ledger.check()).ok


async def test_entries_and_balances_cannot_be_edited(db: Database) -> None:
    ledger = Ledger(db)
    a, b = await ledger.account("processor_clearing", "usd"), await ledger.account("refunds", "usd")
    await ledger.post("t1", "tip", [Entry(a, 100, "usd"), Entry(b, -100, "usd")])
    for sql in (
        "UPDATE ledger_entries SET amount_minor = 1",
        "DELETE FROM ledger_entries",
        "DELETE FROM ledger_transactions",
        "UPDATE ledger_accounts SET balance_minor = 0",
    ):
        with pytest.raises(asyncpg.RestrictViolationError):
            await db.pool.execute(sql)
    assert await ledger.balance(a) == 100


async def test_currency_must_match_the_account(db: Database) -> None:
    ledger = Ledger(db)
    a, b = await ledger.account("processor_clearing", "usd"), await ledger.account("refunds", "usd")
    with pytest.raises(Unbalanced):
        await ledger.post("t2", "tip", [Entry(a, 100, "eur"), Entry(b, -100, "eur")])


# Random sequences: tips, refunds, payouts and replays, checked after every step.
_ops = st.lists(
    st.tuples(
        st.sampled_from(["tip", "refund", "payout", "replay"]),
        st.integers(min_value=1, max_value=1_000_000),
        st.integers(min_value=0, max_value=2),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
async def test_random_sequences_keep_every_invariant(
    db: Database, ops: list[tuple[str, int, int]]
) -> None:
    ledger = Ledger(db)
    run = uuid.uuid4().hex[:8]
    creators = [
        await ledger.account("creator", "usd", await _creator(db, f"c{i}")) for i in range(3)
    ]
    clearing = await ledger.account("processor_clearing", "usd")
    revenue = await ledger.account("platform_revenue", "usd")
    transit = await ledger.account("payouts_in_transit", "usd")
    posted: list[str] = []
    for n, (op, amount, who) in enumerate(ops):
        creator = creators[who]
        ref = f"{run}-{n}"
        if op == "tip":
            fee = amount // 10
            entries = [Entry(clearing, amount, "usd"), Entry(creator, -(amount - fee), "usd")]
            if fee:
                entries.append(Entry(revenue, -fee, "usd"))
        elif op == "refund":
            entries = [Entry(creator, amount, "usd"), Entry(clearing, -amount, "usd")]
        elif op == "payout":
            entries = [Entry(creator, amount, "usd"), Entry(transit, -amount, "usd")]
        else:
            if not posted:
                continue
            ref = posted[-1]  # the same event again: must post nothing
            before = [await ledger.balance(c) for c in creators]
            assert (
                await ledger.post(
                    ref, "tip", [Entry(clearing, 1, "usd"), Entry(revenue, -1, "usd")]
                )
                is None
            )
            assert [await ledger.balance(c) for c in creators] == before
            continue
        assert await ledger.post(ref, op, entries) is not None
        posted.append(ref)
        check = await ledger.check()
        assert check.ok, check
