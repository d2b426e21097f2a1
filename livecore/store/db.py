"""The asyncpg pool and the small helpers every repository shares."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection inside a Database.transaction(), handed to repositories that join it.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class UniqueViolation(Exception):
    """A row with the same unique key exists already."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


@dataclass(frozen=True, slots=True)
class PoolStats:
    size: int
    idle: int
    max_size: int


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    return None


class Database:
    """One asyncpg pool for the process; close() waits for released connections."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10, timeout_s: float = 10.0) -> Database:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            timeout=timeout_s,
            command_timeout=30.0,
            # livecore never leaves session state on a pooled connection (no LISTEN, no
            # session SET, advisory locks only on migrate's own connection), so the default
            # reset query, one extra round trip per release, is skipped. asyncpg still rolls
            # back any open transaction itself.
            reset=_no_session_reset,
        )
        return cls(pool)

    async def close(self, timeout_s: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self.pool.close()
        except TimeoutError:
            self.pool.terminate()

    def stats(self) -> PoolStats:
        return PoolStats(
            size=self.pool.get_size(),
            idle=self.pool.get_idle_size(),
            max_size=self.pool.get_max_size(),
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self.pool.fetchval("SELECT 1"))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False


@contextlib.contextmanager
def unique_violation() -> Iterator[None]:
    """Turn asyncpg's unique-violation into the store's own exception."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise UniqueViolation(exc.constraint_name or "") from None
