"""Overlapping incidents (issue #20): two causes at once get a record each, and their impacts
add up to the failures observed, none counted twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import unmapped_record_fields

from sim.telemetry.minutes import Minute
from sim.truth.overlap import split_impact

ROOT = Path(__file__).resolve().parent.parent


def test_a_surge_during_a_gateway_slowdown_gives_two_records_that_add_up(tmp_path):
    scenario = tmp_path / "both.yaml"
    scenario.write_text(
        (ROOT / "scenarios" / "payment_timeout.yaml").read_text()
        + "  - {type: traffic_surge, start: 'today 14:29', duration_minutes: 10, magnitude: 1.5}\n")
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(ROOT / "run_sim.py"), str(scenario), "--today", "2026-11-27",
                    "--start", "today 14:15", "--end", "today 15:05", "--output-dir", str(out),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    lines = (out / "incidents.ndjson").read_text().splitlines()
    gateway, surge = [json.loads(x) for x in lines[1::2]]
    assert gateway["cause"]["fault_type"] == "payment_gateway_slowdown" and gateway["observed"]
    assert surge["cause"]["fault_type"] == "traffic_surge" and surge["observed"]
    assert gateway["overlaps_with"] == [surge["incident_id"]]
    assert unmapped_record_fields([gateway, surge]) == set()
    assert surge["symptom_start"] < gateway["symptom_end"]  # they do overlap
    # every failed request that arrived in either window, counted once: from the documents
    lo = min(gateway["symptom_start"], surge["symptom_start"])
    hi = max(gateway["symptom_end"], surge["symptom_end"])
    docs = [json.loads(x) for x in (out / "all_data.ndjson").read_text().splitlines()[1::2]]
    failed = [d for d in docs if d["event_type"] == "transaction" and d["status"] == "error"
              and lo <= d["@timestamp"] < hi]
    assert gateway["impact"]["errors"] + surge["impact"]["errors"] == len(failed)
    kinds: dict[str, int] = {}
    for rec in (gateway, surge):
        for kind, n in rec["impact"]["errors_by_kind"].items():
            kinds[kind] = kinds.get(kind, 0) + n
    assert sum(kinds.values()) == len(failed)
    # what each cause breaks is its own: every gateway timeout is the gateway's
    assert gateway["impact"]["errors_by_kind"].get("gateway_timeout", 0) > 0
    assert "gateway_timeout" not in surge["impact"]["errors_by_kind"]


def _minute(requests: int, kinds: dict[str, int], orders: int = 0, revenue: float = 0.0) -> Minute:
    m = Minute(requests=requests, errors=sum(kinds.values()), kinds=dict(kinds),
               failed_orders=orders, lost_revenue=revenue)
    return m


def test_shares_follow_what_each_cause_breaks_and_round_to_the_totals():
    """Minute 0 only A's; minutes 1-2 both: A's kinds to A, B's to B, shared kinds halved;
    integer counts that add up exactly."""
    minutes = {0: _minute(100, {"gateway_timeout": 5}),
               1: _minute(101, {"gateway_timeout": 3, "queue_rejected": 7, "internal": 3}, 3, 30.0),
               2: _minute(99, {"queue_rejected": 1, "internal": 1})}
    a = {"incident_id": "a", "observed": True, "incident_type": "payment_gateway_timeout",
         "symptom_start": "1970-01-01T00:00:00.000Z", "symptom_end": "1970-01-01T00:03:00.000Z"}
    b = {"incident_id": "b", "observed": True, "incident_type": "traffic_surge",
         "symptom_start": "1970-01-01T00:01:00.000Z", "symptom_end": "1970-01-01T00:03:00.000Z"}
    split_impact([a, b], minutes)
    ia, ib = a["impact"], b["impact"]
    assert ia["errors_by_kind"]["gateway_timeout"] == 8 and ib["errors_by_kind"]["queue_rejected"] == 8
    assert ia["errors_by_kind"]["internal"] + ib["errors_by_kind"]["internal"] == 4
    assert ia["errors"] + ib["errors"] == 20
    assert ia["requests"] + ib["requests"] == 300
    assert ia["failed_orders"] + ib["failed_orders"] == 3
    assert a["overlaps_with"] == ["b"] and b["overlaps_with"] == ["a"]


def test_a_change_during_a_fault_is_credited_only_from_its_own_first_sign(tmp_path):
    """A gateway slowdown at 14:25; at 14:21 a push that raises the accept queue, at 14:22 a
    build that leaks rolled out to app-02 (with the pipeline's warm-up). The push cannot
    exhaust anything it raised: no record, although the fault's symptoms follow it. The
    build's record starts with the first sign of its own mechanism (app-02's heap), not with
    the fault's symptoms."""
    scenario = tmp_path / "both.yaml"
    scenario.write_text(
        (ROOT / "scenarios" / "payment_timeout.yaml").read_text()
        + "changes:\n"
        "  - {id: push-aq, kind: config_push, at: 'today 14:21', settings: {accept_queue: 80}}\n"
        "  - {id: leaky-2.14.0, kind: deploy, at: 'today 14:22', version: '2.14.0', hosts: [app-02],\n"
        "     fault: {type: memory_leak, magnitude: 2.0}}\n")
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(ROOT / "run_sim.py"), str(scenario), "--today", "2026-11-27",
                    "--start", "today 14:10", "--end", "today 15:05", "--output-dir", str(out),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    lines = (out / "incidents.ndjson").read_text().splitlines()[1::2]
    records = {r["incident_id"]: r for r in map(json.loads, lines)}
    assert "push-aq" not in records
    fault = next(r for r in records.values() if r["cause"].get("fault_type") == "payment_gateway_slowdown")
    deploy = records["leaky-2.14.0"]
    heap = [c for c in deploy["chain"] if c["component"] == "app-02"
            and c["event"] in ("heap_pressure", "long_gc_pause", "out_of_memory")]
    assert heap, "the leak showed on app-02"
    assert deploy["symptom_start"] <= heap[0]["at"] and heap[0]["at"][:16] == deploy["symptom_start"][:16]
    assert fault["symptom_start"] < deploy["symptom_start"]
