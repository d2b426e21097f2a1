"""Payment providers behind one interface. The built-in test provider is the embedded
default: it charges nothing, succeeds at once, and every answer says it is test mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from livecore.store.tips import Provider, Tip


class ProviderUnavailable(Exception):
    """The processor could not be reached or failed (timeout, refused, 5xx, 429).

    `unknown` is True when the request may have reached it (a timeout): its outcome must be
    reconciled (retried with the same idempotency key) before anything else is tried.
    `outage` is True for transport failures and 5xx answers, the only ones a circuit breaker
    counts: a rate limit or an idempotency conflict is an answer from a processor that is up.
    """

    def __init__(self, reason: str, *, unknown: bool = False, outage: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown = unknown
        self.outage = outage


RefusalKind = Literal["invalid_request", "authentication", "permission", "other"]


class ProcessorRefused(Exception):
    """The processor refused the request itself, for good (bad parameters, keys, permissions):
    nothing was done, and the same request would be refused again. `param` names the request
    parameter it objected to, when it said."""

    def __init__(self, reason: str, kind: RefusalKind = "other", param: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.param = param


class PaymentDeclined(Exception):
    """The processor refused the payment itself (a card decline): never retried elsewhere."""

    def __init__(self, reason: str, code: str = "card_declined") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class PayoutFailed(Exception):
    """The processor refused a payout for good; the money goes back to the creator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CardPayment:
    """A saved card charged at once, while its holder is there (they just asked to tip)."""

    payment_method: str
    # The holder's customer at the processor: the card is theirs, or is saved to them once it
    # pays (None: the processor has no customers, as the test provider).
    customer: str | None


@dataclass(frozen=True, slots=True)
class SavedCard:
    """What the processor says of a payment method."""

    fingerprint: str | None  # the same for every payment method of one card
    customer: str | None  # whose saved card it is (None: saved to no customer)


@dataclass(frozen=True, slots=True)
class Payment:
    status: Literal["succeeded", "pending", "failed"]
    provider_ref: str
    # What a browser needs to finish a pending payment (e.g. a client secret), if anything.
    client_secret: str | None = None


class PaymentProvider(Protocol):
    name: Provider
    test_mode: bool
    # What a browser needs to confirm a pending payment with this provider, if anything.
    publishable_key: str | None

    async def create(self, tip: Tip, destination: str | None, card: CardPayment | None) -> Payment:
        """Start charging for `tip` (its platform share goes to the platform, the rest to the
        creator's connected account `destination` when set), with `card` at once or, without
        one, confirmed by the viewer's browser. Called again for the same tip
        only as a retry: the tip's id keys it, so the processor never charges twice.

        Raises PaymentDeclined, ProcessorRefused or ProviderUnavailable.
        """
        ...

    async def find(self, tip: Tip, destination: str | None, card: CardPayment | None) -> Payment:
        """What became of `tip`'s payment, after a request whose outcome is unknown: the
        payment it made (read by its id when the tip knows it), or, if that request was never
        applied, the payment made now, once. Raises like `create`."""
        ...

    async def card(self, payment_method: str) -> SavedCard:
        """The card behind a payment method, and whose saved card it is."""
        ...

    async def customer(self, user_id: int, email: str) -> str | None:
        """Make the user's customer at the processor (once, whatever the retries), to which
        their cards are saved; None when the processor has no customers."""
        ...


class TestProvider:
    """No money moves: for one-node setups and development. Clearly labelled test mode."""

    name: Provider = "test"
    test_mode = True
    publishable_key: str | None = None

    async def create(self, tip: Tip, destination: str | None, card: CardPayment | None) -> Payment:
        return Payment("succeeded", f"test_tip_{tip.id}")

    async def find(self, tip: Tip, destination: str | None, card: CardPayment | None) -> Payment:
        return await self.create(tip, destination, card)

    async def card(self, payment_method: str) -> SavedCard:
        return SavedCard(None, None)

    async def customer(self, user_id: int, email: str) -> str | None:
        return None
