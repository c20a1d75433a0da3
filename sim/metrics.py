"""The infrastructure sampler: every ``interval`` it reads each component's state and counters.

One document per app instance, plus one for the shared database and one for the payment
gateway. Counters are per interval (reset on read); gauges are read as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.documents import DocumentFactory
from sim.resources.circuit_breaker import STATE_CODES


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
        self._db_busy = 0.0
        self._db_queries = 0

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
            errors, requests = inst.m_errors, inst.m_requests
            doc = {
                "@timestamp": ts,
                "event_type": "infrastructure_metric",
                "host": inst.name,
                "service": "storefront-app",
                "component": "app-instance",
                "instance_up": inst.up,
                "cpu": {"pct": round(min(100.0, 3.0 + 100.0 * inst.m_cpu_s /
                                         (shop.cfg.cpu_cores * iv)), 1)},
                "jvm": {
                    "heap_used_mb": round(inst.heap.used_mb, 1),
                    "heap_max_mb": inst.heap.max_mb,
                    "gc_pause_ms": round(inst.m_gc_pause_s * 1000.0, 1),
                    "gc_count": inst.m_gc_count,
                    "gc_full_count": inst.m_gc_full,
                },
                "thread_pool": {"active": inst.workers.active, "queued": len(inst.workers.queue),
                                "max": inst.workers.max_threads},
                "db_pool": {"active": inst.db_pool.active,
                            "idle": inst.db_pool.max_size - inst.db_pool.active,
                            "pending": inst.db_pool.pending, "max": inst.db_pool.max_size},
                "circuit_breaker": {"state": inst.breaker.state,
                                    "state_code": STATE_CODES[inst.breaker.state],
                                    "not_permitted_calls": inst.breaker.not_permitted},
                "requests": {"rate": round(requests / iv, 2),
                             "error_rate_pct": round(100.0 * errors / requests, 2) if requests else 0.0,
                             "p95_ms": round(_p95(inst.m_latencies) * 1000.0, 1)},
            }
            inst.m_requests = inst.m_errors = 0
            inst.m_latencies = []
            inst.m_cpu_s = inst.m_gc_pause_s = 0.0
            inst.m_gc_count = inst.m_gc_full = 0
            inst.breaker.not_permitted = 0
            if emit:
                self.emit(doc)
        db = shop.db_server
        busy = db.busy_time - self._db_busy
        queries = db.queries - self._db_queries
        self._db_busy, self._db_queries = db.busy_time, db.queries
        db_doc = {
            "@timestamp": ts, "event_type": "infrastructure_metric", "host": "db-01",
            "service": "postgresql", "component": "database",
            "db": {"active_queries": db.active, "queued_queries": len(db.queue),
                   "max_active": db.max_active, "queries_per_s": round(queries / iv, 2),
                   "avg_query_ms": round(1000.0 * busy / queries, 2) if queries else 0.0,
                   "cache_hit_ratio": round(shop.db_cache.hit_ratio, 4)},
        }
        gw_doc = {
            "@timestamp": ts, "event_type": "infrastructure_metric", "host": "payment-gateway",
            "service": "payment-gateway", "component": "external-dependency",
            "gateway": {"latency_p95_ms": round(_p95(shop.gateway_latencies) * 1000.0, 1),
                        "calls": shop.gateway_calls, "timeouts": shop.gateway_timeouts,
                        "failures": shop.gateway_failures},
        }
        shop.gateway_latencies = []
        shop.gateway_calls = shop.gateway_timeouts = shop.gateway_failures = 0
        if emit:
            self.emit(db_doc)
            self.emit(gw_doc)
