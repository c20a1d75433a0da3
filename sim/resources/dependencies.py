"""Remote dependencies: the external PaymentGateway and internal UpstreamServices.

Each draws its own latency from its own random stream. A fault raises a dependency's
latency (or its error rate) through ``degradation``; callers see only slower or failed
calls and must cope with them (timeouts, retries, the circuit breaker).
"""

from __future__ import annotations

from collections.abc import Callable

from sim.resources.cache import BufferCache
from sim.rng import RandomStream

OK, DECLINED, FAILED = 0, 1, 2


class UpstreamService:
    def __init__(
        self,
        name: str,
        rng: RandomStream,
        median_s: float,
        sigma: float,
        timeout_s: float,
        slowdown: Callable[[], float],
        cache: BufferCache | None = None,
        retries: int = 0,
    ):
        self.name = name
        self.rng = rng
        self.median_s = median_s
        self.sigma = sigma
        self.timeout_s = timeout_s
        self.slowdown = slowdown
        self.cache = cache
        self.retries = retries
        self.timeout_kind = f"{name}_timeout"

    def call_latency(self) -> float:
        """How long the dependency takes to answer this call (may exceed the timeout)."""
        factor = self.slowdown()
        if self.cache is not None:
            factor = self.cache.query_factor(factor)
        return self.rng.lognormal(self.median_s * factor, self.sigma)


class PaymentGateway(UpstreamService):
    """Answers OK, DECLINED (card declined, a business outcome) or FAILED (HTTP 5xx)."""

    def __init__(
        self,
        rng: RandomStream,
        median_s: float,
        sigma: float,
        timeout_s: float,
        decline_rate: float,
        error_rate: float,
        slowdown: Callable[[], float],
        extra_error_rate: Callable[[], float],
    ):
        super().__init__("payment-gateway", rng, median_s, sigma, timeout_s, slowdown)
        self.decline_rate = decline_rate
        self.error_rate = error_rate
        self.extra_error_rate = extra_error_rate

    def call(self) -> tuple[float, int]:
        """(latency_s, outcome) of one charge attempt."""
        error_rate = self.error_rate + self.extra_error_rate()
        u = self.rng.random()
        if u < error_rate:
            # a failing gateway answers fast with a 5xx
            return self.rng.lognormal(self.median_s * 0.3, self.sigma), FAILED
        latency = self.call_latency()
        if u < error_rate + self.decline_rate * (1 - error_rate):
            return latency, DECLINED
        return latency, OK
