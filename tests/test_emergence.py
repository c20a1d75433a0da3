"""Counterfactuals: symptoms follow from contention, so changing a resource changes them.

Every run here injects a cause only; the assertions compare two runs that differ in one
resource (or in the cause's magnitude) and check the direction the model must move in.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any

import yaml

from sim.config import parse_scenario
from sim.run.batch import RunResult, simulate

TODAY = dt.date(2026, 11, 27)


def run(path: str, start: str, end: str, overrides: dict[str, Any] | None = None,
        faults: list[dict[str, Any]] | None = None) -> RunResult:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    raw.setdefault("window", {}).update(start=start, end=end, warmup_minutes=5)
    if faults is not None:
        raw["faults"] = faults
    return simulate(parse_scenario(raw, path, overrides), TODAY, None)


@cache
def payment(breaker: bool) -> RunResult:
    return run("scenarios/payment_timeout.yaml", "today 14:20", "today 14:50",
               {"storefront.circuit_breaker.enabled": breaker})


def saturated_seconds(result: RunResult) -> float:
    """Total instance-seconds the worker pools spent saturated (from the model's state log)."""
    since: dict[str, float] = {}
    total = 0.0
    end = result.window.end.timestamp()
    for ts, component, event, _ in sorted(result.state_log):
        t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        if event == "thread_pool_saturated":
            since[component] = t
        elif event in ("thread_pool_recovered", "out_of_memory") and component in since:
            total += t - since.pop(component)
    return total + sum(end - t for t in since.values())


def events(result: RunResult, name: str) -> list[str]:
    return sorted(ts for ts, _, event, _ in result.state_log if event == name)


def test_breaker_contains_a_gateway_slowdown_that_otherwise_spreads():
    with_breaker, without = payment(True), payment(False)
    (a,), (b,) = with_breaker.incidents, without.incidents
    assert a["observed"] and b["observed"]
    assert events(with_breaker, "circuit_breaker_open")
    assert not events(without, "circuit_breaker_open")
    # without the breaker every checkout thread waits out the read timeout holding its
    # transaction's DB connection: the pools stay starved and saturated, and the other
    # endpoints keep failing for the whole incident instead of for the minute or two
    # before the breaker opens
    assert saturated_seconds(without) > 3 * saturated_seconds(with_breaker)
    assert set(b["affected_endpoints"]) - {"checkout"}

    def spread(record):
        kinds = record["impact"]["errors_by_kind"]
        return kinds.get("db_pool_timeout", 0) + kinds.get("queue_rejected", 0)

    assert spread(b) > 5 * max(1, spread(a))
    assert b["impact"]["errors_by_kind"]["gateway_timeout"] > 3 * a["impact"]["errors_by_kind"][
        "gateway_timeout"]


def test_larger_db_pool_absorbs_the_lunch_surge_that_exhausts_a_small_one():
    surge = [{"type": "traffic_surge", "start": "today 12:15", "duration_minutes": 10,
              "ramp_minutes": 1, "magnitude": 1.0}]
    slow = {"storefront.db_server.query_ms_median": 100.0}
    small = run("scenarios/db_pool_exhaustion.yaml", "today 12:10", "today 12:35",
                {**slow, "storefront.db_pool.max_size": 3}, surge)
    large = run("scenarios/db_pool_exhaustion.yaml", "today 12:10", "today 12:35",
                {**slow, "storefront.db_pool.max_size": 24}, surge)
    assert events(small, "db_pool_exhausted")
    assert not events(large, "db_pool_exhausted")
    (s,), (g,) = small.incidents, large.incidents
    assert s["observed"]
    assert not g["observed"] or g["impact"]["errors"] < s["impact"]["errors"] / 5


def test_smaller_heap_runs_out_of_memory_sooner_under_the_same_leak():
    leak = [{"type": "memory_leak", "start": "today 18:30", "duration_minutes": 25,
             "ramp_minutes": 0, "magnitude": 1.2, "target": "app-02"}]
    big = run("scenarios/memory_leak.yaml", "today 18:25", "today 18:55",
              {"storefront.heap.max_mb": 2048}, leak)
    small = run("scenarios/memory_leak.yaml", "today 18:25", "today 18:55",
                {"storefront.heap.max_mb": 1536}, leak)
    oom_big, oom_small = events(big, "out_of_memory"), events(small, "out_of_memory")
    assert oom_big and oom_small
    assert oom_small[0] < oom_big[0]


def test_zero_magnitude_fault_produces_no_incident():
    result = run("scenarios/payment_timeout.yaml", "today 14:20", "today 14:45", faults=[
        {"type": "payment_gateway_slowdown", "start": "today 14:25", "magnitude": 0}])
    (rec,) = result.incidents
    assert rec["observed"] is False
    assert not events(result, "circuit_breaker_open")
    assert not events(result, "thread_pool_saturated")


@cache
def flash_sale(overrides: tuple[tuple[str, Any], ...] = ()) -> RunResult:
    return run("scenarios/traffic_surge.yaml", "today 18:55", "today 19:35", dict(overrides))


def test_cpu_saturates_under_a_surge_that_more_instances_or_cores_absorb():
    four = flash_sale()
    eight = flash_sale((("storefront.instances", 8),))
    more_cores = flash_sale((("storefront.cpu_cores", 16),))
    (rec,) = four.incidents
    assert rec["observed"]
    # the cores run out and the worker threads pile up behind them within seconds; nothing
    # downstream (DB, gateway, heap) saturates: the CPU is the bottleneck
    assert {e["event"] for e in rec["saturation_order"]} == {"cpu_saturated",
                                                             "thread_pool_saturated"}
    assert rec["impact"]["errors_by_kind"].get("queue_rejected", 0) > 1000
    for absorbed in (eight, more_cores):
        (other,) = absorbed.incidents
        assert not events(absorbed, "cpu_saturated")
        # not even an abnormal minute (p95 and error rate stay in the normal envelope)
        assert not other["observed"], other
    assert rec["peak_p95_ms"] > 2000 and rec["peak_error_rate_pct"] > 10
