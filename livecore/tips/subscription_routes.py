"""Subscriptions over HTTP: a creator's tiers (/api/v1/me/tiers, public lists per user and per
stream), subscribing to a tier, and a viewer's subscriptions with cancel and resume."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from livecore.appkeys import CONFIG, STREAM_RECORDS, SUBSCRIPTIONS, USERS
from livecore.auth.requests import require_user
from livecore.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)
from livecore.ids import path_id
from livecore.jsonbody import invalid_message, iso, read_body
from livecore.store.subscriptions import Subscription
from livecore.store.tiers import Tier
from livecore.tips.providers import PaymentDeclined, ProcessorRefused, ProviderUnavailable
from livecore.tips.routes import TEST_MODE_NOTICE
from livecore.tips.subscriptions import (
    AlreadySubscribed,
    IdempotencyKeyRequired,
    NoSuchSubscription,
    SubscribeRefused,
    SubscriptionOver,
    SubscriptionService,
)
from livecore.tips.tiers import (
    MAX_PRICE_MINOR,
    TIER_NAME_MAX,
    NoSuchTier,
    TierExists,
    TierForbidden,
    TierRefused,
    TierRetired,
)

_ID = "{id:[0-9]{1,18}}"  # a bigint; longer digit strings are no id at all
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Where the browser comes back to after checkout: a path on this site, never another site.
_RETURN_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%-]{0,200}")


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/me/tiers", post_my_tier)
    app.router.add_get("/api/v1/me/tiers", get_my_tiers)
    app.router.add_delete(f"/api/v1/me/tiers/{_ID}", delete_my_tier)
    app.router.add_patch(f"/api/v1/me/tiers/{_ID}", patch_my_tier)
    app.router.add_get(f"/api/v1/users/{_ID}/tiers", get_user_tiers)
    app.router.add_get("/api/v1/streams/{slug}/tiers", get_stream_tiers)
    app.router.add_post(f"/api/v1/tiers/{_ID}/subscribe", post_subscribe)
    app.router.add_get("/api/v1/me/subscriptions", get_my_subscriptions)
    app.router.add_post(f"/api/v1/me/subscriptions/{_ID}/cancel", post_cancel_subscription)
    app.router.add_post(f"/api/v1/me/subscriptions/{_ID}/resume", post_resume_subscription)


def tier_json(tier: Tier) -> dict[str, Any]:
    return {
        "id": tier.id,
        "creator_id": tier.creator_id,
        "name": tier.name,
        "price_minor": tier.price_minor,
        "currency": tier.currency,
        "interval": "month",
        "active": tier.active,
        "created_at": tier.created_at.isoformat(),
    }


def subscription_json(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "tier": {"id": sub.tier_id, "name": sub.tier_name, "price_minor": sub.price_minor,
                 "currency": sub.currency},
        "creator": {"id": sub.creator_id, "display_name": sub.creator_name},
        "status": sub.status,
        "access": sub.access,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "current_period_end": iso(sub.current_period_end),
        "grace_until": iso(sub.grace_until),
        "test_mode": sub.provider == "test",
        "created_at": sub.created_at.isoformat(),
    }  # fmt: skip


def _answer(
    service: SubscriptionService, status: int = 200, headers: dict[str, str] | None = None,
    **body: Any,
) -> web.Response:  # fmt: skip
    out: dict[str, Any] = {**body, "test_mode": service.test_mode}
    if service.test_mode:
        out["notice"] = TEST_MODE_NOTICE
    return web.json_response(out, status=status, headers=headers)


def _processor_down(what: str) -> Unavailable:
    return Unavailable(
        f"the payment processor is unavailable right now; {what}", headers={"Retry-After": "30"}
    )


async def post_my_tier(request: web.Request) -> web.Response:
    """Offer a monthly tier: {name, price_minor, currency}."""
    principal = await require_user(request)
    body = await read_body(request)
    name = body.text("name", max_len=TIER_NAME_MAX * 2)
    price = body.integer("price_minor", minimum=1, maximum=MAX_PRICE_MINOR)
    currency = body.text("currency", max_len=3).lower()
    body.check()
    service = request.app[SUBSCRIPTIONS]
    try:
        tier = await service.create_tier(principal.user, name, price, currency)
    except TierForbidden as exc:
        raise Forbidden(str(exc)) from None
    except TierRefused as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except TierExists:
        raise Conflict("you have a tier of this name already (perhaps no longer offered)") from None
    except ProviderUnavailable:
        raise _processor_down("the tier was not created") from None
    except ProcessorRefused as exc:
        raise BadGateway(f"the payment processor refused the price: {exc.reason}") from None
    headers = {"Location": f"/api/v1/me/tiers/{tier.id}"}
    return _answer(service, 201, headers, tier=tier_json(tier))


async def get_my_tiers(request: web.Request) -> web.Response:
    """The logged-in creator's tiers, including those no longer offered."""
    principal = await require_user(request)
    service = request.app[SUBSCRIPTIONS]
    tiers = await service.my_tiers(principal.user)
    return _answer(service, tiers=[tier_json(t) for t in tiers])


async def patch_my_tier(request: web.Request) -> web.Response:
    """Rename a tier: {name}. Its price never changes (subscribers pay what they chose)."""
    principal = await require_user(request)
    tier_id = path_id(request, "id", "tier of yours")
    body = await read_body(request)
    name = body.text("name", max_len=TIER_NAME_MAX * 2)
    body.check()
    service = request.app[SUBSCRIPTIONS]
    try:
        tier = await service.rename_tier(principal.user, tier_id, name)
    except TierRefused as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except TierExists:
        raise Conflict("you have a tier of this name already (perhaps no longer offered)") from None
    except ProviderUnavailable:
        raise _processor_down("the tier was not renamed") from None
    except ProcessorRefused as exc:
        raise BadGateway(f"the payment processor refused the new name: {exc.reason}") from None
    if tier is None:
        raise NotFound("no such tier of yours")
    return _answer(service, tier=tier_json(tier))


async def delete_my_tier(request: web.Request) -> web.Response:
    """Stop offering a tier; its subscriptions continue."""
    principal = await require_user(request)
    service = request.app[SUBSCRIPTIONS]
    tier = await service.retire_tier(principal.user, path_id(request, "id", "tier of yours"))
    if tier is None:
        raise NotFound("no such tier of yours")
    return _answer(service, tier=tier_json(tier))


async def get_user_tiers(request: web.Request) -> web.Response:
    """The tiers a creator offers now."""
    user = await request.app[USERS].get(path_id(request, "id", "user"))
    if user is None:
        raise NotFound("no such user")
    service = request.app[SUBSCRIPTIONS]
    return _answer(service, tiers=[tier_json(t) for t in await service.tiers(user.id)])


async def get_stream_tiers(request: web.Request) -> web.Response:
    """The tiers the stream's owner offers now."""
    stream = await request.app[STREAM_RECORDS].by_slug(request.match_info["slug"])
    if stream is None:
        raise NotFound("no such stream")
    service = request.app[SUBSCRIPTIONS]
    return _answer(service, tiers=[tier_json(t) for t in await service.tiers(stream.owner_id)])


async def post_subscribe(request: web.Request) -> web.Response:
    """Subscribe to a tier. With the processor: 201 with the checkout URL to send the browser
    to (`Idempotency-Key` required; `return_path` in the body is where it comes back to). In
    the test lane: 201 with the subscription, active at once."""
    principal = await require_user(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.fullmatch(key):
        raise BadRequest("the Idempotency-Key header must be 1-255 printable characters")
    body = await read_body(request)
    path = body.text("return_path", max_len=201, default="/")
    body.check()
    if not _RETURN_PATH.fullmatch(path):
        raise Invalid("return_path is invalid", fields={"return_path": "is not a path here"})
    base = request.app[CONFIG].public_url.rstrip("/") + path
    service = request.app[SUBSCRIPTIONS]
    try:
        result = await service.subscribe(
            principal.user, path_id(request, "id", "tier"), idempotency_key=key,
            success_url=base + "?checkout=success&session_id={CHECKOUT_SESSION_ID}",
            cancel_url=base + "?checkout=canceled",
        )  # fmt: skip
    except NoSuchTier:
        raise NotFound("no such tier") from None
    except SubscribeRefused as exc:
        raise Invalid(invalid_message(exc.fields), fields=exc.fields) from None
    except TierRetired:
        raise Conflict("this tier is no longer offered") from None
    except AlreadySubscribed:
        raise Conflict("you already have a subscription to this tier") from None
    except IdempotencyKeyRequired:
        raise BadRequest(
            "an Idempotency-Key header (1-255 printable characters) is required"
        ) from None
    except ProviderUnavailable:
        raise _processor_down("you have not been charged") from None
    except (ProcessorRefused, PaymentDeclined) as exc:
        raise BadGateway(f"the payment processor refused the checkout: {exc.reason}") from None
    if result.subscription is not None:
        return _answer(service, 201, subscription=subscription_json(result.subscription))
    return _answer(service, 201, checkout_url=result.checkout_url, session_id=result.session_id)


async def get_my_subscriptions(request: web.Request) -> web.Response:
    """The logged-in viewer's subscriptions, newest first."""
    principal = await require_user(request)
    service = request.app[SUBSCRIPTIONS]
    subs = await service.subscriptions_of(principal.user)
    return _answer(service, subscriptions=[subscription_json(s) for s in subs])


async def _set_cancel(request: web.Request, cancel: bool) -> web.Response:
    principal = await require_user(request)
    service = request.app[SUBSCRIPTIONS]
    try:
        sub = await service.set_cancel_at_period_end(
            principal.user, path_id(request, "id", "subscription of yours"), cancel
        )
    except NoSuchSubscription:
        raise NotFound("no such subscription of yours") from None
    except SubscriptionOver:
        raise Conflict("this subscription has ended") from None
    except ProviderUnavailable:
        raise _processor_down("nothing was changed") from None
    except (ProcessorRefused, PaymentDeclined) as exc:
        raise BadGateway(f"the payment processor refused the change: {exc.reason}") from None
    return _answer(service, subscription=subscription_json(sub))


async def post_cancel_subscription(request: web.Request) -> web.Response:
    """Cancel at the end of the paid period (access continues until then)."""
    return await _set_cancel(request, True)


async def post_resume_subscription(request: web.Request) -> web.Response:
    """Undo a cancellation that has not taken effect yet."""
    return await _set_cancel(request, False)
