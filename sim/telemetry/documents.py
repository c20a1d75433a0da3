"""Turns finished requests and samples into OpenSearch documents.

Customer data comes from a pool made once per run with Faker (seeded), so no Faker call
happens per event. IDs come from a seeded ``random.Random``; timestamps from the segment's
origin, never from the wall clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from sim.core.clock import TimestampFormatter
from sim.model.app_instance import InstanceFigures
from sim.model.changes import ActiveChange
from sim.model.customers import Customer
from sim.model.endpoints import Endpoint
from sim.model.failures import Failure
from sim.model.resources.circuit_breaker import STATE_CODES
from sim.model.resources.db import DbServerFigures
from sim.model.resources.dependencies import GatewayFigures
from sim.model.storefront import BackendFigures
from sim.telemetry.encoding import EncodedDoc

PAYMENT_METHODS = ("credit_card", "credit_card", "credit_card", "debit_card", "paypal", "apple_pay")
MB = 1024 * 1024  # the documents give memory in bytes


class FinishedRequest(Protocol):
    """What a transaction document reads from a finished request (``storefront.Request``)."""

    arrival: float
    session_id: str
    queue_wait: float
    pool_wait: float
    db_time: float
    gateway_time: float
    upstream_time: float
    gc_wait: float


_TRANSACTION = (
    b'{"@timestamp":"%s%03dZ","event_type":"transaction","transaction":{"id":"%016x","name":%s},'
    b'"trace":{"id":"%032x"},"session":{"id":%s},%s,%s%s},"host":{"name":%s%s%d}},"event":{"outcome":"%s",'
    b'"duration":%d},"status":"%s","response_time_ms":%.1f,"timing":{"queue_wait_ms":%.1f,'
    b'"db_pool_wait_ms":%.1f,"db_time_ms":%.1f,"gateway_time_ms":%.1f,"upstream_time_ms":%.1f,'
    b'"gc_pause_ms":%.1f},%s%s}'
)
_ERROR = (b'{"@timestamp":"%s%03dZ","event_type":"error","transaction":{"id":"%016x","name":%s},'
          b'"trace":{"id":"%032x"},%s%s},"host":{"name":%s%s%d}},"event":{"outcome":"failure"},'
          b'"status":"error",%s')
_ORDER = (b',"order":{"order_id":"ORD-%s-%07d","amount":%a,%s,"items":%d,"payment_method":%s,'
          b'"payment_status":%s}')
_METHODS_JSON = tuple(orjson.dumps(m) for m in PAYMENT_METHODS)
_LOW64 = (1 << 64) - 1


class DocumentFactory:
    """Builds transaction, error and metric documents for one segment.

    Transactions and errors are written straight as JSON bytes with one ``%`` format: the
    parts that repeat (endpoint, host, customer, failure, the timestamp's second) are
    encoded once and cached, and numbers are formatted so the text is exactly what
    ``orjson.dumps`` makes of the rounded values (``%.1f`` of x is ``round(x, 1)`` as JSON
    for every value the model produces). ``tests/test_encoding.py`` holds the dict-building
    reference and checks the two agree."""

    def __init__(self, origin_epoch_ms: int, id_seed: int):
        self.origin_ms = origin_epoch_ms
        self.ts = TimestampFormatter()
        self.ids = random.Random(id_seed)
        self._seconds: dict[int, bytes] = {}  # epoch second -> b"2026-11-27T14:25:03."
        # id(object) -> (object, encoded parts); the object is kept to rule out a reused id
        self._endpoints: dict[int, tuple[Endpoint, bytes, bytes, bytes]] = {}
        self._customers: dict[int, tuple[Customer, bytes, bytes, bytes]] = {}
        self._failures: dict[int, tuple[Failure, bytes]] = {}
        self._hosts: dict[str, bytes] = {}
        self._versions: dict[str | None, bytes] = {None: b""}

    def timestamp(self, sim_s: float) -> str:
        return self.ts(self.origin_ms + round(sim_s * 1000.0))

    def new_ids(self) -> int:
        """192 random bits: the trace id (high 128) and the transaction id (low 64)."""
        return self.ids.getrandbits(192)

    def _second(self, sec: int) -> bytes:
        """``2026-11-27T14:25:03.`` for an epoch second."""
        prefix = self._seconds.get(sec)
        if prefix is None:
            if len(self._seconds) > 8192:
                self._seconds.clear()
            prefix = self._seconds[sec] = self.ts(sec * 1000)[:-4].encode()
        return prefix

    def _endpoint(self, endpoint: Endpoint) -> tuple[Endpoint, bytes, bytes, bytes]:
        """The name, ``"service":{"name":..`` and
        ``},"url":{..},"http":{..,"response":{"status_code":``."""
        parts = self._endpoints.get(id(endpoint))
        if parts is not None and parts[0] is endpoint:
            return parts
        parts = (
            endpoint,
            orjson.dumps(endpoint.name),
            b'"service":{"name":' + orjson.dumps(endpoint.service),
            b'},"url":{"path":' + orjson.dumps(endpoint.path) + b'},"http":{"request":{"method":'
            + orjson.dumps(endpoint.method) + b'},"response":{"status_code":',
        )
        self._endpoints[id(endpoint)] = parts
        return parts

    def _customer(self, customer: Customer) -> tuple[Customer, bytes, bytes, bytes]:
        """``"user":{..}`` / ``"client":{..},"user_agent":{..}`` / ``"currency":..`` of one
        shopper."""
        parts = self._customers.get(id(customer))
        if parts is not None and parts[0] is customer:
            return parts
        client = {"ip": customer.client_ip, "geo": {"country_iso_code": customer.country}}
        parts = (
            customer,
            b'"user":{"id":' + orjson.dumps(customer.customer_id) + b"}",
            b'"client":' + orjson.dumps(client) + b',"user_agent":{"original":'
            + orjson.dumps(customer.user_agent) + b"}",
            b'"currency":' + orjson.dumps(customer.currency),
        )
        self._customers[id(customer)] = parts
        return parts

    def _host(self, host: str) -> bytes:
        encoded = self._hosts.get(host)
        if encoded is None:
            encoded = self._hosts[host] = orjson.dumps(host)
        return encoded

    def _version(self, version: str | None) -> bytes:
        """``,"version":"2.13.4"`` (of the build that served it), or nothing: the load
        balancer answered itself, no build of ours did."""
        encoded = self._versions.get(version)
        if encoded is None:
            encoded = self._versions[version] = b',"version":' + orjson.dumps(version)
        return encoded

    def _failure(self, failure: Failure) -> bytes:
        """Everything of an error document after its status, for one failure kind."""
        cached = self._failures.get(id(failure))
        if cached is not None and cached[0] is failure:
            return cached[1]
        text = f"{failure.error_type}: {failure.message}"
        tail = orjson.dumps({
            "log": {"level": failure.severity, "logger": failure.component},
            "error": {"type": failure.error_type, "message": failure.message,
                      "stack_trace": f"{text}\n{failure.stack_trace}" if failure.stack_trace else text},
        })[1:]  # without its "{": it continues the document
        self._failures[id(failure)] = (failure, tail)
        return tail

    def transaction(
        self,
        request: FinishedRequest,
        ids: int,
        customer: Customer,
        endpoint: Endpoint,
        host: str,
        status_code: int,
        response_ms: float,
        order: bytes,
        version: str | None = None,
    ) -> EncodedDoc:
        """``ids`` from ``new_ids()``; ``order`` is ``b""`` or the member from ``order()``;
        ``version``: the build that served it (None: the load balancer answered)."""
        ep = self._endpoint(endpoint)
        cu = self._customer(customer)
        sec, milli = divmod(self.origin_ms + round(request.arrival * 1000.0), 1000)
        ok = status_code < 400
        body = _TRANSACTION % (
            self._second(sec), milli, ids & _LOW64, ep[1], ids >> 64,
            orjson.dumps(request.session_id), cu[1], ep[2], self._version(version), self._host(host),
            ep[3], status_code,
            b"success" if ok else b"failure", round(response_ms * 1e6),
            b"success" if ok else b"error", response_ms,
            request.queue_wait * 1000.0, request.pool_wait * 1000.0, request.db_time * 1000.0,
            request.gateway_time * 1000.0, request.upstream_time * 1000.0,
            request.gc_wait * 1000.0, cu[2], order,
        )
        return EncodedDoc("transaction", body)

    def error(
        self,
        at_s: float,
        ids: int,
        endpoint: Endpoint,
        host: str,
        failure: Failure,
        status_code: int,
        version: str | None = None,
    ) -> EncodedDoc:
        ep = self._endpoint(endpoint)
        sec, milli = divmod(self.origin_ms + round(at_s * 1000.0), 1000)
        body = _ERROR % (
            self._second(sec), milli, ids & _LOW64, ep[1], ids >> 64, ep[2], self._version(version),
            self._host(host), ep[3], status_code, self._failure(failure),
        )
        return EncodedDoc("error", body)

    def order(self, rng_random: Callable[[], float], customer: Customer, order_seq: int, day: str,
              payment_status: str) -> tuple[bytes, float]:
        """The ``,"order":{..}`` member of a checkout and its amount (as written)."""
        items = 1 + int(rng_random() * 4)
        amount = 0.0
        for _ in range(items):
            amount += 8.0 + 110.0 * rng_random() ** 2
        method = _METHODS_JSON[int(rng_random() * len(PAYMENT_METHODS))]
        amount = round(amount, 2)
        cu = self._customer(customer)
        # %a of a float is its repr, which is what orjson writes (the shortest round trip)
        text = _ORDER % (day.encode(), order_seq, amount, cu[3], items, method,
                         orjson.dumps(payment_status))
        return text, amount

    def change(self, at_s: float, host: str, change: ActiveChange, diff: list[tuple[str, Any, Any]],
               restart: bool, began_s: float, version: str | None) -> dict[str, Any]:
        """A change as the tool that made it logs it: the config service reaching one host,
        the CD tool's "host updated" line of a rolling deploy (``began_s``: when that host's
        step began; the last host's line ends the rollout), the flag service switching a flag
        (no host: it serves the fleet). Old and new values are written as text (``"20"``,
        ``"true"``, ``"50%"``): values of every type share one field. ``version``: what the
        host runs afterwards."""
        kind = change.kind
        settings = [{"name": name, "old": change_text(kind, old), "new": change_text(kind, new)}
                    for name, old, new in diff]
        fields: dict[str, Any] = {"id": change.change_id, "kind": kind, "settings": settings}
        event: dict[str, Any] = {"kind": "event", "category": ["configuration"], "type": ["change"],
                                 "action": CHANGE_ACTIONS[kind]}
        if kind == "deploy":
            step, steps = change.hosts.index(host) + 1, len(change.hosts)
            event |= {"start": self.timestamp(began_s), "end": self.timestamp(at_s)}
            fields["rollout"] = {"start": self.timestamp(change.epoch - self.origin_ms / 1000.0),
                                 "step": step, "steps": steps}
            if step == steps:
                fields["rollout"]["end"] = self.timestamp(at_s)
        doc: dict[str, Any] = {
            "@timestamp": self.timestamp(at_s), "event_type": "change", "event": event,
            "service": {"name": "storefront-app"} | ({"version": version} if version else {}),
        }
        if host:
            doc["host"] = {"name": host}
        doc["change"] = fields
        doc["message"] = change_message(change, host, settings, restart) + (
            f": {change.message}" if change.message else "")
        return doc

    # -- infrastructure metrics: dicts (a few per interval), orjson-encoded downstream -------
    def instance_metrics(self, ts: str, interval_s: float, f: InstanceFigures) -> dict[str, Any]:
        """One app instance's interval: its host, JVM, pools, breaker and requests."""
        threads, pool, breaker = f.threads, f.db_pool, f.breaker
        return {
            "@timestamp": ts,
            "event_type": "infrastructure_metric",
            "host": {"name": f.name, "cpu": {"usage": round(f.cpu.busy_share, 4)}},
            "service": {"name": "storefront-app", "type": "app-instance", "version": f.version,
                        "state": "running" if f.up else "stopped"},
            "jvm": {
                "memory": {"used": round(f.heap.used_mb * MB), "limit": round(f.heap.max_mb * MB)},
                "gc": {"duration": round(f.heap.gc_pause_s, 4), "count": f.heap.gc_count,
                       "full_count": f.heap.gc_full},
            },
            "thread_pool": {"active": threads.active, "queued": threads.queued,
                            "max": threads.max_threads},
            "db": {"client": {"connection": {
                "used": pool.in_use, "idle": pool.max_size - pool.in_use,
                "pending_requests": pool.pending, "max": pool.max_size}}},
            "circuit_breaker": {"state": breaker.state, "state_code": STATE_CODES[breaker.state],
                                "not_permitted_calls": breaker.not_permitted},
            "requests": {"rate": round(f.served / interval_s, 2),
                         "error_rate_pct": round(100.0 * f.errors / f.served, 2) if f.served else 0.0,
                         "p95_ms": round(p95(f.latencies) * 1000.0, 1)},
        }

    def backend_metrics(self, ts: str, interval_s: float, b: BackendFigures) -> list[dict[str, Any]]:
        """The shared backends' interval, one document each."""
        return [self.db_metrics(ts, interval_s, b.db), self.gateway_metrics(ts, b.gateway)]

    def db_metrics(self, ts: str, interval_s: float, db: DbServerFigures) -> dict[str, Any]:
        return {
            "@timestamp": ts, "event_type": "infrastructure_metric", "host": {"name": "db-01"},
            "service": {"name": "postgresql", "type": "database", "state": "running"},
            "db": {"active_queries": db.active, "queued_queries": db.queued,
                   "max_active": db.max_active, "queries_per_s": round(db.queries / interval_s, 2),
                   "avg_query_ms": round(1000.0 * db.query_s / db.queries, 2) if db.queries else 0.0,
                   "cache_hit_ratio": round(db.cache_hit_ratio, 4)},
        }

    def gateway_metrics(self, ts: str, gw: GatewayFigures) -> dict[str, Any]:
        return {
            "@timestamp": ts, "event_type": "infrastructure_metric",
            "host": {"name": "payment-gateway"},
            "service": {"name": "payment-gateway", "type": "external-dependency",
                        "state": "running"},
            "gateway": {"latency_p95_ms": round(p95(gw.latencies) * 1000.0, 1),
                        "calls": gw.calls, "timeouts": gw.timeouts, "failures": gw.failures},
        }


CHANGE_ACTIONS = {"config_push": "config_change", "deploy": "deployment", "feature_flag": "feature_flag"}


def change_text(kind: str, value: Any) -> str:
    """A changed value as text: a flag's share as ``off``, ``on`` or ``25%``."""
    if kind == "feature_flag":
        return "off" if not value else "on" if value >= 1.0 else f"{value * 100:g}%"
    return setting_text(value)


def change_message(change: ActiveChange, host: str, settings: list[dict[str, str]],
                   restart: bool) -> str:
    """The line the tool that made the change writes."""
    if change.kind == "deploy":
        s = settings[0]
        step, steps = change.hosts.index(host) + 1, len(change.hosts)
        done = "; rollout complete" if step == steps else ""
        return (f"deployment {change.change_id}: {host} updated storefront-app {s['old']} -> "
                f"{s['new']} ({step}/{steps}){done}")
    if change.kind == "feature_flag":
        s = settings[0]
        return f"feature flag {s['name']} changed {s['old']} -> {s['new']} ({change.change_id})"
    shown = ", ".join(f"{s['name']} {s['old']} -> {s['new']}" for s in settings)
    how = "restarting to apply" if restart else "applied live"
    return f"config push {change.change_id} to {host}: {shown} ({how})"


def setting_text(value: Any) -> str:
    """A setting's value as its YAML reads: ``true``, ``4``, ``5000.0``."""
    return orjson.dumps(value).decode() if not isinstance(value, str) else value


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank below) of an interval's times; sorts ``values``."""
    if not values:
        return 0.0
    values.sort()
    return values[min(len(values) - 1, int(0.95 * len(values)))]
