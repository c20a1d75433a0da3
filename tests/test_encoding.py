"""Pre-encoded documents are byte for byte what ``orjson.dumps`` makes of the plain dicts.

The dict builders below are the reference (the original ``DocumentFactory`` code); the
factory writes the same JSON text directly, without building dicts.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import Scenario
from sim.model.customers import Customer, make_customer_pool
from sim.model.endpoints import ENDPOINTS, Endpoint
from sim.model.failures import Failure, build_catalog
from sim.telemetry.documents import DocumentFactory
from sim.telemetry.encoding import EncodedDoc, bulk_lines

CUSTOMERS = make_customer_pool(3, 50)
FAILURES = list(build_catalog(Scenario.model_validate({}).storefront).values())
ODD = Customer('CUST-"\\q', "DE", "EUR", "10.0.0.1", "Mozilla/5.0 (Ünïcode; \u2028\t\x01)")

seconds = st.floats(min_value=0.0, max_value=4 * 86400.0, allow_nan=False)
waits = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=3600.0, allow_nan=False),
                  st.integers(0, 10**6).map(lambda n: n / 1e4 + 0.00005))


def reference_transaction(docs: DocumentFactory, req: Any, trace_id: str, txn_id: str,
                          endpoint: Endpoint, host: str, status_code: int, response_ms: float,
                          order: dict[str, Any] | None, version: str | None) -> dict[str, Any]:
    c = req.customer
    doc: dict[str, Any] = {
        "@timestamp": docs.timestamp(req.arrival),
        "event_type": "transaction",
        "transaction": {"id": txn_id, "name": endpoint.name},
        "trace": {"id": trace_id},
        "session": {"id": req.session_id},
        "user": {"id": c.customer_id},
        "service": {"name": endpoint.service} | ({"version": version} if version else {}),
        "host": {"name": host},
        "url": {"path": endpoint.path},
        "http": {"request": {"method": endpoint.method},
                 "response": {"status_code": status_code}},
        "event": {"outcome": "success" if status_code < 400 else "failure",
                  "duration": round(response_ms * 1e6)},
        "status": "success" if status_code < 400 else "error",
        "response_time_ms": round(response_ms, 1),
        "timing": {
            "queue_wait_ms": round(req.queue_wait * 1000.0, 1),
            "db_pool_wait_ms": round(req.pool_wait * 1000.0, 1),
            "db_time_ms": round(req.db_time * 1000.0, 1),
            "gateway_time_ms": round(req.gateway_time * 1000.0, 1),
            "upstream_time_ms": round(req.upstream_time * 1000.0, 1),
            "gc_pause_ms": round(req.gc_wait * 1000.0, 1),
        },
        "client": {"ip": c.client_ip, "geo": {"country_iso_code": c.country}},
        "user_agent": {"original": c.user_agent},
    }
    if order is not None:
        doc["order"] = order
    return doc


def reference_error(docs: DocumentFactory, at_s: float, trace_id: str, txn_id: str,
                    endpoint: Endpoint, host: str, failure: Failure, status_code: int,
                    version: str | None) -> dict[str, Any]:
    text = f"{failure.error_type}: {failure.message}"
    return {
        "@timestamp": docs.timestamp(at_s), "event_type": "error",
        "transaction": {"id": txn_id, "name": endpoint.name}, "trace": {"id": trace_id},
        "service": {"name": endpoint.service} | ({"version": version} if version else {}),
        "host": {"name": host}, "url": {"path": endpoint.path},
        "http": {"request": {"method": endpoint.method},
                 "response": {"status_code": status_code}},
        "event": {"outcome": "failure"}, "status": "error",
        "log": {"level": failure.severity, "logger": failure.component},
        "error": {"type": failure.error_type, "message": failure.message,
                  "stack_trace": f"{text}\n{failure.stack_trace}" if failure.stack_trace else text},
    }


def reference_order(rng_random: Any, customer: Customer, seq: int, day: str) -> dict[str, Any]:
    items = 1 + int(rng_random() * 4)
    amount = 0.0
    for _ in range(items):
        amount += 8.0 + 110.0 * rng_random() ** 2
    method = ("credit_card", "credit_card", "credit_card", "debit_card", "paypal",
              "apple_pay")[int(rng_random() * 6)]
    return {"order_id": f"ORD-{day}-{seq:07d}", "amount": round(amount, 2),
            "currency": customer.currency, "items": items, "payment_method": method}


@settings(max_examples=400, deadline=None)
@given(arrival=seconds, end=seconds, timing=st.lists(waits, min_size=7, max_size=7),
       status=st.sampled_from([200, 201, 404, 500, 503, 504]), who=st.integers(0, 50),
       which=st.sampled_from(sorted(ENDPOINTS)), host=st.sampled_from(["app-01", "lb-01", 'h"x']),
       seed=st.integers(0, 2**32), session=st.sampled_from(["sess-0bc161e577b50", "r1", 'a"\\b\n']),
       failure=st.sampled_from(FAILURES), status_text=st.sampled_from(["captured", "failed"]),
       version=st.sampled_from([None, "2.13.4", '2.14.0-rc"1']))
def test_encoded_documents_equal_orjson_of_the_dicts(arrival, end, timing, status, who, which, host,
                                                     seed, session, failure, status_text, version):
    customer = CUSTOMERS[who] if who < len(CUSTOMERS) else ODD
    endpoint = ENDPOINTS[which]
    docs = DocumentFactory(1_795_000_000_000 + seed % 1000, seed)
    twin = DocumentFactory(1_795_000_000_000 + seed % 1000, seed)
    req = SimpleNamespace(arrival=arrival, session_id=session, customer=customer,
                          queue_wait=timing[0], pool_wait=timing[1], db_time=timing[2],
                          gateway_time=timing[3], upstream_time=timing[4], gc_wait=timing[5])
    response_ms = timing[6] * 1000.0

    ids = docs.new_ids()
    bits = twin.ids.getrandbits(192)  # the original DocumentFactory.new_trace()
    trace_id, txn_id = f"{bits >> 64:032x}", f"{bits & 0xFFFFFFFFFFFFFFFF:016x}"

    draws = random.Random(seed)
    order_text, amount = docs.order(draws.random, customer, seed % 10**7, "20261127", status_text)
    order = reference_order(random.Random(seed).random, customer, seed % 10**7, "20261127")
    order["payment_status"] = status_text
    assert amount == order["amount"]

    for text, plain in ((b"", None), (order_text, order)):
        encoded = docs.transaction(req, ids, customer, endpoint, host, status, response_ms, text,
                                   version)
        expected = reference_transaction(twin, req, trace_id, txn_id, endpoint, host, status,
                                         response_ms, plain, version)
        assert encoded.body == orjson.dumps(expected)
        assert encoded.event_type == "transaction" and dict(encoded) == expected
        assert bulk_lines("x-000-000000001", encoded) == bulk_lines("x-000-000000001", expected)

    error = docs.error(end, ids, endpoint, host, failure, status, version)
    assert error.body == orjson.dumps(reference_error(twin, end, trace_id, txn_id, endpoint, host,
                                                      failure, status, version))
    assert error.event_type == "error"


def test_encoded_doc_reads_as_a_mapping():
    doc = EncodedDoc("transaction", b'{"event_type":"transaction","timing":{"gc_pause_ms":1.5}}')
    assert doc["timing"]["gc_pause_ms"] == 1.5
    assert doc.get("missing") is None and list(doc) == ["event_type", "timing"] and len(doc) == 2
