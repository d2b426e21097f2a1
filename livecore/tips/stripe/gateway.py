"""Every Stripe API call livecore makes, through the official client, with Stripe's errors
turned into livecore's: declined, unavailable (with or without a possibly applied effect),
or refused for good; and the tip provider and payout rail made of them.

The client retries nothing (a retry is the caller's decision, made with the same idempotency
key). Answers leave this package as livecore's values (a Payment, a SavedCard, ids, a
subscription read by objects.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import aiohttp
import stripe
from stripe.params import PaymentIntentCreateParams, TransferCreateParams
from stripe.params.checkout import SessionCreateParams, SessionCreateParamsSubscriptionData

from livecore.config import StripeConfig
from livecore.store.tips import Provider, Tip
from livecore.tips.providers import (
    CardPayment,
    Payment,
    PaymentDeclined,
    PayoutFailed,
    ProcessorRefused,
    ProviderUnavailable,
    RefusalKind,
    SavedCard,
)
from livecore.tips.stripe.objects import ProcessorSubscription, parse_subscription

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=stripe.StripeObject)


class StripeGateway:
    def __init__(self, settings: StripeConfig) -> None:
        # With telemetry on, the library reads and writes an id file under ~/.config and
        # probes the platform on the event loop, and reports call timings to Stripe.
        stripe.enable_telemetry = False
        timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        # livecore's own session (made inside the running loop) rather than the library's,
        # which would load a CA bundle file on the event loop; aiohttp verifies TLS with the
        # system's trust store.
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._http = stripe.AIOHTTPClient(timeout=timeout, session=self._session)
        self._client = stripe.StripeClient(
            settings.secret_key,
            base_addresses={"api": settings.api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=0,
        )
        self.publishable_key = settings.publishable_key or None

    async def close(self) -> None:
        await self._session.close()

    async def _call(self, what: str, call: Awaitable[T]) -> dict[str, Any]:
        try:
            answer = await call
        except stripe.CardError as exc:
            reason = exc.user_message or "card declined"
            raise PaymentDeclined(reason, exc.code or "card_declined") from None
        except stripe.IdempotencyError:
            # A request with the same key is in flight or was made with other details: what
            # happened to it is not known from this answer (Stripe itself answered: no outage).
            raise ProviderUnavailable(
                f"{what}: idempotency conflict", unknown=True, outage=False
            ) from None
        except stripe.RateLimitError:
            # Stripe refuses a rate-limited request before doing anything.
            raise ProviderUnavailable(f"{what}: rate limited", outage=False) from None
        except stripe.APIConnectionError as exc:
            # A refused connection never reached Stripe; a timeout or a dropped answer may
            # have, and the outcome is unknown until reconciled.
            reached = not isinstance(exc.__cause__, aiohttp.ClientConnectorError)
            raise ProviderUnavailable(f"{what}: {_cause(exc)}", unknown=reached) from None
        except stripe.APIError as exc:
            # 5xx: Stripe may or may not have applied the request.
            status = exc.http_status
            raise ProviderUnavailable(f"{what}: Stripe error {status}", unknown=True) from None
        except stripe.StripeError as exc:
            # Invalid requests (404s among them), bad keys, missing permissions: refused
            # before anything was done, and refused again if sent again.
            kind = _REFUSALS.get(type(exc), "other")
            param = getattr(exc, "param", None)
            logger.warning("Stripe refused %s (%s): %s", what, kind, exc.user_message or exc)
            raise ProcessorRefused(
                exc.user_message or str(exc), kind, param if isinstance(param, str) else None
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The answer broke off after its headers (the library reads the body outside
            # its own error handling): the request arrived, its outcome is unknown.
            raise ProviderUnavailable(f"{what}: {type(exc).__name__}", unknown=True) from None
        return answer.to_dict()

    async def payment_intent(
        self, tip: Tip, destination: str | None, card: CardPayment | None
    ) -> dict[str, Any]:
        """Make the tip's PaymentIntent; made again with the same parameters it is the same
        one (they depend only on the tip and its card, so a retry is always the same)."""
        params: PaymentIntentCreateParams = {
            "amount": tip.amount_minor,
            "currency": tip.currency,
            "metadata": {"tip_id": str(tip.id), "stream_id": str(tip.stream_id),
                         "viewer_id": str(tip.viewer_id), "creator_id": str(tip.creator_id)},
            "description": f"Tip {tip.id}",
        }  # fmt: skip
        if destination is not None:
            # A destination charge: the creator's account receives it, the platform keeps
            # its share as the application fee.
            params["transfer_data"] = {"destination": destination}
            params["application_fee_amount"] = tip.platform_fee_minor
        if card is None:
            # The browser confirms it (Stripe.js brings the customer back from any redirect).
            params["automatic_payment_methods"] = {"enabled": True}
        else:
            params["payment_method"] = card.payment_method
            params["confirm"] = True
            # Confirmed here, nowhere to send the viewer back to: only methods that never
            # redirect (Stripe otherwise asks for a return_url). A card that needs its bank's
            # check leaves the payment pending with a client secret for the browser.
            params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
            if card.customer is not None:
                # Stripe takes a saved card only with its customer; one not saved yet is
                # saved to the viewer by this payment, for their next tips.
                params["customer"] = card.customer
                params["setup_future_usage"] = "off_session"
        return await self._call(
            "create payment",
            self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": f"livecore-tip-{tip.id}"}
            ),
        )

    async def read_payment_intent(self, payment_ref: str) -> dict[str, Any]:
        return await self._call(
            "read payment", self._client.v1.payment_intents.retrieve_async(payment_ref)
        )

    async def tip_payments(self, tip: Tip) -> list[dict[str, Any]]:
        """The PaymentIntents made for `tip`, found by their metadata. Stripe's search lags
        writes (under a minute, up to an hour in an outage): for old requests only."""
        query = f"metadata['tip_id']:'{tip.id}' AND metadata['viewer_id']:'{tip.viewer_id}'"
        found = await self._call(
            "search payments", self._client.v1.payment_intents.search_async({"query": query})
        )
        data = found.get("data")
        return [
            intent for intent in (data if isinstance(data, list) else [])
            if isinstance(intent, dict)
            and (intent.get("amount"), intent.get("currency")) == (tip.amount_minor, tip.currency)
        ]  # fmt: skip

    async def card(self, payment_method: str) -> SavedCard:
        """The fingerprint of a card (the same for every PaymentMethod of one card), and the
        customer it is saved to."""
        method = await self._call(
            "read payment method", self._client.v1.payment_methods.retrieve_async(payment_method)
        )
        card = method.get("card")
        fingerprint = card.get("fingerprint") if isinstance(card, dict) else None
        customer = method.get("customer")
        return SavedCard(
            str(fingerprint) if fingerprint else None,
            customer if isinstance(customer, str) else None,
        )

    async def customer(self, user_id: int, email: str) -> str:
        customer = await self._call(
            "create customer",
            self._client.v1.customers.create_async(
                {"email": email, "metadata": {"user_id": str(user_id)}},
                {"idempotency_key": f"livecore-customer-{user_id}"},
            ),
        )
        return str(customer["id"])

    async def payment_fee(self, payment_ref: str) -> tuple[str, int, str] | None:
        """(charge id, fee, currency) of a PaymentIntent's charge: the processing fee Stripe
        took, once its balance transaction exists. Tips and subscription invoices alike."""
        intent = await self._call(
            "read payment",
            self._client.v1.payment_intents.retrieve_async(
                payment_ref, {"expand": ["latest_charge.balance_transaction"]}
            ),
        )
        charge = intent.get("latest_charge")
        if not isinstance(charge, dict):
            return None
        txn = charge.get("balance_transaction")
        if not isinstance(txn, dict):
            return None
        return str(charge["id"]), int(txn["fee"]), str(txn["currency"])

    async def create_price(self, tier_id: int, name: str, amount_minor: int, currency: str) -> str:
        price = await self._call(
            "create price",
            self._client.v1.prices.create_async(
                {"unit_amount": amount_minor, "currency": currency,
                 "recurring": {"interval": "month"}, "product_data": {"name": name},
                 "metadata": {"tier_id": str(tier_id)}},
                {"idempotency_key": f"livecore-tier-{tier_id}"},
            ),
        )  # fmt: skip
        return str(price["id"])

    async def rename_price(self, price_id: str, name: str) -> None:
        # Prices are made with product_data: each has a product of its own, named as the tier.
        price = await self._call("read price", self._client.v1.prices.retrieve_async(price_id))
        product = price["product"]
        product_id = product if isinstance(product, str) else str(product["id"])
        await self._call(
            "rename product",
            self._client.v1.products.update_async(product_id, {"name": name}),
        )

    async def checkout(
        self, *, price_id: str, customer_email: str, metadata: dict[str, str],
        application_fee_percent: float | None, destination: str | None, success_url: str,
        cancel_url: str, idempotency_key: str,
    ) -> tuple[str, str]:  # fmt: skip
        subscription_data: SessionCreateParamsSubscriptionData = {"metadata": metadata}
        if destination is not None:
            subscription_data["transfer_data"] = {"destination": destination}
            if application_fee_percent is not None:
                subscription_data["application_fee_percent"] = application_fee_percent
        params: SessionCreateParams = {
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": 1}],
            "customer_email": customer_email,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "subscription_data": subscription_data,
        }
        session = await self._call(
            "create checkout",
            self._client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": idempotency_key}
            ),
        )
        return str(session["id"]), str(session["url"])

    async def set_cancel_at_period_end(
        self, subscription_ref: str, cancel: bool
    ) -> ProcessorSubscription | None:
        """The subscription as Stripe answers it, read by objects.py as the same object
        arriving by webhook is (None when the answer names no subscription id)."""
        answer = await self._call(
            "update subscription",
            self._client.v1.subscriptions.update_async(
                subscription_ref, {"cancel_at_period_end": cancel}
            ),
        )
        return parse_subscription(answer)

    async def transfer(
        self, payout_id: int, amount_minor: int, currency: str, destination: str
    ) -> str:
        params: TransferCreateParams = {
            "amount": amount_minor,
            "currency": currency,
            "destination": destination,
            "metadata": {"payout_id": str(payout_id)},
            "transfer_group": f"payout-{payout_id}",
        }
        try:
            transfer = await self._call(
                "transfer",
                self._client.v1.transfers.create_async(
                    params, {"idempotency_key": f"livecore-payout-{payout_id}"}
                ),
            )
        except ProcessorRefused as exc:
            raise PayoutFailed(exc.reason) from None
        return str(transfer["id"])


# Stripe keeps an idempotency key for 24 hours at least; an hour less, to be safe.
_KEY_KEPT: Final = timedelta(hours=23)

_REFUSALS: Final[dict[type[stripe.StripeError], RefusalKind]] = {
    stripe.InvalidRequestError: "invalid_request",
    stripe.AuthenticationError: "authentication",
    stripe.PermissionError: "permission",
}


def _cause(exc: stripe.APIConnectionError) -> str:
    cause = exc.__cause__
    if isinstance(cause, TimeoutError):
        return "timed out"
    return type(cause).__name__ if cause is not None else "connection failed"


class StripeProvider:
    """Tips through Stripe PaymentIntents; the browser confirms with the client secret."""

    name: Provider = "stripe"
    test_mode = False

    def __init__(self, gateway: StripeGateway) -> None:
        self._gateway = gateway
        self.publishable_key: str | None = gateway.publishable_key

    async def create(self, tip: Tip, destination: str | None, card: CardPayment | None) -> Payment:
        return _payment(await self._gateway.payment_intent(tip, destination, card))

    async def find(self, tip: Tip, destination: str | None, card: CardPayment | None) -> Payment:
        if tip.provider_ref is not None:
            # Read, never made again: an idempotency key is kept only for 24 hours.
            return _payment(await self._gateway.read_payment_intent(tip.provider_ref))
        if datetime.now(UTC) - tip.created_at > _KEY_KEPT:
            # Stripe may have dropped the idempotency key: a request made again would be a
            # second payment if the first one was applied. Look for that one instead (the
            # search has long caught up with a request this old).
            made = await self._gateway.tip_payments(tip)
            if made:
                paid = [intent for intent in made if intent.get("status") == "succeeded"]
                return _payment((paid or made)[0])
        # Stripe answers a request made again with the same idempotency key with the first
        # one's result when it was applied, and applies it now (once) when it was not.
        return _payment(await self._gateway.payment_intent(tip, destination, card))

    async def card(self, payment_method: str) -> SavedCard:
        return await self._gateway.card(payment_method)

    async def customer(self, user_id: int, email: str) -> str | None:
        return await self._gateway.customer(user_id, email)


def _payment(intent: dict[str, Any]) -> Payment:
    status = intent["status"]
    if status == "succeeded":
        return Payment("succeeded", intent["id"])
    if status == "canceled":
        return Payment("failed", intent["id"])
    return Payment("pending", intent["id"], intent.get("client_secret"))


class StripeRail:
    """Payouts as Stripe Connect transfers to the creator's connected account."""

    name: Final = "stripe"

    def __init__(self, gateway: StripeGateway) -> None:
        self._gateway = gateway

    async def transfer(
        self, payout_id: int, amount_minor: int, currency: str, destination: str
    ) -> str:
        return await self._gateway.transfer(payout_id, amount_minor, currency, destination)
