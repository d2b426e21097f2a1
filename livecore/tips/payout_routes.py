"""Payouts: a creator's GET/POST /api/v1/me/payouts, and the admin's payout and money-settings
routes under /api/v1/admin/."""

from __future__ import annotations

import re
import typing
from typing import Any, Final

from aiohttp import web

from livecore.appkeys import AUDIT, PAYOUTS, USERS
from livecore.auth.requests import require_user
from livecore.auth.twofactor_routes import require_two_factor_for_payouts
from livecore.clientip import client_ip
from livecore.errors import Conflict, Forbidden, Invalid, NotFound
from livecore.ids import path_id
from livecore.jsonbody import invalid_message, read_body
from livecore.store.creator_settings import CreatorMoney
from livecore.store.payouts import Payout, PayoutStatus
from livecore.store.users import User
from livecore.tips.payouts import (
    PayoutConflict,
    PayoutInvalid,
    PayoutNotFound,
    PayoutRefused,
    PayoutSummary,
)

_STRIPE_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,64}")
_STATUSES: Final[tuple[PayoutStatus, ...]] = typing.get_args(PayoutStatus)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/me/payouts", get_my_payouts)
    app.router.add_post("/api/v1/me/payouts", post_my_payout)
    app.router.add_get("/api/v1/admin/payouts", get_admin_payouts)
    app.router.add_post("/api/v1/admin/payouts/{id:[0-9]+}/paid", post_payout_paid)
    app.router.add_post("/api/v1/admin/payouts/{id:[0-9]+}/failed", post_payout_failed)
    app.router.add_put("/api/v1/admin/creators/{user_id:[0-9]+}/money", put_creator_money)


def payout_json(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.id,
        "creator_id": payout.creator_id,
        "amount_minor": payout.amount_minor,
        "currency": payout.currency,
        "rail": payout.rail,
        "status": payout.status,
        "provider_ref": payout.provider_ref,
        "failure": payout.failure,
        "created_at": payout.created_at.isoformat(),
        "updated_at": payout.updated_at.isoformat(),
    }


def summary_json(summary: PayoutSummary) -> dict[str, int]:
    return {
        "owed_minor": summary.owed_minor,
        "held_minor": summary.held_minor,
        "available_minor": summary.available_minor,
        "debt_minor": summary.debt_minor,
    }


def money_json(money: CreatorMoney) -> dict[str, Any]:
    return {
        "user_id": money.user_id,
        "platform_fee_bps": money.platform_fee_bps,
        "stripe_account_id": money.stripe_account_id,
    }


async def get_my_payouts(request: web.Request) -> web.Response:
    """The logged-in creator's payouts, newest first, and what they may withdraw by currency."""
    principal = await require_user(request)
    service = request.app[PAYOUTS]
    payouts = await service.payouts_of(principal.user.id)
    summary = await service.summary(principal.user.id)
    return web.json_response(
        {
            "payouts": [payout_json(p) for p in payouts],
            "summary": {currency: summary_json(s) for currency, s in summary.items()},
        }
    )


async def post_my_payout(request: web.Request) -> web.Response:
    """Pay out everything available in one currency: 201 with the payout."""
    principal = await require_user(request)
    await require_two_factor_for_payouts(request, principal.user)
    body = await read_body(request)
    currency = body.text("currency", max_len=3).lower()
    body.check()
    try:
        payout = await request.app[PAYOUTS].request(principal.user, currency)
    except PayoutInvalid as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except PayoutRefused as exc:
        raise Conflict(exc.reason) from None
    return web.json_response({"payout": payout_json(payout)}, status=201)


async def _admin(request: web.Request) -> User:
    principal = await require_user(request)
    if principal.user.role != "admin":
        raise Forbidden("only admins may do this")
    return principal.user


def _payout_id(request: web.Request) -> int:
    return path_id(request, "id", "payout")


async def get_admin_payouts(request: web.Request) -> web.Response:
    """Every creator's payouts, newest first; `?status=in_transit` lists those to settle."""
    await _admin(request)
    raw = request.query.get("status")
    status = next((s for s in _STATUSES if s == raw), None)
    if raw is not None and status is None:
        raise Invalid(
            "status is invalid", fields={"status": "must be one of " + ", ".join(_STATUSES)}
        )
    payouts = await request.app[PAYOUTS].listing(status)
    return web.json_response({"payouts": [payout_json(p) for p in payouts]})


async def post_payout_paid(request: web.Request) -> web.Response:
    """Mark a payout paid (the manual transfer arrived); marking it again changes nothing."""
    admin = await _admin(request)
    try:
        payout, changed = await request.app[PAYOUTS].mark_paid(_payout_id(request))
    except PayoutNotFound:
        raise NotFound("no such payout") from None
    except PayoutConflict as exc:
        raise Conflict(exc.reason) from None
    if changed:
        await _audit(request, admin, "payout.paid", payout)
    return web.json_response({"payout": payout_json(payout)})


async def post_payout_failed(request: web.Request) -> web.Response:
    """Mark a payout failed: its money goes back on the creator's balance."""
    admin = await _admin(request)
    body = await read_body(request)
    reason = body.text("reason", max_len=500).strip()
    if not reason and "reason" not in body.problems:
        body.problems["reason"] = "must not be empty"
    body.check()
    try:
        payout, changed = await request.app[PAYOUTS].mark_failed(_payout_id(request), reason)
    except PayoutNotFound:
        raise NotFound("no such payout") from None
    except PayoutConflict as exc:
        raise Conflict(exc.reason) from None
    if changed:
        await _audit(request, admin, "payout.failed", payout, reason=reason)
    return web.json_response({"payout": payout_json(payout)})


async def _audit(
    request: web.Request, admin: User, action: str, payout: Payout, **details: str
) -> None:
    await request.app[AUDIT].record(
        action, "payout", payout.id, actor_id=admin.id, client_ip=client_ip(request),
        details={"creator_id": payout.creator_id, "amount_minor": payout.amount_minor,
                 "currency": payout.currency, **details},
    )  # fmt: skip


async def put_creator_money(request: web.Request) -> web.Response:
    """Set a creator's money settings, replacing both: `platform_fee_bps` (0-10000, null for
    the platform default) and `stripe_account_id` (`acct_...`, null for manual payouts). An
    omitted field is set to null."""
    admin = await _admin(request)
    user_id = path_id(request, "user_id", "user")
    body = await read_body(request)
    bps, account = None, None
    if "platform_fee_bps" in body:
        bps = body.integer("platform_fee_bps", minimum=0, maximum=10_000)
    if "stripe_account_id" in body:
        account = body.text("stripe_account_id", max_len=69)
    malformed = account is not None and not _STRIPE_ACCOUNT.fullmatch(account)
    if malformed and "stripe_account_id" not in body.problems:
        body.problems["stripe_account_id"] = "must be acct_ followed by letters and digits"
    body.check()
    if await request.app[USERS].get(user_id) is None:
        raise NotFound("no such user")
    service = request.app[PAYOUTS]
    before = await service.creator_money(user_id)
    try:
        money = await service.set_creator_money(user_id, bps, account)
    except PayoutConflict as exc:
        raise Conflict(exc.reason) from None
    await request.app[AUDIT].record(
        "creator.money", "user", user_id, actor_id=admin.id, client_ip=client_ip(request),
        details={"platform_fee_bps": bps, "stripe_account_id": account,
                 "previous_platform_fee_bps": before.platform_fee_bps,
                 "previous_stripe_account_id": before.stripe_account_id},
    )  # fmt: skip
    return web.json_response({"money": money_json(money)})
