"""The safety part of the app: reports and the review queue (appkeys.REPORTS), the screening
queue and its worker (appkeys.SCREENING), and their routes. The screener and the actions the
review queue takes on rooms, broadcasts and accounts need chat/, streams/ and admin/, which
safety/ may not import: wiring/moderation.py builds them and the chat's hook for its lines;
wiring/media.py offers thumbnails and go-lives. Only app.py imports this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from livecore.appkeys import (
    AUDIT,
    CONFIG,
    DB,
    METRICS,
    RECORDINGS,
    REPORTS,
    SCREENING,
    USERS,
    VIEWER_COUNTS,
)
from livecore.safety import routes
from livecore.safety.screening import Screener, ScreeningQueue, Subject
from livecore.safety.service import (
    AccountSuspender,
    BroadcastEnder,
    ReportService,
    RoomModeration,
)
from livecore.store.broadcasts import Broadcasts
from livecore.store.reports import Reports

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def setup(
    app: web.Application,
    actions: tuple[RoomModeration, BroadcastEnder, AccountSuspender],
    screener: Screener,
) -> None:
    """Add the context (after the chat's: it counts viewers) and the routes; `actions` are
    the review queue's moderation in rooms, ending broadcasts and suspending accounts."""
    app.cleanup_ctx.append(_context(*actions, screener))
    routes.setup(app)


def _context(
    moderation: RoomModeration,
    ender: BroadcastEnder,
    suspender: AccountSuspender,
    screener: Screener,
) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        """Reports, the review queue, and the screening worker."""
        config = app[CONFIG]
        reports = Reports(app[DB])
        storage = app[RECORDINGS]

        async def remove_recording(path: str) -> None:
            await storage.delete(path)

        service = app[REPORTS] = ReportService(
            reports, Broadcasts(app[DB]), app[AUDIT], moderation, remove_recording,
            app[VIEWER_COUNTS], ender, suspender,
            limit=config.safety.report_limit,
            window_s=config.safety.report_window_s,
        )  # fmt: skip

        async def describe(stream_id: int) -> list[Subject]:
            facts = await reports.stream(stream_id)
            owner = await app[USERS].get(facts.owner_id) if facts else None
            if facts is None or owner is None:
                return []
            return [
                Subject("title", facts.id, owner.id, facts.title),
                Subject("display_name", facts.id, owner.id, owner.display_name),
            ]

        screening = app[SCREENING] = ScreeningQueue(
            screener, service.flag, describe, config.safety.screening_queue, app[METRICS].registry
        )
        worker = asyncio.create_task(screening.run(), name="screening")
        yield
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)

    return context
