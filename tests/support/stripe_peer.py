"""A Stripe-shaped HTTP peer on 127.0.0.1 for tests: livecore's real `stripe` client talks to
it instead of api.stripe.com, and tests drive it the way Stripe's dashboard and card holders
would, getting back the webhook events Stripe would send.

It owns in-memory objects in Stripe's shapes (as of `API_VERSION`), Stripe's idempotency
rules, its error envelope, fault injection (5xx, 429, hangs, dropped connections, refused
connections) and webhook signing. It is a peer, not a Stripe clone: only the endpoints and
fields livecore uses are here, and creations (`*.created` of intents, customers, prices,
transfers) emit no events. Imports nothing from livecore.
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from aiohttp import web

# The version whose object shapes the peer follows (the one stripe 16.1 pins): the invoice
# names its subscription under `parent.subscription_details`, periods live on the
# subscription items, and an invoice lists its payments instead of having a `charge`.
API_VERSION: Final = "2026-10-28.endive"
DISPUTE_FEE: Final = 1500  # what Stripe charges for a dispute (and returns if it is won)

FaultKind = Literal["500", "429", "timeout", "timeout_after_commit", "stall_body", "reset"]
Obj = dict[str, Any]
Action = Callable[["_Call"], Obj]

# Collection path → (id prefix, object name): what GET /v1/<collection>/<id> serves and what
# `expand[]` can resolve.
_KINDS: Final = {
    "payment_intents": ("pi", "payment_intent"),
    "charges": ("ch", "charge"),
    "balance_transactions": ("txn", "balance_transaction"),
    "customers": ("cus", "customer"),
    "products": ("prod", "product"),
    "prices": ("price", "price"),
    "checkout/sessions": ("cs", "checkout.session"),
    "subscriptions": ("sub", "subscription"),
    "invoices": ("in", "invoice"),
    "transfers": ("tr", "transfer"),
    "refunds": ("re", "refund"),
    "disputes": ("dp", "dispute"),
}
# Test payment methods that decline, as in https://docs.stripe.com/testing#declined-payments.
_DECLINES: Final = {
    "pm_card_chargeDeclined": ("generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
}
# The test card whose bank asks the card holder to authenticate every payment: on session the
# PaymentIntent waits for it (requires_action); off session it is declined.
_AUTHENTICATE: Final = "pm_card_authenticationRequired"
_ALNUM: Final = string.ascii_letters + string.digits
_PARAM_NAME: Final = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


@dataclass(frozen=True, slots=True)
class PeerRequest:
    """One request as the peer received it (params as Stripe's form encoding sent them)."""

    method: str
    path: str
    params: Obj
    idempotency_key: str | None
    fault: FaultKind | None


@dataclass(slots=True)
class _Fault:
    path_prefix: str
    kind: FaultKind
    remaining: int


@dataclass(frozen=True, slots=True)
class _Stored:
    """The first answer to an idempotency key, replayed byte for byte."""

    method: str
    path: str
    params: Obj
    status: int
    body: bytes
    request_id: str


@dataclass(frozen=True, slots=True)
class _Call:
    """What an endpoint gets: parsed params, path parts, and the event's `request` field."""

    params: Obj
    match: dict[str, str]
    request: Obj = field(default_factory=lambda: {"id": None, "idempotency_key": None})


# Changes made from the dashboard (and by Stripe itself) carry no API request.
_DASHBOARD: Final = _Call({}, {})


class _Failure(Exception):
    """An answer in Stripe's error envelope."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        error: Obj = {"type": type_, "message": message}
        if code is not None:
            error |= {"code": code, "doc_url": f"https://stripe.com/docs/error-codes/{code}"}
        if param is not None:
            error["param"] = param
        self.error = error | extra

    def body(self) -> Obj:
        return {"error": self.error}


_FAULT_ERRORS: Final = {
    "500": _Failure(500, "api_error", "An unknown error occurred."),
    "429": _Failure(
        429, "invalid_request_error", "Request rate limit exceeded. Retry later.", code="rate_limit"
    ),
}


def _invalid(message: str, *, code: str | None = None, param: str | None = None) -> _Failure:
    return _Failure(400, "invalid_request_error", message, code=code, param=param)


def _no_such(kind: str, object_id: str, param: str = "id") -> _Failure:
    message = f"No such {kind}: '{object_id}'"
    return _Failure(404, "invalid_request_error", message, code="resource_missing", param=param)


def new_id(prefix: str) -> str:
    """An id shaped like Stripe's: a type prefix, then 24 letters and digits."""
    return f"{prefix}_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def stripe_fee(amount: int) -> int:
    """Stripe's US card pricing: 2.9% + 30, rounded half up in minor units."""
    return (amount * 29 + 500) // 1000 + 30


def card_fingerprint(payment_method: str) -> str:
    """Stripe gives a card the same fingerprint every time it is used."""
    return hashlib.sha256(payment_method.encode()).hexdigest()[:16]


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send with this webhook body."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event_body(event: Obj) -> bytes:
    """The webhook body for an event, pretty-printed as Stripe sends it."""
    return json.dumps(event, indent=2).encode()


def parse_form(encoded: str) -> Obj:
    """Parse Stripe's form encoding (`a[b][c]=v`, `items[0][price]=p`, `expand[]=x`)."""
    root: Obj = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        match = _PARAM_NAME.fullmatch(name)
        if match is None:
            raise _invalid(f"Invalid parameter name: {name}")
        keys = [match[1], *re.findall(r"\[([^\[\]]*)\]", match[2])]
        node = root
        for depth, key in enumerate(keys):
            if key == "":
                if depth != len(keys) - 1:
                    raise _invalid(f"Invalid parameter name: {name}")
                key = str(len(node))  # `x[]=` appends
            if depth == len(keys) - 1:
                if key in node:
                    raise _invalid(f"Invalid parameter: {name} is given twice")
                node[key] = value
                break
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise _invalid(f"Invalid hash: {name}")
            node = child
    return _lists(root)


def _lists(node: Obj) -> Obj:
    # Hashes keyed 0, 1, 2… are arrays, as stripe-python encodes lists (`line_items[0][price]`).
    out: Obj = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _lists(value)
            if value and all(k.isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
        out[key] = value
    return out


def _months_after(anchor: int, months: int) -> int:
    start = datetime.fromtimestamp(anchor, UTC)
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return int(start.replace(year=year, month=month0 + 1, day=day).timestamp())


def _next_period_end(anchor: int, after: int) -> int:
    # Counted from the anchor, as Stripe bills: Jan 31 → Feb 28 → Mar 31, never drifting.
    months = 1
    while (end := _months_after(anchor, months)) <= after:
        months += 1
    return end


def _allow(params: Obj, *names: str) -> None:
    for name in params:
        if name not in names and name != "expand":
            raise _invalid(f"Received unknown parameter: {name}", param=name)


def _text(params: Obj, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise _invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    if not isinstance(value, str):
        raise _invalid(f"Invalid string: {name}", param=name)
    return value


def _integer(params: Obj, name: str, *, required: bool = False) -> int | None:
    value = _text(params, name, required=required)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise _invalid(
            f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
        ) from None


def _flag(params: Obj, name: str) -> bool | None:
    value = _text(params, name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise _invalid(f"Invalid boolean: {value}", param=name)
    return value == "true"


def _hash(params: Obj, name: str) -> Obj:
    value = params.get(name, {})
    if not isinstance(value, dict):
        raise _invalid(f"Invalid object: {name}", param=name)
    return value


def _dispute_transaction(amount: int, fee: int, currency: str) -> Obj:
    """A dispute's balance transaction: the disputed money, and the dispute fee with it."""
    return {
        "id": new_id("txn"), "object": "balance_transaction", "amount": amount,
        "currency": currency, "fee": fee, "net": amount - fee, "type": "adjustment",
        "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
        "fee_details": [{"amount": fee, "currency": currency, "description": "Dispute fee",
                         "type": "stripe_fee", "application": None}],
        "created": int(time.time()), "status": "available",
    }  # fmt: skip


def _metadata(params: Obj, name: str = "metadata") -> dict[str, str]:
    return {k: v for k, v in _hash(params, name).items() if isinstance(v, str)}


def _list(obj_url: str, data: list[Obj]) -> Obj:
    return {"object": "list", "data": data, "has_more": False, "url": obj_url}


class StripePeer:
    """Stripe's API on 127.0.0.1, in memory.

    State is public for assertions: `requests` (every request received), `events` (every
    webhook event generated) and one dict per object kind (`payment_intents`, `charges`, …).
    """

    def __init__(self) -> None:
        self.requests: list[PeerRequest] = []
        self.events: list[Obj] = []
        self.accounts: set[str] = set()
        self.payment_intents: dict[str, Obj] = {}
        self.charges: dict[str, Obj] = {}
        self.balance_transactions: dict[str, Obj] = {}
        self.customers: dict[str, Obj] = {}
        # Concrete PaymentMethods: each use of a test card (pm_card_visa, …) makes one, as in
        # Stripe, and a card saved to a customer is one attached to it.
        self.payment_methods: dict[str, Obj] = {}
        self.products: dict[str, Obj] = {}
        self.prices: dict[str, Obj] = {}
        self.checkout_sessions: dict[str, Obj] = {}
        self.subscriptions: dict[str, Obj] = {}
        self.invoices: dict[str, Obj] = {}
        self.transfers: dict[str, Obj] = {}
        self.refunds: dict[str, Obj] = {}
        self.disputes: dict[str, Obj] = {}
        self._collections: dict[str, dict[str, Obj]] = {
            "payment_intents": self.payment_intents,
            "charges": self.charges,
            "balance_transactions": self.balance_transactions,
            "customers": self.customers,
            "products": self.products,
            "prices": self.prices,
            "checkout/sessions": self.checkout_sessions,
            "subscriptions": self.subscriptions,
            "invoices": self.invoices,
            "transfers": self.transfers,
            "refunds": self.refunds,
            "disputes": self.disputes,
        }
        self._by_prefix = {prefix: self._collections[c] for c, (prefix, _) in _KINDS.items()}
        self._idempotent: dict[str, _Stored] = {}
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0
        # Set when connections are cut (stop_listening, close): hung requests end then.
        self._cut = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base, e.g. "http://127.0.0.1:38211" (fixed from start() to close())."""
        if not self._port:
            raise RuntimeError("the peer is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        # Before the collections: "search" is no PaymentIntent id.
        search = self._endpoint(self._search_payment_intents)
        app.router.add_get("/v1/payment_intents/search", search)
        for collection in self._collections:
            retrieve = partial(self._retrieve, collection)
            app.router.add_get(f"/v1/{collection}/{{id}}", self._endpoint(retrieve))
        posts: dict[str, Action] = {
            "/v1/payment_intents": self._create_payment_intent,
            "/v1/customers": self._create_customer,
            "/v1/prices": self._create_price,
            "/v1/products/{id}": self._update_product,
            "/v1/checkout/sessions": self._create_checkout_session,
            "/v1/subscriptions/{id}": self._update_subscription,
            "/v1/transfers": self._create_transfer,
            "/v1/refunds": self._create_refund,
        }
        for path, action in posts.items():
            app.router.add_post(path, self._endpoint(action))
        app.router.add_delete("/v1/subscriptions/{id}", self._endpoint(self._cancel_subscription))
        app.router.add_get("/v1/payment_methods/{id}", self._endpoint(self._payment_method))
        app.router.add_get("/checkout/{id}", self._checkout_page)
        app.router.add_route("*", "/{tail:.*}", self._endpoint(self._unknown_url))
        # handler_cancellation: a hung handler ends when its client gives up; a short
        # shutdown bound so close() never waits on one.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        await self.start_listening()

    async def start_listening(self) -> None:
        """Accept connections again, on the same port."""
        if self._runner is None:
            raise RuntimeError("the peer is not started")
        if self._site is not None:
            return
        self._cut = asyncio.Event()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await self._site.start()
        self._port = self._site.port

    async def stop_listening(self) -> None:
        """Refuse new connections and cut open ones, as if Stripe were unreachable."""
        if self._runner is None or self._site is None:
            return
        await self._site.stop()
        self._site = None
        self._cut.set()
        server = self._runner.server
        if server is None:
            return
        for connection in server.connections:
            connection.force_close()
        # Let the cut connections finish, so a pooled keep-alive connection on the client's
        # side has seen its EOF before the test's next request (which must be refused).
        async with asyncio.timeout(2):
            while server.connections:  # noqa: ASYNC110  (aiohttp offers nothing to wait on)
                await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Stop listening and release everything; hung requests are cut, not waited for."""
        await self.stop_listening()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- test controls ------------------------------------------------------------------

    def fail_next(self, path_prefix: str, kind: FaultKind, times: int = 1) -> None:
        """Make the next `times` requests whose path starts with `path_prefix` fail.

        "500" and "429" answer Stripe's api_error and rate-limit errors; "timeout" never
        answers (until the client gives up or the peer stops listening); "reset" closes the
        connection without an answer. None of these does anything or stores an idempotent
        result. "timeout_after_commit" does the request and stores its result under its
        Idempotency-Key, then never answers: a retry with that key gets the result.
        "stall_body" does the same but first sends the status line, headers and one byte of
        the body (the stripe client then raises a bare TimeoutError, not a StripeError).
        """
        self._faults.append(_Fault(path_prefix, kind, times))

    def expire_idempotency_keys(self) -> None:
        """Forget every stored idempotency key, as Stripe does once they are 24 hours old: a
        request made again with one is then applied again."""
        self._idempotent.clear()

    def add_account(self) -> str:
        """Register a connected account and return its id ("acct_…")."""
        account = new_id("acct")
        self.accounts.add(account)
        return account

    # -- driving state, as Stripe's dashboard and card holders would ----------------------

    def save_card(self, customer: str, card: str = "pm_card_visa") -> str:
        """A card holder saves a test card to a customer (a SetupIntent confirmed in their
        browser): returns the new PaymentMethod's id, attached to `customer`."""
        self._known("customers", customer)
        method = self._new_payment_method(card)
        method["customer"] = customer
        return str(method["id"])

    def succeed_payment_intent(self, pi_id: str) -> list[Obj]:
        """The customer pays: a charge, then charge.succeeded and payment_intent.succeeded."""
        intent = self._known("payment_intents", pi_id)
        if intent["status"] in ("succeeded", "canceled"):
            raise ValueError(f"{pi_id} is {intent['status']}")
        return self._succeed(intent, _DASHBOARD)

    def fail_payment_intent(self, pi_id: str) -> list[Obj]:
        """The customer's card is declined: payment_intent.payment_failed."""
        intent = self._known("payment_intents", pi_id)
        if intent["status"] in ("succeeded", "canceled"):
            raise ValueError(f"{pi_id} is {intent['status']}")
        return self._decline(intent, "pm_card_chargeDeclined", _DASHBOARD)

    def complete_checkout(self, cs_id: str) -> list[Obj]:
        """The customer completes a subscription Checkout Session and the first invoice is paid.

        Returns checkout.session.completed, customer.subscription.created, invoice.paid.
        """
        session = self._known("checkout/sessions", cs_id)
        if session["status"] != "open":
            raise ValueError(f"{cs_id} is {session['status']}")
        customer = session["customer"] or self._new_customer(session["customer_email"], {})["id"]
        (line,) = session["_line_items"]
        price = self.prices[line["price"]]
        details = session["_subscription_data"]
        now = int(time.time())
        sub_id = new_id("sub")
        quantity = int(line.get("quantity", "1"))
        item = {
            "id": new_id("si"), "object": "subscription_item", "created": now,
            "current_period_start": now, "current_period_end": _next_period_end(now, now),
            "metadata": {}, "price": copy.deepcopy(price), "quantity": quantity,
            "subscription": sub_id,
        }  # fmt: skip
        transfer = _hash(details, "transfer_data")
        fee_percent = _text(details, "application_fee_percent")
        sub = self.subscriptions[sub_id] = {
            "id": sub_id, "object": "subscription", "created": now, "livemode": False,
            "application_fee_percent": float(fee_percent) if fee_percent else None,
            "billing_cycle_anchor": now, "cancel_at": None, "cancel_at_period_end": False,
            "canceled_at": None, "collection_method": "charge_automatically",
            "currency": price["currency"], "customer": customer,
            "default_payment_method": new_id("pm"), "description": None, "ended_at": None,
            "items": _list(f"/v1/subscription_items?subscription={sub_id}", [item]),
            "latest_invoice": None, "metadata": _metadata(details), "start_date": now,
            "status": "active",
            "transfer_data": {"destination": transfer["destination"], "amount_percent": None}
            if "destination" in transfer else None,
        }  # fmt: skip
        invoice = self._invoice(sub, "subscription_create", paid=True)
        session.update(
            status="complete", payment_status="paid", customer=customer, subscription=sub_id
        )
        session["customer_details"] = {"email": self.customers[customer]["email"]}
        call = _DASHBOARD
        return [
            self._emit("checkout.session.completed", self._public(session), call),
            self._emit("customer.subscription.created", sub, call),
            self._emit("invoice.paid", invoice, call),
        ]

    def renew(self, sub_id: str, paid: bool = True) -> list[Obj]:
        """The period ends: the subscription renews for one more month and is invoiced.

        Returns invoice.paid (or invoice.payment_failed) and customer.subscription.updated,
        which turns past_due when unpaid (active again once a later renewal is paid). A
        subscription set to cancel at period end ends instead: customer.subscription.deleted.
        """
        sub = self._known("subscriptions", sub_id)
        if sub["status"] == "canceled":
            raise ValueError(f"{sub_id} is canceled")
        item = sub["items"]["data"][0]
        if sub["cancel_at_period_end"]:
            return self._end(sub, _DASHBOARD, ended_at=item["current_period_end"])
        before = {"items": copy.deepcopy(sub["items"])}
        start = item["current_period_end"]
        item["current_period_start"] = start
        item["current_period_end"] = _next_period_end(sub["billing_cycle_anchor"], start)
        invoice = self._invoice(sub, "subscription_cycle", paid=paid)
        status = "active" if paid else "past_due"
        if sub["status"] != status:
            before["status"] = sub["status"]
            sub["status"] = status
        call = _DASHBOARD
        return [
            self._emit("invoice.paid" if paid else "invoice.payment_failed", invoice, call),
            self._emit("customer.subscription.updated", sub, call, before),
        ]

    def end_subscription(self, sub_id: str) -> list[Obj]:
        """Cancel now (as from the dashboard): customer.subscription.deleted."""
        sub = self._known("subscriptions", sub_id)
        if sub["status"] == "canceled":
            raise ValueError(f"{sub_id} is canceled")
        return self._end(sub, _DASHBOARD, ended_at=int(time.time()))

    def refund(self, charge_id: str, amount: int | None = None) -> list[Obj]:
        """Refund part or all of what is left: charge.refunded (with `refunds`), refund.created."""
        charge = self._known("charges", charge_id)
        _, events = self._refund(charge, amount, {}, _DASHBOARD)
        return events

    def dispute(self, charge_id: str) -> list[Obj]:
        """The card holder disputes the whole charge: charge.dispute.created."""
        charge = self._known("charges", charge_id)
        dp_id = new_id("dp")
        dispute = self.disputes[dp_id] = {
            "id": dp_id, "object": "dispute", "created": int(time.time()), "livemode": False,
            "amount": charge["amount"], "currency": charge["currency"], "charge": charge["id"],
            "payment_intent": charge["payment_intent"], "reason": "fraudulent",
            "status": "needs_response", "is_charge_refundable": False, "metadata": {},
            "evidence_details": {"due_by": int(time.time()) + 7 * 86400},
            "balance_transactions": [_dispute_transaction(-charge["amount"], DISPUTE_FEE,
                                                          charge["currency"])],
        }  # fmt: skip
        charge["disputed"] = True
        return [self._emit("charge.dispute.created", dispute, _DASHBOARD)]

    def close_dispute(self, dp_id: str, won: bool) -> list[Obj]:
        """The dispute is decided: charge.dispute.closed with status "won" or "lost"."""
        dispute = self._known("disputes", dp_id)
        before = {"status": dispute["status"]}
        dispute["status"] = "won" if won else "lost"
        if won:  # the money and the dispute fee come back
            dispute["balance_transactions"].append(
                _dispute_transaction(dispute["amount"], -DISPUTE_FEE, dispute["currency"])
            )
        return [self._emit("charge.dispute.closed", dispute, _DASHBOARD, before)]

    # -- HTTP plumbing ------------------------------------------------------------------

    def _endpoint(self, action: Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, action)

        return handle

    async def _serve(self, request: web.Request, action: Action) -> web.StreamResponse:
        request_id = new_id("req")
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        fault = self._take_fault(request.path)
        try:
            params = parse_form(request.query_string)
            if request.method == "POST":
                params |= parse_form(await request.text())
            unparsable = None
        except _Failure as exc:
            params, unparsable = {}, exc
        self.requests.append(PeerRequest(request.method, request.path, params, key, fault))
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        if key is not None:
            headers["Idempotency-Key"] = key
        if fault == "500" or fault == "429":
            failure = _FAULT_ERRORS[fault]
            return web.json_response(failure.body(), status=failure.status, headers=headers)
        if fault == "reset":
            return self._drop(request)
        if fault == "timeout":
            return await self._hang(request)
        stored = self._idempotent.get(key) if key is not None else None
        if stored is not None:
            if (stored.method, stored.path, stored.params) != (
                request.method,
                request.path,
                params,
            ):
                message = (
                    "Keys for idempotent requests can only be used with the same parameters they"
                    f" were first used with. Try using a key other than '{key}' if you meant to"
                    " execute a different request."
                )
                body = _Failure(400, "idempotency_error", message).body()
                return web.json_response(body, status=400, headers=headers)
            if fault in ("timeout_after_commit", "stall_body"):
                return await self._hang(request)
            headers |= {"Idempotent-Replayed": "true", "Original-Request": stored.request_id}
            return self._json(stored.body, stored.status, headers)
        status, answer = self._run(request, action, params, unparsable, key, request_id)
        # Stripe saves an answer once the endpoint began executing (a success or a decline),
        # never for requests refused before that: https://docs.stripe.com/api/idempotent_requests
        if key is not None and status in (200, 402):
            self._idempotent[key] = _Stored(
                request.method, request.path, params, status, answer, request_id
            )
        if fault == "timeout_after_commit":
            return await self._hang(request)
        if fault == "stall_body":
            stalled = web.StreamResponse(status=status, headers=headers)
            stalled.content_type = "application/json"
            stalled.content_length = len(answer)
            await stalled.prepare(request)
            await stalled.write(answer[:1])
            return await self._hang(request)
        return self._json(answer, status, headers)

    def _run(
        self,
        request: web.Request,
        action: Action,
        params: Obj,
        unparsable: _Failure | None,
        key: str | None,
        request_id: str,
    ) -> tuple[int, bytes]:
        try:
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer rk_test_") and request.method != "GET":
                # A restricted key, here a read-only one: Stripe answers 403.
                raise _Failure(
                    403, "invalid_request_error",
                    "This restricted key may only read: it lacks the permission to write.",
                )  # fmt: skip
            if not auth.startswith(("Bearer sk_test_", "Bearer rk_test_")):
                raise _Failure(
                    401, "invalid_request_error",
                    "Invalid API Key provided. This peer accepts any key starting sk_test_"
                    " (or rk_test_, a restricted key that may only read).",
                )  # fmt: skip
            if unparsable is not None:
                raise unparsable
            call = _Call(
                params, dict(request.match_info), {"id": request_id, "idempotency_key": key}
            )
            return 200, json.dumps(self._expand(action(call), params.get("expand"))).encode()
        except _Failure as failure:
            return failure.status, json.dumps(failure.body()).encode()

    @staticmethod
    def _json(body: bytes, status: int, headers: dict[str, str]) -> web.Response:
        return web.Response(
            body=body, status=status, headers=headers, content_type="application/json"
        )

    def _take_fault(self, path: str) -> FaultKind | None:
        for fault in self._faults:
            if path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        # Close without a byte of answer; aiohttp then fails to write the response below
        # and, seeing the connection gone, drops it quietly.
        if request.transport is not None:
            request.transport.close()
        return web.Response()

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        # Ends by cancellation when the client disconnects (handler_cancellation), or when
        # the peer cuts its connections.
        await self._cut.wait()
        return self._drop(request)

    async def _checkout_page(self, request: web.Request) -> web.Response:
        # Where a session's `url` leads; tests complete it with complete_checkout().
        if request.match_info["id"] not in self.checkout_sessions:
            raise web.HTTPNotFound()
        return web.Response(text=f"Stripe Checkout (test peer) for {request.match_info['id']}")

    def _unknown_url(self, call: _Call) -> Obj:
        raise _Failure(
            404, "invalid_request_error", f"Unrecognized request URL: /{call.match['tail']}"
        )

    def _emit(self, kind: str, obj: Obj, call: _Call, previous: Obj | None = None) -> Obj:
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = {
            "id": new_id("evt"), "object": "event", "api_version": API_VERSION,
            "created": int(time.time()), "livemode": False, "type": kind, "data": data,
            "pending_webhooks": 1, "request": dict(call.request),
        }  # fmt: skip
        self.events.append(event)
        return event

    def _known(self, collection: str, object_id: str) -> Obj:
        # For the drivers: a test naming an object the peer never made is a bug in the test.
        found = self._collections[collection].get(object_id)
        if found is None:
            raise KeyError(f"the peer has no {_KINDS[collection][1]} {object_id!r}")
        return found

    def _get(self, collection: str, object_id: str, param: str = "id") -> Obj:
        found = self._collections[collection].get(object_id)
        if found is None:
            raise _no_such(_KINDS[collection][1], object_id, param)
        return found

    @staticmethod
    def _public(obj: Obj) -> Obj:
        # Fields starting "_" are the peer's own notes (e.g. a session's line items).
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _expand(self, obj: Obj, paths: Any) -> Obj:
        obj = self._public(obj)
        if paths is None:
            return obj
        if not isinstance(paths, list):
            raise _invalid("Invalid array", param="expand")
        for path in paths:
            obj = self._expand_path(obj, str(path).split("."), str(path))
        return obj

    def _expand_path(self, obj: Obj, fields: list[str], path: str) -> Obj:
        value = obj.get(fields[0])
        if value is None and fields[0] in obj:
            return obj  # an unset expandable field stays null
        if isinstance(value, str):
            target = self._by_prefix.get(value.split("_")[0], {}).get(value)
            if target is None:
                raise _invalid(f"This property cannot be expanded ({path}).", param="expand")
            value = self._public(target)
        if not isinstance(value, dict):
            raise _invalid(f"This property cannot be expanded ({path}).", param="expand")
        if len(fields) > 1:
            value = self._expand_path(value, fields[1:], path)
        return obj | {fields[0]: value}

    # -- endpoints ----------------------------------------------------------------------

    def _payment_method(self, call: _Call) -> Obj:
        """A saved PaymentMethod, or one of Stripe's test cards (pm_card_*) as a new one."""
        pm_id = call.match["id"]
        found = self.payment_methods.get(pm_id)
        if found is not None:
            return found
        if not pm_id.startswith("pm_card_"):
            raise _no_such("PaymentMethod", pm_id)
        return self._payment_method_shape(pm_id, pm_id)

    @staticmethod
    def _payment_method_shape(pm_id: str, card: str) -> Obj:
        return {
            "id": pm_id, "object": "payment_method", "type": "card", "livemode": False,
            "created": int(time.time()), "customer": None, "metadata": {},
            "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034,
                     "fingerprint": card_fingerprint(card), "funding": "credit",
                     "last4": "4242"},
            "_test_card": card, "_used": False,
        }  # fmt: skip

    def _new_payment_method(self, card: str) -> Obj:
        method = self._payment_method_shape(new_id("pm"), card)
        self.payment_methods[method["id"]] = method
        return method

    def _usable_payment_method(self, pm_id: str, customer: str | None) -> Obj:
        """The PaymentMethod a PaymentIntent may use, refused as Stripe refuses it."""
        method = self.payment_methods.get(pm_id)
        if method is None:
            if not pm_id.startswith("pm_card_"):
                raise _no_such("PaymentMethod", pm_id, "payment_method")
            return self._new_payment_method(pm_id)  # a test card: a new PaymentMethod
        owner = method["customer"]
        if owner is not None and customer is None:
            raise _invalid(
                f"The PaymentMethod {pm_id} is attached to a Customer: pass that Customer as"
                " `customer` to use it.", param="customer",
            )  # fmt: skip
        if owner is not None and owner != customer:
            raise _invalid(
                f"The PaymentMethod {pm_id} does not belong to the Customer {customer}.",
                param="payment_method",
            )  # fmt: skip
        if owner is None and method["_used"]:
            raise _invalid(
                f"The PaymentMethod {pm_id} was used once without being attached to a"
                " Customer, and cannot be used again: attach it to a Customer to reuse it.",
                param="payment_method",
            )  # fmt: skip
        return method

    def _search_payment_intents(self, call: _Call) -> Obj:
        """Stripe's search, for the one kind of query livecore makes: metadata values joined
        by AND (`metadata['tip_id']:'12' AND metadata['viewer_id']:'3'`)."""
        query = _text(call.params, "query", required=True)
        assert query is not None
        wanted = {}
        for clause in query.split(" AND "):
            match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", clause.strip())
            if match is None:
                raise _invalid(f"This peer cannot search for {clause!r}.", param="query")
            wanted[match[1]] = match[2]
        found = [
            self._public(pi) for pi in self.payment_intents.values()
            if all(pi["metadata"].get(k) == v for k, v in wanted.items())
        ]  # fmt: skip
        return {"object": "search_result", "url": "/v1/payment_intents/search",
                "has_more": False, "next_page": None, "data": found[::-1]}  # fmt: skip

    def _retrieve(self, collection: str, call: _Call) -> Obj:
        return self._get(collection, call.match["id"])

    def _create_payment_intent(self, call: _Call) -> Obj:
        p = call.params
        _allow(
            p, "amount", "currency", "metadata", "description", "automatic_payment_methods",
            "application_fee_amount", "transfer_data", "payment_method", "confirm",
            "off_session", "customer", "receipt_email", "statement_descriptor_suffix",
            "payment_method_types", "setup_future_usage", "return_url",
        )  # fmt: skip
        amount = _integer(p, "amount", required=True)
        currency = _text(p, "currency", required=True)
        assert amount is not None and currency is not None
        if amount < 50:
            raise _invalid(
                "Amount must be at least 50 cents.", code="amount_too_small", param="amount"
            )
        customer = _text(p, "customer")
        if customer is not None:
            self._get("customers", customer, "customer")
        payment_method = _text(p, "payment_method")
        method = None
        if payment_method is not None:
            method = self._usable_payment_method(payment_method, customer)
            payment_method = method["id"]
        confirm = _flag(p, "confirm")
        if confirm and payment_method is None:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state", param="payment_method",
            )  # fmt: skip
        transfer = _hash(p, "transfer_data")
        if "destination" in transfer and transfer["destination"] not in self.accounts:
            raise _invalid(
                f"No such destination: '{transfer['destination']}'",
                code="account_invalid", param="transfer_data[destination]",
            )  # fmt: skip
        automatic = _hash(p, "automatic_payment_methods")
        # Without payment_method_types, automatic payment methods are on (API 2023-08-16 on),
        # and they may redirect unless told never to: a server-side confirmation then needs
        # somewhere to send the customer back to.
        redirects = "payment_method_types" not in p and (
            not automatic
            or (automatic.get("enabled") == "true" and automatic.get("allow_redirects") != "never")
        )
        if confirm and redirects and _text(p, "return_url") is None:
            raise _invalid(
                "A `return_url` is needed to confirm this PaymentIntent: its automatic payment"
                " methods may redirect the customer. Pass one, or set"
                " `automatic_payment_methods[allow_redirects]` to `never`.",
                param="return_url",
            )  # fmt: skip
        save = _text(p, "setup_future_usage")
        if save is not None and save not in ("on_session", "off_session"):
            raise _invalid(f"Invalid setup_future_usage: {save}", param="setup_future_usage")
        pi_id = new_id("pi")
        intent = self.payment_intents[pi_id] = {
            "id": pi_id, "object": "payment_intent", "created": int(time.time()),
            "livemode": False, "amount": amount, "amount_received": 0,
            "currency": currency.lower(),
            "application_fee_amount": _integer(p, "application_fee_amount"),
            "automatic_payment_methods": {"enabled": automatic.get("enabled") == "true",
                                          "allow_redirects": automatic.get("allow_redirects")}
            if automatic else None,
            "cancellation_reason": None, "capture_method": "automatic_async",
            "client_secret": f"{pi_id}_secret_{new_id('x')[2:]}",
            "confirmation_method": "automatic", "customer": customer,
            "description": _text(p, "description"), "last_payment_error": None,
            "latest_charge": None, "metadata": _metadata(p), "payment_method": payment_method,
            "payment_method_types": ["card"], "setup_future_usage": save,
            "status": "requires_confirmation" if payment_method else "requires_payment_method",
            "transfer_data": {"destination": transfer["destination"]}
            if "destination" in transfer else None,
        }  # fmt: skip
        if confirm:
            assert method is not None
            method["_used"] = True
            card = method["_test_card"]
            if card == _AUTHENTICATE and not _flag(p, "off_session"):
                intent.update(status="requires_action", next_action={
                    "type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"},
                })  # fmt: skip
                return intent
            if card in _DECLINES or card == _AUTHENTICATE:
                self._decline(intent, card, call)
                error = copy.deepcopy(intent["last_payment_error"])
                raise _Failure(
                    402, "card_error", error.pop("message"), code=error.pop("code"),
                    **error, payment_intent=copy.deepcopy(intent),
                )  # fmt: skip
            if save is not None and customer is not None and method["customer"] is None:
                method["customer"] = customer  # saved for later payments
            self._succeed(intent, call)
        return intent

    def _create_customer(self, call: _Call) -> Obj:
        _allow(call.params, "email", "name", "metadata", "description")
        return self._new_customer(_text(call.params, "email"), _metadata(call.params))

    def _create_price(self, call: _Call) -> Obj:
        p = call.params
        # Only `product_data` (a new product per price), as livecore creates prices.
        _allow(p, "unit_amount", "currency", "recurring", "product_data", "metadata", "nickname")
        unit_amount = _integer(p, "unit_amount", required=True)
        currency = _text(p, "currency", required=True)
        name = _text(_hash(p, "product_data"), "name")
        assert currency is not None
        if name is None:
            raise _invalid(
                "Missing required param: product_data[name].", code="parameter_missing",
                param="product_data[name]",
            )  # fmt: skip
        product = new_id("prod")
        self.products[product] = {
            "id": product, "object": "product", "created": int(time.time()), "livemode": False,
            "active": True, "name": name, "metadata": {},
        }  # fmt: skip
        recurring = _hash(p, "recurring")
        price_id = new_id("price")
        price = self.prices[price_id] = {
            "id": price_id, "object": "price", "created": int(time.time()), "livemode": False,
            "active": True, "billing_scheme": "per_unit", "currency": currency.lower(),
            "lookup_key": None, "metadata": _metadata(p),
            "nickname": _text(p, "nickname"), "product": product,
            "recurring": None, "type": "one_time", "unit_amount": unit_amount,
        }  # fmt: skip
        if recurring:
            interval = _text(recurring, "interval", required=True)
            price["type"] = "recurring"
            price["recurring"] = {
                "interval": interval, "interval_count": int(recurring.get("interval_count", "1")),
                "usage_type": "licensed", "meter": None, "trial_period_days": None,
            }  # fmt: skip
        return price

    def _update_product(self, call: _Call) -> Obj:
        _allow(call.params, "name", "active", "description", "metadata")
        product = self._get("products", call.match["id"])
        name = _text(call.params, "name")
        if name is not None:
            product["name"] = name
        return product

    def _create_checkout_session(self, call: _Call) -> Obj:
        p = call.params
        _allow(
            p, "mode", "line_items", "customer", "customer_email", "success_url", "cancel_url",
            "client_reference_id", "metadata", "subscription_data", "allow_promotion_codes",
        )  # fmt: skip
        mode = _text(p, "mode", required=True)
        if mode != "subscription":
            raise _invalid("This peer only has subscription Checkout Sessions.", param="mode")
        items = p.get("line_items")
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            raise _invalid("This peer takes exactly one line item.", param="line_items")
        price = _text(items[0], "price", required=True)
        assert price is not None
        if self._get("prices", price, "line_items[0][price]")["type"] != "recurring":
            raise _invalid("A subscription needs a recurring price.", param="line_items[0][price]")
        customer = _text(p, "customer")
        if customer is not None:
            self._get("customers", customer, "customer")
        success_url = _text(p, "success_url", required=True)
        details = _hash(p, "subscription_data")
        destination = _hash(details, "transfer_data").get("destination")
        if destination is not None and destination not in self.accounts:
            raise _invalid(
                f"No such destination: '{destination}'", code="account_invalid",
                param="subscription_data[transfer_data][destination]",
            )  # fmt: skip
        cs_id = new_id("cs_test")
        session = self.checkout_sessions[cs_id] = {
            "id": cs_id, "object": "checkout.session", "created": int(time.time()),
            "livemode": False, "cancel_url": _text(p, "cancel_url"),
            "client_reference_id": _text(p, "client_reference_id"), "customer": customer,
            "customer_details": None, "customer_email": _text(p, "customer_email"),
            "expires_at": int(time.time()) + 86400, "metadata": _metadata(p), "mode": mode,
            "payment_status": "unpaid", "status": "open", "subscription": None,
            "success_url": success_url, "url": f"{self.url}/checkout/{cs_id}",
            "_line_items": items, "_subscription_data": details,
        }  # fmt: skip
        return session

    def _update_subscription(self, call: _Call) -> Obj:
        p = call.params
        _allow(p, "cancel_at_period_end", "metadata", "proration_behavior")
        sub = self._get("subscriptions", call.match["id"], "subscription_exposed_id")
        if sub["status"] == "canceled":
            raise _invalid(
                "A canceled subscription can only update its cancellation_details and metadata."
            )
        before: Obj = {}
        cancel = _flag(p, "cancel_at_period_end")
        if cancel is not None and cancel != sub["cancel_at_period_end"]:
            before |= {k: sub[k] for k in ("cancel_at_period_end", "cancel_at", "canceled_at")}
            sub["cancel_at_period_end"] = cancel
            sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"] if cancel else None
            sub["canceled_at"] = int(time.time()) if cancel else None
        if "metadata" in p:
            # As in Stripe, metadata merges and an empty value deletes its key.
            merged = sub["metadata"] | _metadata(p)
            merged = {k: v for k, v in merged.items() if v != ""}
            if merged != sub["metadata"]:
                before["metadata"] = sub["metadata"]
                sub["metadata"] = merged
        if before:  # Stripe sends no event for an update that changes nothing
            self._emit("customer.subscription.updated", sub, call, before)
        return sub

    def _cancel_subscription(self, call: _Call) -> Obj:
        sub = self._get("subscriptions", call.match["id"], "subscription_exposed_id")
        if sub["status"] == "canceled":
            raise _invalid(f"The subscription {sub['id']} is already canceled.")
        self._end(sub, call, ended_at=int(time.time()))
        return sub

    def _create_transfer(self, call: _Call) -> Obj:
        p = call.params
        _allow(p, "amount", "currency", "destination", "metadata", "transfer_group",
               "description", "source_transaction")  # fmt: skip
        amount = _integer(p, "amount", required=True)
        currency = _text(p, "currency", required=True)
        destination = _text(p, "destination", required=True)
        assert amount is not None and currency is not None
        if destination not in self.accounts:
            raise _invalid(
                f"No such destination: '{destination}'", code="account_invalid",
                param="destination",
            )  # fmt: skip
        tr_id = new_id("tr")
        txn = self._balance_transaction(-amount, currency, "transfer", tr_id, fee=0)
        transfer = self.transfers[tr_id] = {
            "id": tr_id, "object": "transfer", "created": int(time.time()), "livemode": False,
            "amount": amount, "amount_reversed": 0, "balance_transaction": txn,
            "currency": currency.lower(), "description": _text(p, "description"),
            "destination": destination, "destination_payment": new_id("py"),
            "metadata": _metadata(p), "reversed": False,
            "reversals": _list(f"/v1/transfers/{tr_id}/reversals", []),
            "source_transaction": _text(p, "source_transaction"),
            "transfer_group": _text(p, "transfer_group"),
        }  # fmt: skip
        return transfer

    def _create_refund(self, call: _Call) -> Obj:
        p = call.params
        _allow(p, "charge", "payment_intent", "amount", "reason", "metadata")
        charge_id = _text(p, "charge")
        if charge_id is None:
            pi_id = _text(p, "payment_intent")
            if pi_id is None:
                raise _invalid(
                    "One of `charge` or `payment_intent` is required.", code="parameter_missing"
                )
            charge_id = self._get("payment_intents", pi_id, "payment_intent")["latest_charge"]
            if charge_id is None:
                raise _invalid(
                    f"PaymentIntent {pi_id} has no successful charge to refund.",
                    code="charge_not_refundable", param="payment_intent",
                )  # fmt: skip
        charge = self._get("charges", charge_id, "charge")
        refund, _ = self._refund(charge, _integer(p, "amount"), _metadata(p), call)
        return refund

    # -- state changes shared by endpoints and drivers -----------------------------------

    def _new_customer(self, email: str | None, metadata: dict[str, str]) -> Obj:
        cus_id = new_id("cus")
        customer = self.customers[cus_id] = {
            "id": cus_id, "object": "customer", "created": int(time.time()), "livemode": False,
            "balance": 0, "currency": None, "default_source": None, "delinquent": False,
            "description": None, "email": email, "metadata": metadata, "name": None,
        }  # fmt: skip
        return customer

    def _balance_transaction(
        self, amount: int, currency: str, kind: str, source: str, fee: int
    ) -> str:
        txn_id = new_id("txn")
        now = int(time.time())
        self.balance_transactions[txn_id] = {
            "id": txn_id, "object": "balance_transaction", "created": now,
            "available_on": now + 2 * 86400, "amount": amount, "currency": currency.lower(),
            "fee": fee, "net": amount - fee, "source": source, "status": "pending",
            "type": kind,
            "fee_details": [{"amount": fee, "currency": currency.lower(), "type": "stripe_fee",
                             "application": None, "description": "Stripe processing fees"}]
            if fee else [],
        }  # fmt: skip
        return txn_id

    def _charge(self, intent: Obj) -> Obj:
        ch_id = new_id("ch")
        amount, currency = intent["amount"], intent["currency"]
        method = intent["payment_method"]
        saved = self.payment_methods.get(method)
        fingerprint = saved["card"]["fingerprint"] if saved else card_fingerprint(method)
        txn = self._balance_transaction(amount, currency, "charge", ch_id, stripe_fee(amount))
        charge = self.charges[ch_id] = {
            "id": ch_id, "object": "charge", "created": int(time.time()), "livemode": False,
            "amount": amount, "amount_captured": amount, "amount_refunded": 0,
            "application_fee_amount": intent["application_fee_amount"],
            "balance_transaction": txn, "captured": True, "currency": currency,
            "customer": intent["customer"], "description": intent["description"],
            "disputed": False, "failure_code": None, "failure_message": None,
            "metadata": dict(intent["metadata"]),
            "outcome": {"network_status": "approved_by_network", "risk_level": "normal",
                        "seller_message": "Payment complete.", "type": "authorized"},
            "paid": True, "payment_intent": intent["id"], "payment_method": method,
            "payment_method_details": {"type": "card", "card": {
                "brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034,
                "fingerprint": fingerprint, "funding": "credit", "last4": "4242"}},
            "refunded": False, "status": "succeeded",
            "transfer_data": copy.deepcopy(intent["transfer_data"]),
        }  # fmt: skip
        return charge

    def _settle(self, intent: Obj) -> Obj:
        """Charge the intent's card; returns the charge."""
        if intent["payment_method"] is None:
            intent["payment_method"] = new_id("pm")
        charge = self._charge(intent)
        intent.update(
            status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"],
            last_payment_error=None,
        )  # fmt: skip
        return charge

    def _succeed(self, intent: Obj, call: _Call) -> list[Obj]:
        charge = self._settle(intent)
        return [
            self._emit("charge.succeeded", charge, call),
            self._emit("payment_intent.succeeded", intent, call),
        ]

    @staticmethod
    def _fail(intent: Obj, method: str) -> None:
        code = "authentication_required" if method == _AUTHENTICATE else "card_declined"
        decline_code, message = _DECLINES.get(method) or (
            "authentication_required",
            "Your card was declined: it requires authentication.",
        )
        intent.update(status="requires_payment_method", payment_method=None)
        intent["last_payment_error"] = {
            "type": "card_error", "code": code, "decline_code": decline_code,
            "message": message,
            "payment_method": {"id": new_id("pm"), "object": "payment_method", "type": "card"},
        }  # fmt: skip

    def _decline(self, intent: Obj, method: str, call: _Call) -> list[Obj]:
        self._fail(intent, method)
        return [self._emit("payment_intent.payment_failed", intent, call)]

    def _invoice(self, sub: Obj, reason: str, *, paid: bool) -> Obj:
        item = sub["items"]["data"][0]
        price = item["price"]
        amount = price["unit_amount"] * item["quantity"]
        percent = sub["application_fee_percent"]
        in_id = new_id("in")
        # The invoice's own PaymentIntent and charge, reached through `payments`. Their events
        # are not sent: livecore follows the invoice, and tests get a short, fixed list.
        pi_id = new_id("pi")
        intent = self.payment_intents[pi_id] = {
            "id": pi_id, "object": "payment_intent", "created": int(time.time()),
            "livemode": False, "amount": amount, "amount_received": 0,
            "currency": price["currency"],
            "application_fee_amount": round(amount * percent / 100) if percent else None,
            "automatic_payment_methods": None, "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{pi_id}_secret_{new_id('x')[2:]}",
            "confirmation_method": "automatic", "customer": sub["customer"],
            "description": "Subscription creation" if reason == "subscription_create"
            else "Subscription update",
            "last_payment_error": None, "latest_charge": None, "metadata": {},
            "payment_method": sub["default_payment_method"], "payment_method_types": ["card"],
            "status": "requires_payment_method",
            "transfer_data": copy.deepcopy(sub["transfer_data"]),
        }  # fmt: skip
        if paid:
            self._settle(intent)
        else:
            self._fail(intent, "pm_card_chargeDeclined")
        now = int(time.time())
        period = {"start": item["current_period_start"], "end": item["current_period_end"]}
        invoice = self.invoices[in_id] = {
            "id": in_id, "object": "invoice", "created": now, "livemode": False,
            "amount_due": amount, "amount_paid": amount if paid else 0,
            "amount_remaining": 0 if paid else amount, "attempt_count": 1, "attempted": True,
            "billing_reason": reason, "collection_method": "charge_automatically",
            "currency": price["currency"], "customer": sub["customer"],
            "customer_email": self.customers[sub["customer"]]["email"],
            "lines": _list(f"/v1/invoices/{in_id}/lines", [{
                "id": new_id("il"), "object": "line_item", "amount": amount,
                "currency": price["currency"], "description": None, "invoice": in_id,
                "metadata": dict(sub["metadata"]), "period": period,
                "quantity": item["quantity"],
                "pricing": {"type": "price_details",
                            "price_details": {"price": price["id"], "product": price["product"]},
                            "unit_amount_decimal": str(price["unit_amount"])},
                "parent": {"type": "subscription_item_details", "subscription_item_details": {
                    "subscription": sub["id"], "subscription_item": item["id"],
                    "invoice_item": None, "proration": False}},
            }]),
            "metadata": {},
            "next_payment_attempt": None if paid else now + 3 * 86400,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"subscription": sub["id"],
                                                "metadata": dict(sub["metadata"])}},
            "payments": _list("/v1/invoice_payments", [{
                "id": new_id("inpay"), "object": "invoice_payment", "amount_paid":
                amount if paid else None, "amount_requested": amount,
                "currency": price["currency"], "invoice": in_id, "is_default": True,
                "livemode": False, "created": now, "status": "paid" if paid else "open",
                "payment": {"type": "payment_intent", "payment_intent": pi_id},
            }]),
            "period_start": period["start"], "period_end": period["end"],
            "status": "paid" if paid else "open",
            "status_transitions": {"finalized_at": now, "paid_at": now if paid else None},
            "subtotal": amount, "total": amount,
        }  # fmt: skip
        sub["latest_invoice"] = in_id
        return invoice

    def _end(self, sub: Obj, call: _Call, *, ended_at: int) -> list[Obj]:
        sub.update(status="canceled", ended_at=ended_at, canceled_at=sub["canceled_at"] or ended_at)
        return [self._emit("customer.subscription.deleted", sub, call)]

    def _refund(
        self, charge: Obj, amount: int | None, metadata: dict[str, str], call: _Call
    ) -> tuple[Obj, list[Obj]]:
        left = charge["amount"] - charge["amount_refunded"]
        if left == 0:
            raise _invalid(
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded", param="charge",
            )  # fmt: skip
        amount = left if amount is None else amount
        if amount <= 0:
            raise _invalid(f"Invalid positive integer: {amount}", param="amount")
        if amount > left:
            raise _invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large", param="amount",
            )  # fmt: skip
        re_id = new_id("re")
        currency = charge["currency"]
        refund = self.refunds[re_id] = {
            "id": re_id, "object": "refund", "created": int(time.time()), "amount": amount,
            "balance_transaction": self._balance_transaction(-amount, currency, "refund",
                                                             re_id, fee=0),
            "charge": charge["id"], "currency": currency, "metadata": metadata,
            "payment_intent": charge["payment_intent"], "reason": None, "status": "succeeded",
        }  # fmt: skip
        before: Obj = {"amount_refunded": charge["amount_refunded"]}
        charge["amount_refunded"] += amount
        if charge["amount_refunded"] == charge["amount"]:
            before["refunded"] = False
            charge["refunded"] = True
        # `refunds` is no longer part of a charge by default (API 2022-11-15), but the
        # charge.refunded event carries it.
        refunds = [r for r in self.refunds.values() if r["charge"] == charge["id"]]
        shown = charge | {"refunds": _list(f"/v1/charges/{charge['id']}/refunds", refunds[::-1])}
        return refund, [
            self._emit("charge.refunded", shown, call, before),
            self._emit("refund.created", refund, call),
        ]
