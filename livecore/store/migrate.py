"""Numbered SQL migrations, applied in order under an advisory lock.

Each `migrations/NNNN_name.sql` runs in its own transaction and is recorded in
`schema_migrations`. The advisory lock makes nodes that start together migrate once: the
second waits for the first, then finds nothing left to do. Applied files are never edited.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

logger = logging.getLogger(__name__)

# An arbitrary constant naming livecore's migration lock (pg_advisory_lock takes a bigint).
_LOCK_ID = 0x6C697665636F7265  # "livecore"
_NAME = re.compile(r"([0-9]{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class MigrationReport:
    applied: tuple[str, ...]
    already: int


def bundled_migrations() -> list[Migration]:
    """Read the SQL files shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("livecore.store").joinpath("migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def apply_migrations(dsn: str) -> MigrationReport:
    """Apply every pending migration; safe to call from several nodes at once."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(_CREATE_TABLE)
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied: list[str] = []
            for migration in await asyncio.to_thread(bundled_migrations):
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                logger.info("applied migration %s", migration.name)
                applied.append(migration.name)
            return MigrationReport(tuple(applied), len(done))
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()


async def pending_migrations(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """Names of bundled migrations the database has not recorded (readiness check)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done: set[int] = set()
    if exists:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    bundled = await asyncio.to_thread(bundled_migrations)
    return [m.name for m in bundled if m.version not in done]
