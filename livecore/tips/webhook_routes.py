"""POST /webhooks/stripe: signed events from Stripe, answered 2xx once applied."""

from __future__ import annotations

import logging

from aiohttp import web

from livecore.appkeys import CONFIG, WEBHOOKS
from livecore.errors import BadRequest, NotFound, PayloadTooLarge
from livecore.tips.stripe.events import MalformedEvent, WebhookRefused, verify

logger = logging.getLogger(__name__)

# Stripe's events are a few KiB; nothing legitimate comes near this.
MAX_EVENT_BYTES = 512 * 1024


def setup(app: web.Application) -> None:
    app.router.add_post("/webhooks/stripe", post_stripe_webhook)


async def post_stripe_webhook(request: web.Request) -> web.Response:
    settings = request.app[CONFIG].stripe
    handler = request.app.get(WEBHOOKS)
    if handler is None or not settings.webhook_secret:
        raise NotFound("Stripe webhooks are not configured on this server")
    if request.content_length is not None and request.content_length > MAX_EVENT_BYTES:
        raise PayloadTooLarge("event too large")
    payload = await request.read()
    if len(payload) > MAX_EVENT_BYTES:
        raise PayloadTooLarge("event too large")
    try:
        event = verify(
            payload, request.headers.get("Stripe-Signature", ""), settings.webhook_secret,
            settings.webhook_tolerance_s,
        )  # fmt: skip
    except WebhookRefused as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        raise BadRequest(f"webhook refused: {exc}") from None
    try:
        outcome = await handler.handle(event)
    except MalformedEvent as exc:
        # Signed by Stripe, yet unreadable here: nothing changed and the event stays
        # unprocessed, so Stripe's retries (or a resend from its dashboard, after a fix)
        # can still apply it. Logged as an error: someone should look.
        logger.error("Stripe event %s (%s) refused: %s", event.id, event.type, exc)
        raise BadRequest(f"webhook refused: {exc}") from None
    return web.json_response({"received": True, "outcome": outcome})
