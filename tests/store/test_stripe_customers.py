from __future__ import annotations

import asyncio

from livecore.store import Database
from livecore.store.stripe_customers import StripeCustomers


async def test_concurrent_keeps_of_one_customer_all_answer_it(db: Database) -> None:
    # Card payments racing for one user get the same customer from Stripe (one idempotency
    # key): every one of them is answered with it, none fails on the unique customer.
    customers = StripeCustomers(db)
    for n in range(30):
        user_id = await db.pool.fetchval(
            "INSERT INTO users (email, password_hash, display_name, role)"
            " VALUES ($1, 'x', $2, 'viewer') RETURNING id",
            f"fan{n}@example.com", f"Fan {n}",
        )  # fmt: skip
        ref = f"cus_Race{n}"
        refs = await asyncio.gather(*(customers.keep(user_id, ref) for _ in range(8)))
        assert refs == [ref] * 8
        assert await customers.get(user_id) == ref
