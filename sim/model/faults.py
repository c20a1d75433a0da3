"""Root causes injected into the model. Only causes: every symptom must emerge downstream.

A fault ramps up over ``ramp`` seconds from its start, holds until its end, then is removed
at once; whatever recovery follows comes from the model (queues draining, the breaker
probing, a JVM restarting). ``magnitude`` is in the fault type's own unit:

- payment_gateway_slowdown: gateway latency multiplier added on top of 1 (130 -> x131: the
  ~260 ms median moves to ~34 s, straddling the 30 s read timeout)
- db_slow_queries: query-time multiplier added on top of 1 (lock contention, missing index)
- memory_leak: MB leaked per checkout request on the target instance(s); ``target`` may
  name several instances separated by commas (a build rolled out to part of the fleet)
- dependency_error_burst: share of gateway calls that fail with HTTP 5xx
- upstream_slowdown: latency multiplier added on top of 1 for ``target`` (inventory|recommendations)
- traffic_surge: arrival-rate multiplier added on top of 1

Only memory_leak (instances) and upstream_slowdown (upstreams) take a ``target``;
``sim.config.valid_targets`` says which names exist, so a typo is refused instead of injuring nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.config import FaultConfig

DEFAULT_MAGNITUDE: dict[str, float] = {
    "payment_gateway_slowdown": 130.0,
    "db_slow_queries": 105.0,
    "memory_leak": 1.2,
    "dependency_error_burst": 0.85,
    "upstream_slowdown": 110.0,
    "traffic_surge": 1.0,
}

DEFAULT_TARGET: dict[str, str | None] = {
    "payment_gateway_slowdown": None,
    "db_slow_queries": None,
    "memory_leak": None,
    "dependency_error_burst": None,
    "upstream_slowdown": "inventory",
    "traffic_surge": None,
}


# The seed's incident catalogue, named after what operators would call it.
INCIDENT_TYPE: dict[str, str] = {
    "payment_gateway_slowdown": "payment_gateway_timeout",
    "db_slow_queries": "db_connection_pool_exhaustion",
    "memory_leak": "memory_pressure",
    "dependency_error_burst": "circuit_breaker_activation",
    "upstream_slowdown": "upstream_service_degradation",
    "traffic_surge": "traffic_surge",
}


@dataclass(frozen=True)
class ActiveFault:
    """A fault resolved to absolute time (epoch seconds)."""

    fault_id: str
    type: str
    start_epoch: float
    end_epoch: float
    ramp_s: float
    magnitude: float
    target: str | None
    incident_type: str

    def intensity(self, epoch_s: float) -> float:
        if epoch_s < self.start_epoch or epoch_s >= self.end_epoch:
            return 0.0
        if self.ramp_s <= 0:
            return 1.0
        return min(1.0, (epoch_s - self.start_epoch) / self.ramp_s)

    def applies_to(self, name: str) -> bool:
        if self.target is None:
            return True
        return name in (t.strip() for t in self.target.split(","))


def active_fault(spec: FaultConfig, fault_id: str, start_epoch: float) -> ActiveFault:
    """A configured fault (scenario or control file) starting at ``start_epoch``, with the
    fault type's default magnitude, target and incident type where the file gives none."""
    return ActiveFault(
        fault_id=fault_id,
        type=spec.type,
        start_epoch=start_epoch,
        end_epoch=start_epoch + spec.duration_minutes * 60.0,
        ramp_s=spec.ramp_minutes * 60.0,
        magnitude=DEFAULT_MAGNITUDE[spec.type] if spec.magnitude is None else spec.magnitude,
        target=spec.target if spec.target is not None else DEFAULT_TARGET[spec.type],
        incident_type=spec.incident_type or INCIDENT_TYPE[spec.type],
    )


_ONE: Callable[[], float] = lambda: 1.0  # noqa: E731
_ZERO: Callable[[], float] = lambda: 0.0  # noqa: E731


class FaultSchedule:
    """Turns the active faults into the time-varying factors components read.

    Components capture their factor callables once, at construction. In a batch run the
    faults are known up front, and a type with no fault gets a constant (the hot path
    stays free of fault lookups). A live run (``live=True``) gets callables that read one
    list per (type, target), which ``apply`` updates in place: a fault changed while the
    simulation runs is seen from the next event on.
    """

    def __init__(self, faults: list[ActiveFault], now_epoch: Callable[[], float],
                 live: bool = False):
        self.faults = faults
        self.now_epoch = now_epoch
        self.live = live
        self._lists: dict[tuple[str, str | None], list[ActiveFault]] = {}
        # live: how far the arrival generator has asked for the surge factor (epoch s);
        # a surge cannot change arrivals already drawn
        self.surge_drawn_until = float("-inf")

    def apply(self, faults: list[ActiveFault]) -> None:
        """Live runs: from now on the factors follow ``faults`` (every fault, in order)."""
        if not self.live:
            raise RuntimeError("apply() needs a FaultSchedule built with live=True")
        self.faults = faults
        for (fault_type, target), lst in self._lists.items():
            lst[:] = self._select(fault_type, target)

    def _select(self, fault_type: str, target: str | None) -> list[ActiveFault]:
        return [
            f for f in self.faults
            if f.type == fault_type and (target is None or f.applies_to(target))
        ]

    def _of(self, fault_type: str, target: str | None = None) -> list[ActiveFault]:
        if not self.live:
            return self._select(fault_type, target)
        lst = self._lists.get((fault_type, target))
        if lst is None:
            lst = self._lists[(fault_type, target)] = self._select(fault_type, target)
        return lst

    def multiplier(self, fault_type: str, target: str | None = None) -> Callable[[], float]:
        """1 + sum(magnitude * intensity) for faults of a type, as a zero-argument callable."""
        faults = self._of(fault_type, target)
        if not faults and not self.live:
            return _ONE
        now = self.now_epoch

        def factor() -> float:
            t = now()
            return 1.0 + sum(f.magnitude * f.intensity(t) for f in faults)

        return factor

    def additive(self, fault_type: str, target: str | None = None) -> Callable[[], float]:
        """sum(magnitude * intensity), e.g. an extra error rate or leaked MB."""
        faults = self._of(fault_type, target)
        if not faults and not self.live:
            return _ZERO
        now = self.now_epoch

        def amount() -> float:
            t = now()
            return sum(f.magnitude * f.intensity(t) for f in faults)

        return amount

    def surge_at(self) -> Callable[[float], float] | None:
        """Arrival-rate multiplier as a function of epoch seconds (for the traffic generator)."""
        faults = self._of("traffic_surge")
        if not self.live:
            if not faults:
                return None
            return lambda t: 1.0 + sum(f.magnitude * f.intensity(t) for f in faults)

        def surge(t: float) -> float:  # asked at the middle of each second drawn
            if t + 0.5 > self.surge_drawn_until:
                self.surge_drawn_until = float(t) + 0.5
            return 1.0 + sum(f.magnitude * f.intensity(t) for f in faults)

        return surge
