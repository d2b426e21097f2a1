"""POST /api/v1/streams/{slug}/tips and GET /api/v1/me/earnings."""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from livecore.appkeys import AUTH
from livecore.auth.routes import require_user
from livecore.errors import BadRequest, Conflict, Invalid, NotFound
from livecore.jsonbody import invalid_message, read_body
from livecore.store.tips import Tip
from livecore.tips.service import IdempotencyMismatch, TipRefused, TipService

TIPS: Final = web.AppKey("tips", TipService)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/streams/{slug}/tips", post_tip)
    app.router.add_get("/api/v1/me/earnings", get_earnings)


def tip_json(tip: Tip) -> dict[str, Any]:
    return {
        "id": tip.id,
        "status": tip.status,
        "amount_minor": tip.amount_minor,
        "currency": tip.currency,
        "message": tip.message,
        "provider": tip.provider,
        "created_at": tip.created_at.isoformat(),
    }


async def post_tip(request: web.Request) -> web.Response:
    """Send a tip. `Idempotency-Key` is required: a retry with it never charges again."""
    principal = await require_user(request)
    key = request.headers.get("Idempotency-Key", "")
    if not _KEY.match(key):
        raise BadRequest("an Idempotency-Key header (1-255 printable characters) is required")
    stream = await request.app[AUTH].streams.by_slug(request.match_info["slug"])
    if stream is None:
        raise NotFound("no such stream")
    body = await read_body(request)
    amount = body.integer("amount_minor", minimum=1)
    currency = body.text("currency", max_len=3).lower()
    message = body.text("message", max_len=200, default="")
    body.check()
    try:
        result = await request.app[TIPS].send(
            principal.user, stream, amount, currency, message, key
        )
    except TipRefused as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except IdempotencyMismatch:
        raise Conflict("this Idempotency-Key was used for a different tip") from None
    out: dict[str, Any] = {"tip": tip_json(result.tip), "test_mode": result.test_mode}
    if result.payment is not None and result.payment.client_secret:
        out["client_secret"] = result.payment.client_secret
    return web.json_response(out, status=201 if result.payment is not None else 200)


async def get_earnings(request: web.Request) -> web.Response:
    """What the platform owes the logged-in creator, by currency, in minor units."""
    principal = await require_user(request)
    owed = await request.app[TIPS].owed(principal.user)
    return web.json_response({"owed_minor": owed})
