"""Payment metrics: tips whose payment did not go through, and the processor's circuit."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from livecore.tips.breaker import CircuitBreaker

# declined: the card said no; refused: the processor refused the request itself; busy: the
# processor rate-limited it; outage: the processor unreachable or failing (or its circuit
# open), so the tip went to the fallback lane or was refused; unknown: no answer, the
# outcome is reconciled later.
FailureReason = Literal["declined", "refused", "busy", "outage", "unknown"]
REASONS: tuple[FailureReason, ...] = ("declined", "refused", "busy", "outage", "unknown")


class TipsMetrics:
    def __init__(self, registry: CollectorRegistry, breaker: CircuitBreaker) -> None:
        self.payment_failures = Counter(
            "livecore_tips_payment_failures_total",
            "Tip payments that did not go through the processor, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:  # present from the start, so rates and alerts see zeros
            self.payment_failures.labels(reason)
        self.breaker_open = Gauge(
            "livecore_tips_processor_circuit_open",
            "1 while the circuit to the payment processor is open or half-open (tips go to "
            "the fallback lane), else 0",
            registry=registry,
        )
        self.breaker_open.set_function(lambda: float(breaker.state != "closed"))

    def failed(self, reason: FailureReason) -> None:
        self.payment_failures.labels(reason).inc()
