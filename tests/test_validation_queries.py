"""The seed's validation queries and each demo scenario's evidence, asserted from the NDJSON."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sim.cli import main
from sim.config import parse_scenario
from sim.model.traffic import DailySchedule
from sim.outputs.validation_queries import (
    check_data_distribution,
    find_performance_incidents,
    iter_docs,
    minute_view,
)
from sim.run.batch import simulate

TODAY = dt.date(2026, 11, 27)


@cache
def generate(path: str, start: str, end: str, out: str, faults: str | None = None,
             **overrides: Any) -> Path:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    raw.setdefault("window", {}).update(start=start, end=end, warmup_minutes=5)
    if faults is not None:
        raw["faults"] = orjson.loads(faults)
    target = Path(out)
    simulate(parse_scenario(raw, path, overrides), TODAY, target)
    return target


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vq")


def incidents(out: Path) -> list[dict[str, Any]]:
    lines = (out / "incidents.ndjson").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines[1::2]]


def epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def app_metrics(out: Path) -> list[dict[str, Any]]:
    return [d for d in iter_docs(out / "all_data.ndjson")
            if d["event_type"] == "infrastructure_metric" and d["service"]["type"] == "app-instance"]


def test_payment_timeout_evidence_and_seed_queries(tmp_root: Path):
    out = generate("scenarios/payment_timeout.yaml", "today 14:15", "today 14:50",
                   str(tmp_root / "pay"))
    (rec,) = incidents(out)
    assert rec["observed"] and rec["incident_type"] == "payment_gateway_timeout"
    # the seed: response time ~300 ms -> ~30,000 ms, ~65 payment timeout errors, breaker opens
    view = minute_view(out / "all_data.ndjson")
    before = [view.p95(m) for m in view.requests if m * 60 < epoch(rec["fault_start"])]
    during = [view.p95(m) for m in view.requests
              if epoch(rec["symptom_start"]) <= m * 60 < epoch(rec["symptom_end"])]
    # p95 jumps into the seed's incident envelope; the slowest requests wait out the 30 s
    # read timeout (fast connection-pool failures keep the p95 itself below that)
    assert max(before) < 1000 and max(during) >= 5_000
    timeouts = view.error_types["com.storefront.payment.PaymentGatewayTimeoutException"]
    assert 30 <= timeouts <= 200
    assert view.error_types["io.github.resilience4j.circuitbreaker.CallNotPermittedException"] > 0
    assert any(d["circuit_breaker"]["state"] == "OPEN" for d in view.metrics
               if d["service"]["type"] == "app-instance")
    # Find Performance Incidents: hits exist, and (almost) all fall inside the windows
    windows = [(epoch(rec["symptom_start"]), epoch(rec["symptom_end"]))]
    hits = find_performance_incidents(out / "all_data.ndjson", windows)
    assert hits.total > 0 and hits.outside_share < 0.05
    assert len(hits.latest) == 10
    assert hits.latest[0]["@timestamp"] >= hits.latest[-1]["@timestamp"]
    # Check Data Distribution: mostly successes, stats over response_time_ms
    dist = check_data_distribution(out / "all_data.ndjson")
    assert dist.status["success"] > 3 * dist.status["error"]
    assert dist.min > 0 and dist.max >= 29_000 and 150 < dist.avg < 5000
    assert sorted(dist.hourly) == ["2026-11-27T14:00:00Z"]


def test_db_pool_exhaustion_evidence(tmp_root: Path):
    out = generate("scenarios/db_pool_exhaustion.yaml", "yesterday 12:10", "yesterday 12:40",
                   str(tmp_root / "db"))
    (rec,) = incidents(out)
    assert rec["observed"] and rec["incident_type"] == "db_connection_pool_exhaustion"
    assert rec["first_saturated"]["event"] == "db_pool_exhausted"
    lo, hi = epoch(rec["symptom_start"]), epoch(rec["symptom_end"])
    inside = [d for d in app_metrics(out) if lo <= epoch(d["@timestamp"]) < hi]
    outside = [d for d in app_metrics(out) if epoch(d["@timestamp"]) < epoch(rec["fault_start"])]
    assert any(d["db"]["client"]["connection"]["pending_requests"] > 0
               and d["db"]["client"]["connection"]["used"] == d["db"]["client"]["connection"]["max"]
               for d in inside)
    assert any(d["thread_pool"]["active"] == d["thread_pool"]["max"] and d["thread_pool"]["queued"]
               for d in inside)
    assert not any(d["thread_pool"]["queued"] for d in outside)
    assert {"cart", "checkout", "home", "product", "search"} <= set(rec["affected_endpoints"])
    # the seed's story: connections run out first, so HikariCP's timeout is the main error,
    # not Tomcat turning requests away
    kinds = rec["impact"]["errors_by_kind"]
    assert kinds["db_pool_timeout"] > 2 * kinds.get("queue_rejected", 0)
    errors = minute_view(out / "all_data.ndjson", keep_metrics=False).error_types
    assert max(errors, key=errors.get) == "java.sql.SQLTransientConnectionException"
    # the scans evicted the page cache: after the fix, queries stay slow until traffic warms it
    db = [d for d in iter_docs(out / "all_data.ndjson") if d.get("host", {}).get("name") == "db-01"]
    end = epoch(rec["fault_end"])
    ratio = [d["db"]["cache_hit_ratio"] for d in db if epoch(d["@timestamp"]) >= end]
    assert ratio[0] < 0.2 and ratio == sorted(ratio) and ratio[-1] > 0.5
    assert rec["recovery_after_cause_min"] >= 3


def test_memory_leak_evidence(tmp_root: Path):
    """The demo's cause is release 2.14.0, rolled out to app-02 and app-03 (its bug leaks in
    checkout): the heap fills gradually on exactly those hosts, and the record names the deploy."""
    out = generate("scenarios/memory_leak.yaml", "2 days ago 18:20", "2 days ago 18:55",
                   str(tmp_root / "mem"))
    (rec,) = incidents(out)
    assert rec["observed"] and rec["incident_type"] == "memory_pressure"
    assert rec["cause"]["kind"] == "change" and rec["cause"]["change_kind"] == "deploy"
    assert rec["cause"]["settings"] == [{"name": "version", "old": "2.13.4", "new": "2.14.0"}]
    ooms = {e["component"]: epoch(e["at"]) for e in rec["chain"] if e["event"] == "out_of_memory"}
    assert set(ooms) == {"app-02", "app-03"}
    metrics = [d for d in app_metrics(out) if d["host"]["name"] == "app-02"]
    deployed = min(epoch(d["@timestamp"]) for d in metrics if d["service"]["version"] == "2.14.0")
    start = epoch(rec["fault_start"])
    assert start < deployed < start + 120
    oom_at = ooms["app-02"]
    assert oom_at > deployed + 120  # gradual: the heap needs minutes to fill

    def window(lo: float, hi: float) -> list[dict[str, Any]]:
        return [d for d in metrics if lo <= epoch(d["@timestamp"]) < hi]

    early, late = window(start - 300, start), window(oom_at - 300, oom_at)
    # the floor of the sawtooth (what survives a collection) rises
    assert min(d["jvm"]["memory"]["used"] for d in late) > min(d["jvm"]["memory"]["used"] for d in early)
    assert sum(d["jvm"]["gc"]["count"] for d in late) > 2 * sum(d["jvm"]["gc"]["count"] for d in early)
    assert sum(d["jvm"]["gc"]["duration"] for d in late) > 2 * sum(d["jvm"]["gc"]["duration"] for d in early)
    errors = minute_view(out / "all_data.ndjson", keep_metrics=False).error_types
    assert errors.get("java.lang.OutOfMemoryError", 0) >= 1
    assert errors.get("UpstreamPrematureClose", 0) >= 1  # in-flight requests lost with the JVM


def test_memory_leak_restart_load_balancer_and_cold_jvm(tmp_root: Path):
    out = generate("scenarios/memory_leak.yaml", "2 days ago 18:20", "2 days ago 18:55",
                   str(tmp_root / "mem"))
    (rec,) = incidents(out)
    ooms = {e["component"]: epoch(e["at"]) for e in rec["chain"] if e["event"] == "out_of_memory"}
    assert ooms
    docs = list(iter_docs(out / "all_data.ndjson"))
    # the load balancer keeps sending to a dead JVM until two health checks (5 s apart) fail
    refused = [epoch(d["@timestamp"]) for d in docs
               if d["event_type"] == "error" and d["error"]["type"] == "UpstreamConnectError"]
    assert refused
    assert all(any(0 <= t - oom <= 10.5 for oom in ooms.values()) for t in refused)
    host, oom = min(ooms.items(), key=lambda kv: kv[1])
    txns = [d for d in docs if d["event_type"] == "transaction" and d["transaction"]["name"] != "checkout"]
    served = sorted(epoch(d["@timestamp"]) for d in txns if d["host"]["name"] == host)
    back = min(t for t in served if t > oom)
    assert back - oom >= 45  # restart_seconds, then passing health checks

    def median_ms(hosts: set[str], lo: float, hi: float) -> float:
        values = sorted(d["response_time_ms"] - d["timing"]["gc_pause_ms"] for d in txns
                        if d["host"]["name"] in hosts and lo <= epoch(d["@timestamp"]) < hi)
        return values[len(values) // 2]

    # a cold JVM: much slower than the warm instance beside it, warming up with traffic
    cold, warming = median_ms({host}, back, back + 60), median_ms({host}, back + 300, back + 420)
    warm = median_ms({"app-01", "app-04"}, back, back + 60)
    assert cold > 2 * warm
    assert warm < warming < cold


def test_no_fault_means_no_incident_and_no_slow_cluster(tmp_root: Path):
    out = generate("scenarios/payment_timeout.yaml", "today 14:15", "today 14:45",
                   str(tmp_root / "quiet"), faults="[]")
    assert incidents(out) == []
    view = minute_view(out / "all_data.ndjson", keep_metrics=False)
    for m, n in view.requests.items():
        slow = sum(1 for v in view.latencies[m] if v >= 5000)
        assert slow < 0.01 * n
        assert 0.5 <= view.error_pct(m) <= 4.0
    assert find_performance_incidents(out / "all_data.ndjson").total < 10
    assert not (out / "incident_data.ndjson").exists()  # split files only on request
    assert main(["split", str(out)]) == 0
    assert (out / "incident_data.ndjson").stat().st_size == 0


def test_hourly_histogram_follows_the_schedule(tmp_root: Path):
    out = generate("scenarios/payment_timeout.yaml", "today 04:00", "today 10:00",
                   str(tmp_root / "ramp"), faults="[]", **{"traffic.base_tps": 1.5,
                                                           "traffic.noise": 0.0})
    counts: dict[str, int] = {}
    for d in iter_docs(out / "all_data.ndjson"):
        if d["event_type"] == "transaction":
            hour = d["@timestamp"][:13]
            counts[hour] = counts.get(hour, 0) + 1
    schedule = DailySchedule(1.5, 2.5)
    for hour, n in counts.items():
        t0 = epoch(hour + ":00:00Z")
        expected = sum(schedule.rate(t0 + s + 30) * 60 for s in range(0, 3600, 60))
        assert n == pytest.approx(expected, rel=0.1), hour
    ordered = [counts[h] for h in sorted(counts)]
    assert ordered == sorted(ordered)  # the morning ramp


def test_upstream_degradation_evidence(tmp_root: Path):
    out = generate("scenarios/upstream_degradation.yaml", "today 10:30", "today 11:10",
                   str(tmp_root / "up"))
    (rec,) = incidents(out)
    assert rec["observed"] and rec["incident_type"] == "upstream_service_degradation"
    assert rec["first_saturated"]["event"] == "upstream_timeouts_started"
    docs = list(iter_docs(out / "all_data.ndjson"))
    fault_start, fault_end = epoch(rec["fault_start"]), epoch(rec["fault_end"])
    timeouts = [d for d in docs if d["event_type"] == "error"
                and d["error"]["message"].startswith('I/O error on GET request for "http://inventory')]
    # only the endpoints that call inventory time out, none before it slows, and nearly all
    # while it is slow (a few more while its cache is still cold)
    assert len(timeouts) > 1000
    assert {d["transaction"]["name"] for d in timeouts} == {"product", "cart", "checkout"}
    at = [epoch(d["@timestamp"]) for d in timeouts]
    assert min(at) >= fault_start
    assert sum(t <= fault_end + 5 for t in at) >= 0.97 * len(at)
    # a timed-out GET is tried once more: the failed requests waited out two read timeouts,
    # and threads held that long saturate the worker pools (the seed's queueing)
    failed = {d["transaction"]["id"] for d in timeouts}
    waited = [d["timing"]["upstream_time_ms"] for d in docs
              if d["event_type"] == "transaction" and d["transaction"]["id"] in failed]
    assert min(waited) >= 6000
    assert "thread_pool_saturated" in [e["event"] for e in rec["saturation_order"]]
    hits = find_performance_incidents(out / "all_data.ndjson",
                                      [(epoch(rec["symptom_start"]), epoch(rec["symptom_end"]))])
    assert hits.total > 100 and hits.outside_share < 0.05

    def product_median_upstream_ms(lo: float, hi: float) -> float:
        values = sorted(d["timing"]["upstream_time_ms"] for d in docs
                        if d["event_type"] == "transaction" and d["transaction"]["name"] == "product"
                        and lo <= epoch(d["@timestamp"]) < hi)
        return values[len(values) // 2]

    # its cache was churned: after the fix its calls are slower than before, and improving
    before = product_median_upstream_ms(fault_start - 600, fault_start)
    just_after = product_median_upstream_ms(fault_end, fault_end + 120)
    later = product_median_upstream_ms(fault_end + 600, fault_end + 900)
    assert just_after > 3 * before and before < later < just_after
    assert rec["recovery_after_cause_min"] >= 3
