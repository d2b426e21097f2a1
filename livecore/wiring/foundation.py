"""What every package sits on: the deployment's secret key, the database (migrated before
the pool opens) and the event bus (in process on one node, Redis pub/sub when `redis_url` is
set). One cleanup context: the bus closes first, then the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from livecore.appkeys import BUS, CONFIG, DB, METRICS, SECRET_KEY
from livecore.config import Config
from livecore.events.bus import EventBus, LocalBus
from livecore.events.metrics import BusMetrics
from livecore.events.redis_bus import RedisBus
from livecore.ops.dependencies import DatabaseProbe
from livecore.secretkey import stored_secret
from livecore.store import Database, apply_migrations
from livecore.store.chat import ChatStore

logger = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def setup(app: web.Application, dsn: str) -> None:
    """Add the context; its resources exist once the app has started."""
    app.cleanup_ctx.append(_context(dsn))


def _context(dsn: str) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        if config.secret_key:
            app[SECRET_KEY] = config.secret_key.encode()
        else:
            path = config.data_path / "secret_key"
            app[SECRET_KEY] = await asyncio.to_thread(stored_secret, path)
        report = await apply_migrations(dsn)
        if report.applied:
            logger.info("migrations applied: %s", ", ".join(report.applied))
        db = app[DB] = await Database.connect(dsn, max_size=config.database_pool_size)
        app[METRICS].watch_pool(lambda: _pool_stats(db))
        await _open_event_bus(app, db)
        async with DatabaseProbe(app[METRICS].registry, db.ping).running():
            yield
        try:
            await app[BUS].close()
        finally:
            await db.close(timeout_s=10)  # waits for released connections, then terminates

    return context


def _pool_stats(db: Database) -> tuple[int, int, int]:
    s = db.stats()
    return s.size, s.idle, s.max_size


class _RoomRecords:
    """What the bus keeps in PostgreSQL: rooms' event id blocks and their stored history."""

    def __init__(self, store: ChatStore) -> None:
        self._store = store

    async def reserve(self, room: int, count: int) -> int:
        return await self._store.reserve_event_ids(room, count)

    async def recent(self, room: int, limit: int) -> list[bytes]:
        return await self._store.recent_lines(room, limit)


async def _open_event_bus(app: web.Application, db: Database) -> None:
    app[BUS] = await open_event_bus(app[CONFIG], db, BusMetrics(app[METRICS].registry))


async def open_event_bus(
    config: Config, db: Database, metrics: BusMetrics | None = None, *, redis_url: str = ""
) -> EventBus:
    """The bus a node uses; `livecore` commands that must reach the nodes (`stream
    rotate-key`) open the same one with the Redis URL the nodes use."""
    records = _RoomRecords(ChatStore(db))
    url = redis_url or config.redis_url
    if url:
        bus = RedisBus(url, ids=records, history=config.chat.history,
                       stored=records, metrics=metrics)  # fmt: skip
        await bus.start()
        return bus
    return LocalBus(records, history=config.chat.history, stored=records)
