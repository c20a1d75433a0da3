"""Remote dependencies: the external PaymentGateway and internal UpstreamServices.

Each draws its own latency from its own random stream and keeps its own counters. A fault
raises a dependency's latency (or its error rate) through ``slowdown``; callers see only
slower or failed calls and must cope with them (timeouts, retries, the circuit breaker).
A call is a timeout event whose value is the outcome: the caller waits at most its read
timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from sim.config import GATEWAY_ERROR_LATENCY_SHARE, QUIET_BEFORE_TIMEOUTS_START_S
from sim.core.rng import RandomStream
from sim.model.resources import OnState, ignore_state
from sim.model.resources.cache import BufferCache

OK, DECLINED, FAILED, TIMED_OUT = 0, 1, 2, 3


class GatewayFigures(NamedTuple):
    """What the gateway reports, all since the last take."""

    latencies: list[float]  # what callers waited (at most the read timeout)
    calls: int
    timeouts: int
    failures: int  # HTTP 5xx answers


class UpstreamService:
    def __init__(
        self,
        env: Any,
        name: str,
        rng: RandomStream,
        median_s: float,
        sigma: float,
        timeout_s: float,
        slowdown: Callable[[], float],
        cache: BufferCache | None = None,
        retries: int = 0,
        on_state: OnState = ignore_state,
    ):
        self.env = env
        self.name = name
        self.rng = rng
        self.median_s = median_s
        self.sigma = sigma
        self.timeout_s = timeout_s
        self.slowdown = slowdown
        self.cache = cache
        self.retries = retries
        self.on_state = on_state
        self.timeout_kind = f"{name}_timeout"
        self.calls = 0
        self.timeouts = 0
        self._last_timeout = -1e18

    def latency(self) -> float:
        """How long the dependency takes to answer this call (may exceed the timeout)."""
        factor = self.slowdown()
        if self.cache is not None:
            factor = self.cache.query_factor(factor)
        return self.rng.lognormal(self.median_s * factor, self.sigma)

    def get(self) -> Any:
        """One GET: the event's value is OK, or TIMED_OUT after the read timeout."""
        return self._answer(self.latency(), OK)

    def _answer(self, latency: float, outcome: int) -> Any:
        self.calls += 1
        if latency >= self.timeout_s:
            event = self.env.timeout(self.timeout_s, TIMED_OUT)
            event.callbacks.append(self._timed_out)
            return event
        return self.env.timeout(latency, outcome)

    def _timed_out(self, _event: Any) -> None:
        now = self.env.now
        self.timeouts += 1
        if now - self._last_timeout > QUIET_BEFORE_TIMEOUTS_START_S:
            event = "gateway_timeouts_started" if isinstance(self, PaymentGateway) else \
                "upstream_timeouts_started"
            self.on_state(event, f"{self.name} calls timing out")
        self._last_timeout = now


class PaymentGateway(UpstreamService):
    """Answers OK, DECLINED (card declined, a business outcome) or FAILED (HTTP 5xx)."""

    def __init__(
        self,
        env: Any,
        rng: RandomStream,
        median_s: float,
        sigma: float,
        timeout_s: float,
        decline_rate: float,
        error_rate: float,
        slowdown: Callable[[], float],
        extra_error_rate: Callable[[], float],
        on_state: OnState = ignore_state,
    ):
        super().__init__(env, "payment-gateway", rng, median_s, sigma, timeout_s, slowdown,
                         on_state=on_state)
        self.decline_rate = decline_rate
        self.error_rate = error_rate
        self.extra_error_rate = extra_error_rate
        self.failures = 0
        self.latencies: list[float] = []  # what callers waited, for the sampler's p95

    def charge(self) -> Any:
        """One charge attempt: the event's value is OK, DECLINED, FAILED or TIMED_OUT."""
        error_rate = self.error_rate + self.extra_error_rate()
        u = self.rng.random()
        if u < error_rate:
            # a failing gateway answers fast with a 5xx
            self.failures += 1
            latency = self.rng.lognormal(self.median_s * GATEWAY_ERROR_LATENCY_SHARE, self.sigma)
            outcome = FAILED
        else:
            latency = self.latency()
            outcome = DECLINED if u < error_rate + self.decline_rate * (1 - error_rate) else OK
        self.latencies.append(min(latency, self.timeout_s))
        return self._answer(latency, outcome)

    def take_interval(self) -> GatewayFigures:
        """Its figures for the sampler; every counter starts again from zero."""
        figures = GatewayFigures(self.latencies, self.calls, self.timeouts, self.failures)
        self.latencies = []
        self.calls = self.timeouts = self.failures = 0
        return figures
