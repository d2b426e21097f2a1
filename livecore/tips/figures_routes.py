"""A creator's figures for the Money page: GET /api/v1/me/broadcasts (each broadcast's
audience and the tips paid during it) and GET /api/v1/me/subscribers (counts per tier)."""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from livecore.appkeys import DB
from livecore.auth.requests import require_user
from livecore.errors import Invalid
from livecore.jsonbody import iso
from livecore.store.creator_figures import BroadcastFigures, CreatorFigures

DEFAULT_BROADCASTS: Final = 20
MAX_BROADCASTS: Final = 100
_COUNT = re.compile(r"[0-9]{1,4}")


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/me/broadcasts", get_my_broadcasts)
    app.router.add_get("/api/v1/me/subscribers", get_my_subscribers)


def broadcast_json(b: BroadcastFigures) -> dict[str, Any]:
    return {
        "id": b.id,
        "stream": {"slug": b.slug, "title": b.title},
        "started_at": b.started_at.isoformat(),
        "ended_at": iso(b.ended_at),
        "peak_viewers": b.peak_viewers,
        "unique_viewers": b.unique_viewers,
        "tips": {
            t.currency: {"count": t.count, "amount_minor": t.amount_minor,
                         "share_minor": t.share_minor}
            for t in b.tips
        },
    }  # fmt: skip


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_BROADCASTS
    if not _COUNT.fullmatch(raw) or not 1 <= int(raw) <= MAX_BROADCASTS:
        problem = f"must be a whole number from 1 to {MAX_BROADCASTS}"
        raise Invalid(f"limit {problem}", fields={"limit": problem})
    return int(raw)


async def get_my_broadcasts(request: web.Request) -> web.Response:
    """The logged-in creator's latest broadcasts (all streams), newest first: peak and unique
    viewers, and per currency the tips paid while each was on air."""
    principal = await require_user(request)
    limit = _limit(request)
    found = await CreatorFigures(request.app[DB]).broadcasts(principal.user.id, limit)
    return web.json_response({"broadcasts": [broadcast_json(b) for b in found]})


async def get_my_subscribers(request: web.Request) -> web.Response:
    """How many viewers are subscribed to the logged-in creator now, in all and per tier."""
    principal = await require_user(request)
    subs = await CreatorFigures(request.app[DB]).subscribers(principal.user.id)
    tiers = [
        {"tier_id": t.tier_id, "name": t.name, "price_minor": t.price_minor,
         "currency": t.currency, "active": t.active, "subscribers": t.subscribers}
        for t in subs.tiers
    ]  # fmt: skip
    return web.json_response({"subscribers": subs.total, "tiers": tiers})
