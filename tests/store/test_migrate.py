from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from livecore.store import apply_migrations, pending_migrations
from livecore.store.migrate import bundled_migrations

# Read at import, off the event loop.
BUNDLED = tuple(m.name for m in bundled_migrations())


@pytest.fixture
async def empty_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A brand-new, empty database on the test server, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, query = postgres_dsn.partition("?")
        yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_migrations_apply_on_an_empty_database(empty_dsn: str) -> None:
    report = await apply_migrations(empty_dsn)
    assert report.applied == BUNDLED
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await pending_migrations(conn) == []
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
        assert {"users", "sessions", "streams", "stream_keys", "audit_log"} <= tables
    finally:
        await conn.close()


async def test_reapplying_is_a_no_op(empty_dsn: str) -> None:
    await apply_migrations(empty_dsn)
    again = await apply_migrations(empty_dsn)
    assert again.applied == ()
    assert again.already == len(BUNDLED)


async def test_concurrent_migrators_apply_each_migration_once(empty_dsn: str) -> None:
    reports = await asyncio.gather(*(apply_migrations(empty_dsn) for _ in range(4)))
    applied = [name for r in reports for name in r.applied]
    assert sorted(applied) == sorted(BUNDLED)
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
    finally:
        await conn.close()


async def test_pending_lists_unapplied_migrations(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await pending_migrations(conn) == list(BUNDLED)
    finally:
        await conn.close()
