"""The infrastructure sampler: every ``interval`` it asks each resource for its figures.

One document per app instance, plus one for the shared database and one for the payment
gateway. Each resource hands over its own per-interval counters (``take_interval``) and
resets them itself; gauges are read as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.model.resources.circuit_breaker import STATE_CODES
from sim.telemetry.documents import DocumentFactory

MB = 1024 * 1024


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    values.sort()
    return values[min(len(values) - 1, int(0.95 * len(values)))]


class MetricsSampler:
    def __init__(self, shop: Any, docs: DocumentFactory, interval_s: float,
                 emit: Callable[[dict[str, Any]], None], emit_from: float, emit_until: float):
        self.shop = shop
        self.docs = docs
        self.interval_s = interval_s
        self.emit = emit
        self.emit_from = emit_from
        self.emit_until = emit_until

    def run(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        # align samples to the interval grid of the emitted window
        first = self.emit_from
        while first - self.interval_s >= 0:
            first -= self.interval_s
        yield env.timeout(first)
        while env.now < self.emit_until:
            yield env.timeout(self.interval_s)
            self.sample(env.now)

    def sample(self, now: float) -> None:
        shop = self.shop
        emit = now - self.interval_s >= self.emit_from - 1e-9 and now <= self.emit_until + 1e-9
        ts = self.docs.timestamp(now)
        iv = self.interval_s
        for inst in shop.instances:
            served, errors, latencies = inst.take_interval()
            cpu_busy = inst.cpu.take_interval()
            gc_pause_s, gc_count, gc_full = inst.heap.take_interval()
            refused = inst.breaker.take_interval()
            pool = inst.db_pool
            doc = {
                "@timestamp": ts,
                "event_type": "infrastructure_metric",
                "host": {"name": inst.name, "cpu": {"usage": round(cpu_busy, 4)}},
                "service": {"name": "storefront-app", "type": "app-instance",
                            "state": "running" if inst.up else "stopped"},
                "jvm": {
                    "memory": {"used": round(inst.heap.used_mb * MB),
                               "limit": round(inst.heap.max_mb * MB)},
                    "gc": {"duration": round(gc_pause_s, 4), "count": gc_count,
                           "full_count": gc_full},
                },
                "thread_pool": {"active": inst.workers.active, "queued": len(inst.workers.queue),
                                "max": inst.workers.max_threads},
                "db": {"client": {"connection": {
                    "used": pool.active, "idle": pool.max_size - pool.active,
                    "pending_requests": pool.pending, "max": pool.max_size}}},
                "circuit_breaker": {"state": inst.breaker.state,
                                    "state_code": STATE_CODES[inst.breaker.state],
                                    "not_permitted_calls": refused},
                "requests": {"rate": round(served / iv, 2),
                             "error_rate_pct": round(100.0 * errors / served, 2) if served else 0.0,
                             "p95_ms": round(_p95(latencies) * 1000.0, 1)},
            }
            if emit:
                self.emit(doc)
        backends = shop.backends
        db = backends.db
        queries, busy = db.take_interval()
        db_doc = {
            "@timestamp": ts, "event_type": "infrastructure_metric", "host": {"name": "db-01"},
            "service": {"name": "postgresql", "type": "database", "state": "running"},
            "db": {"active_queries": db.busy, "queued_queries": len(db.queue),
                   "max_active": db.max_active, "queries_per_s": round(queries / iv, 2),
                   "avg_query_ms": round(1000.0 * busy / queries, 2) if queries else 0.0,
                   "cache_hit_ratio": round(db.cache.hit_ratio, 4)},
        }
        gw = backends.gateway
        latencies, calls, timeouts, failures = gw.take_interval_figures()
        gw_doc = {
            "@timestamp": ts, "event_type": "infrastructure_metric",
            "host": {"name": "payment-gateway"},
            "service": {"name": "payment-gateway", "type": "external-dependency",
                        "state": "running"},
            "gateway": {"latency_p95_ms": round(_p95(latencies) * 1000.0, 1),
                        "calls": calls, "timeouts": timeouts, "failures": failures},
        }
        if emit:
            self.emit(db_doc)
            self.emit(gw_doc)
