"""The storefront, wired as its architecture diagram draws it.

    Shoppers.visit ──► LoadBalancer ──► AppInstance × N ──► DbServer (shared, with its cache)
     (one process:     (health checks)   workers, db pool,   ├─► inventory, recommendations
      retries loop)                      CPU, heap, breaker  └─► PaymentGateway (external)
        └── every answer ──► Outcomes (the Recorder, given by the segment)

Every wait a request suffers comes from a resource it contends for; nothing here decides
an outcome from the clock alone. Faults change only causes (a dependency's latency, query
time, leaked bytes, the arrival rate): symptoms are whatever the resources then do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sim.config import UPSTREAMS, CacheConfig, Scenario, instance_name
from sim.core.rng import StreamSource
from sim.model.app_instance import AppInstance
from sim.model.changes import ActiveChange, applied, deployed, flag_shares
from sim.model.everyday import EverydayFailures
from sim.model.faults import FaultSchedule
from sim.model.feature_flags import FeatureFlags
from sim.model.load_balancer import LoadBalancer
from sim.model.resources.cache import BufferCache
from sim.model.resources.db import DbServer, DbServerFigures
from sim.model.resources.dependencies import GatewayFigures, PaymentGateway, UpstreamService
from sim.model.shoppers import Outcomes, Shoppers
from sim.model.state_log import StateLog


def _cache(cfg: CacheConfig) -> BufferCache:
    return BufferCache(cfg.cold_extra, cfg.evict_per_slow_call, cfg.warm_per_call)


class BackendFigures(NamedTuple):
    """What the shared backends report each interval (``take_interval`` of each)."""

    db: DbServerFigures
    gateway: GatewayFigures


@dataclass
class Backends:
    """What every app instance shares: the database, the services it calls and the flag
    service (``app.backends`` in a handler)."""

    db: DbServer
    gateway: PaymentGateway
    inventory: UpstreamService
    recommendations: UpstreamService
    flags: FeatureFlags

    def take_interval(self) -> BackendFigures:
        """The figures of the backends that are reported, for the sampler."""
        return BackendFigures(self.db.take_interval(), self.gateway.take_interval())


class Storefront:
    """Builds and wires every component of one simulated segment."""

    def __init__(self, env: Any, scenario: Scenario, streams: StreamSource,
                 faults: FaultSchedule, outcomes: Outcomes,
                 changed: Sequence[ActiveChange] = ()) -> None:
        """``changed``: the changes made before the segment starts, in time order (its
        instances start with their settings)."""
        cfg = scenario.storefront
        self.env = env
        self.cfg = cfg
        self.log = StateLog(env)
        record = self.log.record
        db = cfg.db_server
        gw = cfg.payment_gateway
        self.backends = Backends(
            db=DbServer(env, db.max_active, streams.stream("db-query"),
                        db.query_ms_median / 1000.0, db.query_sigma,
                        faults.multiplier("db_slow_queries"), _cache(db.cache),
                        lambda event, detail: record("db-01", event, detail)),
            gateway=PaymentGateway(
                env, streams.stream("payment-gateway"), gw.latency_ms_median / 1000.0,
                gw.latency_sigma, gw.read_timeout_ms / 1000.0, gw.decline_rate, gw.error_rate,
                faults.multiplier("payment_gateway_slowdown"),
                faults.additive("dependency_error_burst"),
                lambda event, detail: record("payment-gateway", event, detail)),
            **{name: UpstreamService(
                env, name, streams.stream(f"upstream:{name}"), u.latency_ms_median / 1000.0,
                u.latency_sigma, u.timeout_ms / 1000.0, faults.multiplier("upstream_slowdown", name),
                _cache(u.cache), u.retries,
                lambda event, detail, name=name: record(name, event, detail))
               for name, u in zip(UPSTREAMS, (cfg.inventory, cfg.recommendations), strict=True)},
            flags=FeatureFlags(),
        )
        for flag, share in flag_shares(changed).items():
            self.backends.flags.set(flag, share)
        self.versions: dict[str, str] = {}  # host -> the version it runs
        everyday = EverydayFailures(scenario.background_errors,
                                    scenario.traffic.endpoints.model_dump(),
                                    streams.stream("background-errors"))
        self.instances = [
            AppInstance(env, i, applied(cfg, changed, instance_name(i)), self.backends, everyday.draw,
                        faults.additive("memory_leak", instance_name(i)),
                        streams.stream(f"app-time:{i}"), record,
                        deployed(cfg, changed, instance_name(i)), self.versions)
            for i in range(cfg.instances)
        ]
        self.lb = LoadBalancer(env, self.instances, cfg.health_check)
        self.shoppers = Shoppers(env, cfg, streams.stream("client-retries"), self.lb, outcomes)

    def in_flight(self) -> list[tuple[AppInstance, Any]]:
        """Requests still inside an instance, oldest first."""
        return sorted(((inst, req) for inst in self.instances for req in inst.requests.values()),
                      key=lambda pair: pair[1].arrival)
