"""Tips: POST /api/v1/streams/{slug}/tips, the creator's tips and fallback-lane invoices,
and GET /api/v1/me/earnings."""

from __future__ import annotations

import re
import typing
from typing import Any, Final

from aiohttp import web

from livecore.appkeys import STREAM_RECORDS, TIPS
from livecore.auth.requests import authenticate, require_user
from livecore.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PaymentRequired,
    TooManyRequests,
    Unavailable,
)
from livecore.ids import path_id
from livecore.jsonbody import invalid_message, iso, read_body
from livecore.store.tips import Tip, TipStatus
from livecore.tips.outcomes import (
    FALLBACK_NOTICE,
    IdempotencyMismatch,
    TipBusy,
    TipDeclined,
    TipForbidden,
    TipLimited,
    TipRefused,
    TipRejected,
    TipsUnavailable,
    TipUnconfirmed,
)

_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,200}")
TEST_MODE_NOTICE = "Test mode: no money moves."
_STATUSES: Final[tuple[TipStatus, ...]] = typing.get_args(TipStatus)


class _OutcomeUnknown(Unavailable):
    # Its own code: the one 503 a client retries with the same Idempotency-Key.
    code = "outcome_unknown"


class _ProcessorBusy(Unavailable):
    # The tip failed without a charge: a new attempt needs a new key.
    code = "processor_busy"


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/streams/{slug}/tips", post_tip)
    app.router.add_get("/api/v1/streams/{slug}/tips/options", get_tip_options)
    app.router.add_get("/api/v1/me/earnings", get_earnings)
    app.router.add_get("/api/v1/me/tips", get_my_tips)
    app.router.add_post("/api/v1/me/tips/{id:[0-9]+}/paid", post_manual_paid)
    app.router.add_post("/api/v1/me/tips/{id:[0-9]+}/unpaid", post_manual_unpaid)


def tip_json(tip: Tip) -> dict[str, Any]:
    return {
        "id": tip.id,
        "status": tip.status,
        "amount_minor": tip.amount_minor,
        "currency": tip.currency,
        "message": tip.message,
        "provider": tip.provider,
        "platform_fee_minor": tip.platform_fee_minor,
        "refunded_minor": tip.refunded_minor,
        "failure": tip.failure,
        "created_at": tip.created_at.isoformat(),
    }


async def post_tip(request: web.Request) -> web.Response:
    """Send a tip. `Idempotency-Key` is required: a retry with it never charges again."""
    principal = await require_user(request)
    key = request.headers.get("Idempotency-Key", "")
    if not _KEY.fullmatch(key):
        raise BadRequest("an Idempotency-Key header (1-255 printable characters) is required")
    stream = await request.app[STREAM_RECORDS].by_slug(request.match_info["slug"])
    if stream is None:
        raise NotFound("no such stream")
    body = await read_body(request)
    amount = body.integer("amount_minor", minimum=1)
    currency = body.text("currency", max_len=3).lower()
    message = body.text("message", max_len=200, default="")
    # A saved card (Stripe PaymentMethod) for a one-click tip, confirmed at once.
    payment_method = body.text("payment_method", max_len=210, default="") or None
    body.check()
    if payment_method is not None and not _PAYMENT_METHOD.fullmatch(payment_method):
        raise Invalid("payment_method is invalid", fields={"payment_method": "is not a pm_ id"})
    tips = request.app[TIPS]
    try:
        result = await tips.send(
            principal.user, stream, amount, currency, message, key, payment_method
        )
    except TipRefused as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except TipForbidden as exc:
        raise Forbidden(str(exc)) from None
    except TipLimited as exc:
        raise TooManyRequests(exc.reason, retry_after_s=exc.retry_after_s) from None
    except TipDeclined as exc:
        raise PaymentRequired(f"your card was declined: {exc.reason}") from None
    except TipRejected as exc:
        if exc.kind == "invalid_request" and (exc.param or "").startswith("payment_method"):
            fields = {"payment_method": f"was refused by the payment processor: {exc.reason}"}
            message = "payment_method was refused; you have not been charged"
            raise Invalid(message, fields=fields) from None
        raise BadGateway(
            f"the payment processor refused this tip ({exc.reason}); you have not been charged"
        ) from None
    except TipBusy:
        raise _ProcessorBusy(
            "the payment processor is busy; you have not been charged: send the tip again "
            "in a moment",
            headers={"Retry-After": "5"},
        ) from None
    except TipUnconfirmed:
        raise _OutcomeUnknown(
            "the payment processor did not answer in time; retry with the same "
            "Idempotency-Key to find out: you will never be charged twice",
            headers={"Retry-After": "5"},
        ) from None
    except TipsUnavailable:
        raise Unavailable(
            "tips are unavailable right now; you have not been charged",
            headers={"Retry-After": "30"},
        ) from None
    except IdempotencyMismatch:
        raise Conflict("this Idempotency-Key was used for a different tip") from None
    out: dict[str, Any] = {"tip": tip_json(result.tip), "test_mode": result.test_mode,
                           "lane": result.lane}  # fmt: skip
    if result.test_mode:
        out["notice"] = TEST_MODE_NOTICE
    if result.lane == "fallback":
        out["notice"] = FALLBACK_NOTICE
    if result.payment is not None and result.payment.client_secret:
        out["client_secret"] = result.payment.client_secret
        out["publishable_key"] = result.publishable_key
    status = 201 if result.created else 200
    if result.lane == "fallback" and result.created:
        status = 202  # accepted, not paid: the creator invoices it
    return web.json_response(out, status=status)


async def get_tip_options(request: web.Request) -> web.Response:
    """What the tip form offers this viewer: currencies, the amounts allowed (a young
    account's limit applied), whether they may tip this stream at all, and the processor."""
    principal = await authenticate(request)
    stream = await request.app[STREAM_RECORDS].by_slug(request.match_info["slug"])
    if stream is None:
        raise NotFound("no such stream")
    tips = request.app[TIPS]
    options = await tips.options(principal.user if principal else None, stream)
    out: dict[str, Any] = {
        "currencies": list(options.currencies),
        "min_minor": options.min_minor,
        "max_minor": options.max_minor,
        "new_account_until": iso(options.young_until),
        "refusal": options.refusal,
        "test_mode": options.test_mode,
        "publishable_key": options.publishable_key,
    }
    if options.test_mode:
        out["notice"] = TEST_MODE_NOTICE
    return web.json_response(out)


async def get_earnings(request: web.Request) -> web.Response:
    """What the platform owes the logged-in creator, by currency, in minor units."""
    principal = await require_user(request)
    tips = request.app[TIPS]
    owed = await tips.owed(principal.user)
    return web.json_response({"owed_minor": owed, "test_mode": tips.test_mode})


async def get_my_tips(request: web.Request) -> web.Response:
    """Tips to the logged-in creator, newest first; `?status=pending&lane=fallback` lists the
    invoices waiting to be settled."""
    principal = await require_user(request)
    raw = request.query.get("status")
    status = next((s for s in _STATUSES if s == raw), None)
    if raw is not None and status is None:
        raise Invalid("status is invalid", fields={"status": "is not a tip status"})
    lane = request.query.get("lane")
    if lane not in (None, "fallback"):
        raise Invalid("lane is invalid", fields={"lane": "must be 'fallback'"})
    tips = await request.app[TIPS].creator_tips(
        principal.user, status, "manual" if lane else None, 200
    )
    return web.json_response({"tips": [tip_json(t) for t in tips]})


async def _settle_manual(request: web.Request, paid: bool) -> web.Response:
    principal = await require_user(request)
    tip_id = path_id(request, "id", "fallback-lane tip of yours")
    tip = await request.app[TIPS].settle_manual(principal.user, tip_id, paid)
    if tip is None:
        raise NotFound("no such fallback-lane tip of yours")
    return web.json_response({"tip": tip_json(tip)})


async def post_manual_paid(request: web.Request) -> web.Response:
    """The creator received the invoiced payment of a fallback-lane tip."""
    return await _settle_manual(request, True)


async def post_manual_unpaid(request: web.Request) -> web.Response:
    """The creator gives up on a fallback-lane tip's invoice."""
    return await _settle_manual(request, False)
