"""Distributed traces: a request's recorded steps as OpenTelemetry spans, in the layout Data
Prepper writes for OpenSearch Trace Analytics, kept by a tail sampler as a collector would.

The model records each traced request's steps cheaply while it runs (``Request.spans``:
step, start, end, outcome). When the request is answered, ``Tracer.finish`` decides whether
its trace is kept (every failed one, every slow one, and a share of the rest chosen from the
trace id, like OpenTelemetry's TraceIdRatioBased sampler) and only then builds documents.

Layout (data-prepper, ``OTelProtoOpensearchCodec.parseSpan`` and ``JacksonSpan``): flat
``span.attributes.*`` / ``resource.attributes.*`` keys with ``@`` for the dots of the
semantic-convention names, ``status.code``, times as ``Instant.toString()`` prints them, and
``traceGroup`` / ``traceGroupFields`` of the root on every span (what Data Prepper's
``otel_traces`` processor fills in). Service-map edges are Data Prepper's
``ServiceMapRelationship``: a client span whose child runs in another service gives a
destination and a target relationship, a service with no edge in a trace an isolated node;
``hashId`` is base64 of the MD5 of its fields, joined as Data Prepper joins them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from sim.model.failures import Failure
from sim.model.request import (
    STEP_CHARGE,
    STEP_FAILED,
    STEP_GC,
    STEP_INVENTORY,
    STEP_POOL_WAIT,
    STEP_READ,
    STEP_RECOMMENDATIONS,
    STEP_TRANSACTION,
    STEP_WRITE,
    Request,
)
from sim.model.resources.dependencies import DECLINED, FAILED, OK, TIMED_OUT

SPAN_INDEX = "otel-v1-apm-span"  # the alias Trace Analytics reads; first index -000001
SERVICE_MAP_INDEX = "otel-v1-apm-service-map"
SPANS_FILE = "otel-v1-apm-span.ndjson"
SERVICE_MAP_FILE = "otel-v1-apm-service-map.ndjson"

STATUS_UNSET, STATUS_ERROR = 0, 2
_LOW64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # odd: k * _GOLDEN differs for every k, so child ids differ

# the internal services the app calls: (service.name, the operation they serve, URL)
UPSTREAM_SPANS = {
    STEP_INVENTORY: ("inventory-service", "GET /api/v1/stock",
                     "http://inventory-service:8080/api/v1/stock"),
    STEP_RECOMMENDATIONS: ("recommendation-service", "GET /api/v1/recommendations",
                           "http://recommendation-service:8080/api/v1/recommendations"),
}
GATEWAY_URL = "https://api.paygate.example/v2/charges"
# the statements each endpoint runs, in order: reads, then writes ((operation, table, text))
_CART = ("SELECT", "cart_items", "SELECT * FROM cart_items WHERE cart_id = ?")
STATEMENTS: dict[str, tuple[tuple[tuple[str, str, str], ...], tuple[tuple[str, str, str], ...]]] = {
    "home": ((("SELECT", "products",
               "SELECT id, name, price FROM products WHERE featured = true LIMIT ?"),), ()),
    "search": ((("SELECT", "products", "SELECT id, name, price FROM products "
                 "WHERE search_vector @@ plainto_tsquery(?) LIMIT ?"),
                ("SELECT", "products", "SELECT category, count(*) FROM products "
                 "WHERE search_vector @@ plainto_tsquery(?) GROUP BY category")), ()),
    "product": ((("SELECT", "products", "SELECT * FROM products WHERE sku = ?"),), ()),
    "cart": ((_CART,), (("INSERT", "cart_items",
                         "INSERT INTO cart_items (cart_id, sku, quantity) VALUES (?, ?, ?)"),)),
    "checkout": ((_CART,), (("INSERT", "orders", "INSERT INTO orders (customer_id, amount, status) "
                                                 "VALUES (?, ?, 'PENDING')"),
                            ("UPDATE", "orders", "UPDATE orders SET status = 'PAID' WHERE id = ?"))),
}
_ANY_STATEMENT = ("SELECT", "products", "SELECT 1")
_READ_TIMEOUT = ("java.net.SocketTimeoutException", "Read timed out")
_GATEWAY_ATTRIBUTES = {"span.attributes.http@method": "POST", "span.attributes.http@url": GATEWAY_URL,
                       "span.attributes.net@peer@name": "api.paygate.example",
                       "span.attributes.peer@service": "payment-gateway"}
_NOT_PERMITTED = ("io.github.resilience4j.circuitbreaker.CallNotPermittedException",
                  "CircuitBreaker 'paymentGateway' is OPEN and does not permit further calls")
_GATEWAY_ANSWER: dict[int, tuple[int, str | None]] = {
    OK: (201, None), DECLINED: (402, "402 Payment Required"),
    FAILED: (503, "503 Service Unavailable"), TIMED_OUT: (0, None)}


_SECONDS: dict[int, str] = {}


def iso_nanos(ns: int) -> str:
    """Epoch nanoseconds as Java's ``Instant.toString()`` prints them (what Data Prepper
    writes): the fraction in groups of three digits, none when it is zero."""
    sec, frac = divmod(ns, 1_000_000_000)
    text = _SECONDS.get(sec)
    if text is None:
        if len(_SECONDS) > 8192:
            _SECONDS.clear()
        text = _SECONDS[sec] = dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac % 1000:  # the usual case first: a simulated time has every digit
        return f"{text}.{frac:09d}Z"
    if frac == 0:
        return text + "Z"
    if frac % 1_000_000 == 0:
        return f"{text}.{frac // 1_000_000:03d}Z"
    return f"{text}.{frac // 1000:06d}Z"


def hash_id(service: str, kind: str | None, trace_group: str | None,
            target: tuple[str, str] | None, destination: tuple[str, str] | None) -> str:
    """Data Prepper's deterministic ``hashId`` of a relationship: base64(MD5) of its fields
    joined by commas as Java concatenates them (a null is ``null``); endpoints are
    (resource, domain)."""
    text = f"{service},{kind},{trace_group},"
    if target is not None:
        text += f"{target[0]},{target[1]}"
    text += ","
    if destination is not None:
        text += f"{destination[0]},{destination[1]}"
    return base64.b64encode(hashlib.md5(text.encode(), usedforsecurity=False).digest()).decode()


def relationship(service: str, kind: str | None, trace_group: str,
                 target: tuple[str, str] | None, destination: tuple[str, str] | None
                 ) -> dict[str, Any]:
    """A service-map document as Data Prepper's Jackson writes it (nulls included)."""
    def endpoint(e: tuple[str, str] | None) -> dict[str, str] | None:
        return None if e is None else {"resource": e[0], "domain": e[1]}

    return {"serviceName": service, "kind": kind, "destination": endpoint(destination),
            "target": endpoint(target), "traceGroupName": trace_group,
            "hashId": hash_id(service, kind, trace_group, target, destination)}


class Tracer:
    """One segment's traces: the tail sampler and the span documents of kept traces.

    ``emit`` takes a kept trace's ``_bulk`` line pairs (one bytes per trace; ``_id`` is the
    span id, as Data Prepper writes it); the service-map edges seen are in ``edges``
    (hashId -> document), for the segment's end."""

    def __init__(self, origin_ms: int, sample_share: float, slow_ms: float,
                 emit: Callable[[bytes], None]) -> None:
        self.origin_ns = origin_ms * 1_000_000
        self.threshold = int(sample_share * (1 << 64))
        self.slow_ms = slow_ms
        self.emit = emit
        self.edges: dict[str, dict[str, Any]] = {}
        # (trace group, services called) of the traces whose edges are in ``edges`` already
        self.mapped: set[tuple[str, frozenset[int]]] = set()
        self.kept = 0
        self.seen = 0
        self.spans = 0

    def keep(self, trace_id: int, status_code: int, response_ms: float) -> bool:
        """The tail sampler: every failed trace, every slow one, and ``sample_share`` of the
        rest, from the trace id's low 64 bits (random bits: the same trace is always kept)."""
        return status_code >= 400 or response_ms >= self.slow_ms or \
            (trace_id & _LOW64) < self.threshold

    def finish(self, req: Request, ids: int, failure: Failure | None, response_ms: float) -> None:
        """An answered request (``ids`` as in its transaction document): its trace, if kept."""
        self.seen += 1
        trace_id = ids >> 64
        if not self.keep(trace_id, req.status_code, response_ms):
            return
        self.kept += 1
        docs = TraceBuilder(self, req, ids, failure, response_ms).build()
        self.spans += len(docs)
        self.emit(b"".join(b'{"index":{"_id":"' + d["spanId"].encode() + b'"}}\n' + orjson.dumps(d)
                           + b"\n" for d in docs))

    def service_map_lines(self) -> bytes:
        """The segment's service-map documents as ``_bulk`` line pairs (``_id``: hashId)."""
        return b"".join(b'{"index":{"_id":' + orjson.dumps(h) + b'}}\n' + orjson.dumps(d) + b"\n"
                        for h, d in self.edges.items())


class TraceBuilder:
    """The spans of one kept trace: the root (the transaction) and its children, every time
    inside the root's [start, end] (a request the load balancer timed out goes on inside
    the instance; its trace ends where the client's answer did)."""

    def __init__(self, tracer: Tracer, req: Request, ids: int, failure: Failure | None,
                 response_ms: float) -> None:
        self.tracer = tracer
        self.req = req
        self.trace_id = f"{ids >> 64:032x}"
        self.root_id = ids & _LOW64
        self.failure = failure
        self.start = tracer.origin_ns + round(req.arrival * 1e9)
        self.end = self.start + round(response_ms * 1e6)  # the transaction's event.duration
        endpoint = req.endpoint
        self.service = endpoint.service
        self.name = f"{endpoint.method} {endpoint.path}"
        self.root_status = STATUS_ERROR if req.status_code >= 500 else STATUS_UNSET
        self.group = {"endTime": iso_nanos(self.end), "durationInNanos": self.end - self.start,
                      "statusCode": self.root_status}
        self.resource = {"resource.attributes.service@name": self.service,
                         "resource.attributes.host@name": req.host}
        self.count = 0

    def ns(self, t: float) -> int:
        """A simulated time in epoch nanoseconds, inside the root."""
        return min(max(self.tracer.origin_ns + round(t * 1e9), self.start), self.end)

    def next_id(self) -> int:
        self.count += 1
        return (self.root_id + self.count * _GOLDEN) & _LOW64

    def span(self, span_id: int, parent: str, name: str, kind: str, start: int, end: int,
             service: str, attributes: dict[str, Any], status: int = STATUS_UNSET,
             message: str | None = None, events: list[dict[str, Any]] | None = None
             ) -> dict[str, Any]:
        """One span document, in Data Prepper's layout."""
        doc: dict[str, Any] = {
            "traceId": self.trace_id, "spanId": f"{span_id:016x}", "traceState": "",
            "parentSpanId": parent, "name": name, "kind": kind,
            "startTime": iso_nanos(start), "endTime": iso_nanos(end),
            "durationInNanos": end - start, "serviceName": service,
            "events": events or [], "links": [], "droppedAttributesCount": 0,
            "droppedEventsCount": 0, "droppedLinksCount": 0,
            "traceGroup": self.name, "traceGroupFields": self.group,
        }
        doc.update(attributes)
        doc["status.code"] = status
        if message is not None:
            doc["status.message"] = message
        return doc

    def build(self) -> list[dict[str, Any]]:
        """Root first, then the children in the order they started."""
        req = self.req
        steps = sorted(req.spans or (), key=lambda s: (s[1], s[0]))
        tx = next((s for s in steps if s[0] == STEP_TRANSACTION), None)
        tx_id = self.next_id() if tx is not None else 0
        root_hex = f"{self.root_id:016x}"
        children: list[dict[str, Any]] = []
        root_events: list[dict[str, Any]] = []
        tx_events: list[dict[str, Any]] = []
        reads = writes = 0
        for step in steps:
            kind = step[0]
            if kind == STEP_TRANSACTION:
                continue
            inside = tx is not None and tx[1] <= step[1] and step[2] <= tx[2]
            parent = f"{tx_id:016x}" if inside else root_hex
            if kind == STEP_GC:
                (tx_events if inside else root_events).append(self.gc_event(step))
            elif kind in (STEP_READ, STEP_WRITE):
                n = reads if kind == STEP_READ else writes
                children.append(self.db_span(parent, step, n))
                if kind == STEP_READ:
                    reads += 1
                else:
                    writes += 1
            elif kind in (STEP_INVENTORY, STEP_RECOMMENDATIONS):
                children.extend(self.upstream_spans(parent, step))
            else:
                children.append(self.app_span(parent, step))
        docs = [self.root(root_events)]
        if tx is not None:
            docs.append(self.transaction_span(tx_id, root_hex, tx, tx_events))
        docs.extend(children)
        # a trace's edges depend only on its group and the services it called
        shape = (self.name, frozenset(s[0] for s in steps if s[0] in UPSTREAM_SPANS))
        if shape not in self.tracer.mapped:
            self.tracer.mapped.add(shape)
            self.map_edges(docs)
        return docs

    def root(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The server span: the transaction document's request, seen from the app."""
        req = self.req
        endpoint = req.endpoint
        failure = self.failure
        message = None
        if failure is not None:
            events.append(exception_event(self.end, failure.error_type, failure.message))
            if self.root_status == STATUS_ERROR:
                message = f"{failure.error_type}: {failure.message}"
        attributes = {"span.attributes.http@method": endpoint.method,
                      "span.attributes.http@route": endpoint.path,
                      "span.attributes.http@target": endpoint.path,
                      "span.attributes.http@status_code": req.status_code,
                      "span.attributes.session@id": req.session_id, **self.resource}
        return self.span(self.root_id, "", self.name, "SPAN_KIND_SERVER", self.start, self.end,
                         self.service, attributes, self.root_status, message, events)

    def transaction_span(self, span_id: int, parent: str, step: tuple[int, float, float, int],
                         events: list[dict[str, Any]]) -> dict[str, Any]:
        """The order's database transaction: one pooled connection asked for at its start
        and held to its end, across every step inside (the payment call included)."""
        attributes = {"span.attributes.code@namespace": "com.storefront.checkout.CheckoutService",
                      "span.attributes.code@function": "placeOrder",
                      "span.attributes.db@system": "postgresql", **self.resource}
        return self.span(span_id, parent, "CheckoutService.placeOrder", "SPAN_KIND_INTERNAL",
                         self.ns(step[1]), self.ns(step[2]), self.service, attributes,
                         events=events)

    def db_span(self, parent: str, step: tuple[int, float, float, int], n: int) -> dict[str, Any]:
        """A statement on the shared database (a deadlocked write fails)."""
        reads, writes = STATEMENTS.get(self.req.endpoint.name, ((), ()))
        options = reads if step[0] == STEP_READ else writes
        operation, table, statement = options[min(n, len(options) - 1)] if options else _ANY_STATEMENT
        attributes = {"span.attributes.db@system": "postgresql",
                      "span.attributes.db@name": "storefront",
                      "span.attributes.db@statement": statement,
                      "span.attributes.db@operation": operation,
                      "span.attributes.net@peer@name": "db-01", **self.resource}
        status, message, events = STATUS_UNSET, None, None
        if step[3] == STEP_FAILED and self.failure is not None:
            status, message = STATUS_ERROR, f"{self.failure.error_type}: {self.failure.message}"
            events = [exception_event(self.ns(step[2]), self.failure.error_type,
                                      self.failure.message)]
        return self.span(self.next_id(), parent, f"{operation} storefront.{table}",
                         "SPAN_KIND_CLIENT", self.ns(step[1]), self.ns(step[2]), self.service,
                         attributes, status, message, events)

    def upstream_spans(self, parent: str, step: tuple[int, float, float, int]
                       ) -> list[dict[str, Any]]:
        """One GET attempt: the app's client span and, under it, the service's own server
        span (a network hop each way inside the client's time)."""
        service, operation, url = UPSTREAM_SPANS[step[0]]
        start, end = self.ns(step[1]), self.ns(step[2])
        client_id = self.next_id()
        timed_out = step[3] == TIMED_OUT
        attributes: dict[str, Any] = {"span.attributes.http@method": "GET",
                                      "span.attributes.http@url": url,
                                      "span.attributes.net@peer@name": service, **self.resource}
        if not timed_out:
            attributes["span.attributes.http@status_code"] = 200
        client = self.span(client_id, parent, operation, "SPAN_KIND_CLIENT", start, end,
                           self.service, attributes, STATUS_ERROR if timed_out else STATUS_UNSET,
                           ": ".join(_READ_TIMEOUT) if timed_out else None,
                           [exception_event(end, *_READ_TIMEOUT)] if timed_out else None)
        hop = min(500_000, (end - start) // 4)
        server_attributes = {"span.attributes.http@method": "GET",
                             "span.attributes.http@route": operation.split(" ", 1)[1],
                             "span.attributes.http@status_code": 200,
                             "resource.attributes.service@name": service,
                             "resource.attributes.host@name": f"{service}-01"}
        server = self.span(self.next_id(), client["spanId"], operation, "SPAN_KIND_SERVER",
                           start + hop, end - hop, service, server_attributes)
        return [client, server]

    def app_span(self, parent: str, step: tuple[int, float, float, int]) -> dict[str, Any]:
        """A pooled-connection wait, a payment gateway attempt or the breaker's refusal."""
        kind, began, ended, outcome = step
        start, end = self.ns(began), self.ns(ended)
        attributes: dict[str, Any] = dict(self.resource)
        error: tuple[str, str] | None = None
        if kind == STEP_POOL_WAIT:
            name, span_kind = "HikariPool-1.getConnection", "SPAN_KIND_INTERNAL"
            attributes["span.attributes.db@system"] = "postgresql"
            if outcome == STEP_FAILED and self.failure is not None:
                error = (self.failure.error_type, self.failure.message)
        elif kind == STEP_CHARGE:
            name, span_kind = "POST /v2/charges", "SPAN_KIND_CLIENT"
            code, text = _GATEWAY_ANSWER.get(outcome, (0, None))
            attributes.update(_GATEWAY_ATTRIBUTES)
            if code:
                attributes["span.attributes.http@status_code"] = code
            if outcome == TIMED_OUT:
                error = _READ_TIMEOUT
            elif text is not None:
                error = ("org.springframework.web.client.HttpStatusCodeException", text)
        else:  # STEP_BREAKER
            name, span_kind = "CircuitBreaker paymentGateway", "SPAN_KIND_INTERNAL"
            error = _NOT_PERMITTED
        if error is None:
            return self.span(self.next_id(), parent, name, span_kind, start, end, self.service,
                             attributes)
        return self.span(self.next_id(), parent, name, span_kind, start, end, self.service,
                         attributes, STATUS_ERROR, ": ".join(error), [exception_event(end, *error)])

    def gc_event(self, step: tuple[int, float, float, int]) -> dict[str, Any]:
        """A stop-the-world pause that held this request's thread off its core."""
        return {"time": iso_nanos(self.ns(step[1])), "name": "jvm.gc.pause",
                "attributes": {"jvm@gc@pause_ms": round((step[2] - step[1]) * 1000.0, 1),
                               "host@name": self.req.host},
                "droppedAttributesCount": 0}

    def map_edges(self, docs: list[dict[str, Any]]) -> None:
        """Data Prepper's service-map relationships of this trace into the tracer's edges."""
        by_id = {d["spanId"]: d for d in docs}
        linked: set[str] = set()
        edges = self.tracer.edges
        for child in docs:
            parent = by_id.get(child["parentSpanId"])
            if parent is None or parent["serviceName"] == child["serviceName"]:
                continue
            linked.update((parent["serviceName"], child["serviceName"]))
            for rel in (relationship(parent["serviceName"], parent["kind"], self.name, None,
                                     (child["name"], child["serviceName"])),
                        relationship(child["serviceName"], child["kind"], self.name,
                                     (child["name"], child["serviceName"]), None)):
                edges.setdefault(rel["hashId"], rel)
        for service in sorted({d["serviceName"] for d in docs} - linked):
            rel = relationship(service, None, self.name, None, None)
            edges.setdefault(rel["hashId"], rel)


def exception_event(ns: int, error_type: str, message: str) -> dict[str, Any]:
    """OpenTelemetry's ``exception`` span event (attribute dots written as ``@``)."""
    return {"time": iso_nanos(ns), "name": "exception",
            "attributes": {"exception@type": error_type, "exception@message": message},
            "droppedAttributesCount": 0}
