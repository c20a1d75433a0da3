"""Distributed traces: spans nest as the requests ran, agree with the transaction documents,
are kept by the tail sampler as documented, and come out the same on any engine and worker
count."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.config import load_scenario, parse_scenario
from sim.run.batch import simulate
from sim.telemetry.spans import SERVICE_MAP_FILE, SPANS_FILE, hash_id, iso_nanos

TODAY = dt.date(2026, 11, 27)
FAULTS = [
    None,
    {"type": "payment_gateway_slowdown", "magnitude": 130},
    {"type": "db_slow_queries", "magnitude": 8},
    {"type": "upstream_slowdown", "target": "inventory", "magnitude": 60},
    {"type": "memory_leak", "magnitude": 6},
]


def bulk_docs(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(_id, document) of every pair of a ``_bulk`` file."""
    lines = path.read_bytes().splitlines()
    return [(orjson.loads(a)["index"]["_id"], orjson.loads(d))
            for a, d in zip(lines[::2], lines[1::2], strict=True)]


def run(tmp: Path, name: str, scenario: dict[str, Any], **kw: Any) -> Path:
    out = tmp / name
    simulate(parse_scenario(scenario, "test"), TODAY, out, **kw)
    return out


def ns(iso: str) -> int:
    """Instant.toString() text back to epoch nanoseconds."""
    head, _, frac = iso[:-1].partition(".")
    sec = int(dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp())
    return sec * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def check_invariants(out: Path, share: float) -> dict[str, list[dict[str, Any]]]:
    """Every invariant a trace holds; returns the spans by trace id."""
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc_id, span in bulk_docs(out / SPANS_FILE):
        assert doc_id == span["spanId"]
        traces[span["traceId"]].append(span)
    transactions = {d["trace"]["id"]: d for _, d in bulk_docs(out / "all_data.ndjson")
                    if d["event_type"] == "transaction"}
    for trace_id, spans in traces.items():
        roots = [s for s in spans if s["parentSpanId"] == ""]
        assert len(roots) == 1, trace_id
        root = roots[0]
        tx = transactions[trace_id]
        assert root["spanId"] == tx["transaction"]["id"]
        assert root["durationInNanos"] == tx["event"]["duration"]
        # response_time_ms is the same time to 0.1 ms (written from the unrounded value)
        assert abs(root["durationInNanos"] / 1e6 - tx["response_time_ms"]) <= 0.05 + 1e-6
        assert abs(ns(root["startTime"]) - ns(tx["@timestamp"])) <= 500_000  # its ms, rounded
        by_id = {s["spanId"]: s for s in spans}
        assert len(by_id) == len(spans)
        for s in spans:
            assert ns(s["endTime"]) - ns(s["startTime"]) == s["durationInNanos"] >= 0
            assert s["traceGroup"] == root["name"]
            assert s["traceGroupFields"] == {"endTime": root["endTime"],
                                             "durationInNanos": root["durationInNanos"],
                                             "statusCode": root["status.code"]}
            if s is root:
                continue
            parent = by_id[s["parentSpanId"]]  # every parent is in the trace
            assert ns(parent["startTime"]) <= ns(s["startTime"])
            assert ns(s["endTime"]) <= ns(parent["endTime"])
    for trace_id, tx in transactions.items():
        failed = tx["event"]["outcome"] == "failure"
        sampled = int(trace_id[16:], 16) < share * 2**64
        if failed or sampled:
            assert trace_id in traces, (trace_id, tx["status"])
    assert set(traces) <= set(transactions)
    return traces


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), tps=st.floats(3, 25), share=st.sampled_from([0.0, 0.1, 1.0]),
       fault=st.sampled_from(FAULTS), engine=st.sampled_from(["fast", "simpy"]))
def test_spans_nest_and_agree_with_transactions(tmp_path_factory, seed, tps, share, fault, engine):
    scenario: dict[str, Any] = {
        "name": "spans", "seed": seed, "traffic": {"base_tps": tps},
        "window": {"start": "today 12:00", "end": "today 12:04", "warmup_minutes": 2},
        "output": {"traces": {"enabled": True, "sample_share": share, "slow_ms": 1500}},
    }
    if fault is not None:
        scenario["faults"] = [{**fault, "start": "today 11:59", "duration_minutes": 6}]
    out = run(tmp_path_factory.mktemp("spans"), "out", scenario, workers=1, engine=engine)
    traces = check_invariants(out, share)
    assert traces  # with any share, failed and slow traces and the share are there


def test_same_traces_on_every_engine_and_worker_count(tmp_path):
    scenario = {
        "name": "traces", "traffic": {"base_tps": 4},
        "window": {"start": "yesterday 23:56", "end": "today 00:04", "warmup_minutes": 2},
        "faults": [{"type": "payment_gateway_slowdown", "start": "yesterday 23:57",
                    "duration_minutes": 5, "magnitude": 130}],
        "output": {"traces": {"enabled": True, "sample_share": 0.2}},
    }
    one = run(tmp_path, "one", scenario, workers=1, engine="fast")
    two = run(tmp_path, "two", scenario, workers=2, engine="simpy")
    plain = run(tmp_path, "plain", {**scenario, "output": {}}, workers=1)
    for name in (SPANS_FILE, SERVICE_MAP_FILE, "all_data.ndjson"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    # traces are an addition: the documents are the same bytes with or without them
    assert (plain / "all_data.ndjson").read_bytes() == (one / "all_data.ndjson").read_bytes()
    assert not (plain / SPANS_FILE).exists()
    edges = bulk_docs(one / SERVICE_MAP_FILE)
    assert len({i for i, _ in edges}) == len(edges)  # each edge once across both segments
    assert {d["hashId"] for _, d in edges} == {i for i, _ in edges}
    check_invariants(one, 0.2)


def test_payment_demo_slowest_trace_waits_on_the_gateway_holding_its_connection(tmp_path):
    """During the payment gateway slowdown the slowest trace is a checkout whose charge hit
    the 30 s read timeout while its transaction held a pooled connection across it."""
    out = tmp_path / "demo"
    demo = load_scenario(str(Path(__file__).resolve().parent.parent / "scenarios/payment_timeout.yaml"),
                         {"window.start": "today 14:27", "window.end": "today 14:33",
                          "output.traces.enabled": True, "output.traces.sample_share": 0.0},
                         {})
    simulate(demo, TODAY, out, workers=1)
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, span in bulk_docs(out / SPANS_FILE):
        traces[span["traceId"]].append(span)
    slowest = max(traces.values(), key=lambda t: t[0]["traceGroupFields"]["durationInNanos"])
    root = next(s for s in slowest if s["parentSpanId"] == "")
    assert root["name"] == "POST /api/checkout"
    timeout_ns = demo.storefront.payment_gateway.read_timeout_ms * 1_000_000
    charges = [s for s in slowest if s["name"] == "POST /v2/charges"]
    longest = max(charges, key=lambda s: s["durationInNanos"])
    assert 0.95 * timeout_ns <= longest["durationInNanos"] <= timeout_ns
    assert longest["status.code"] == 2 and "Read timed out" in longest["status.message"]
    held = next(s for s in slowest if s["name"] == "CheckoutService.placeOrder")
    assert longest["parentSpanId"] == held["spanId"]
    writes = sorted((s for s in slowest if s["parentSpanId"] == held["spanId"]
                     and s["name"].startswith(("INSERT", "UPDATE"))), key=lambda s: s["startTime"])
    assert writes and ns(writes[0]["endTime"]) <= ns(longest["startTime"])  # INSERT, then the charge
    waits = [s for s in slowest if s["name"] == "HikariPool-1.getConnection"]
    assert all(ns(w["endTime"]) <= ns(longest["startTime"]) for w in waits)


def test_service_map_hash_is_data_preppers():
    """The hashId of Data Prepper's own example document (its service-map schema docs):
    inventory calling the database's updateItem in the client_checkout trace group."""
    assert hash_id("inventory", "SPAN_KIND_CLIENT", "client_checkout", None,
                   ("updateItem", "database")) == "7/jRp2VF7544pBN6+mK2vw=="
    assert hash_id("database", "SPAN_KIND_SERVER", "client_checkout",
                   ("updateItem", "database"), None) == "lZcUyuhGYfnaQqt+r73njA=="


def test_times_print_as_java_instants():
    base = 1_764_000_000 * 1_000_000_000
    assert iso_nanos(base).endswith(":00Z")
    assert iso_nanos(base + 695_000_000).endswith(":00.695Z")
    assert iso_nanos(base + 695_100_000).endswith(":00.695100Z")
    assert iso_nanos(base + 695_100_001).endswith(":00.695100001Z")
