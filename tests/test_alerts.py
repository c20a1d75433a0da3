"""Alerts: the shipped rules fire on the demo incidents as an on-call team needs them to,
stay quiet on a normal evening, and are the same for any worker count and both engines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from sim.cli import main
from sim.config import alert_rules, load_scenario, parse_scenario
from sim.outputs.sink import SinkSummary
from sim.run.batch import simulate
from sim.telemetry.alert_series import signal_of, signals_of
from sim.telemetry.alerts import AlertEvaluator

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 27)


def _run(tmp_path: Path, scenario, start: str, end: str, **kw):
    sc = scenario.model_copy(update={"window": scenario.window.model_copy(
        update={"start": start, "end": end})})
    return simulate(sc, TODAY, tmp_path, workers=kw.pop("workers", 1), **kw)


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _fired(result, rule_id: str) -> list[dict]:
    return [a for a in result.alerts if a["rule"]["id"] == rule_id and a["alert"]["state"] == "active"]


def _resolved_at(result, alert_id: str) -> float | None:
    ends = [_epoch(a["@timestamp"]) for a in result.alerts
            if a["alert"]["id"] == alert_id and a["alert"]["state"] == "resolved"]
    return ends[0] if ends else None


class Recording:
    """An alert sink (the OpenSearch one's contract): what it was given, by id."""

    accepts_encoded = remote = send_when_idle = False

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}
        self.summary = SinkSummary("recording")

    def emit(self, doc_id: str, doc: dict) -> None:
        assert doc_id not in self.docs
        self.docs[doc_id] = doc

    def flush(self) -> None:
        pass

    def close(self, ok: bool = True) -> SinkSummary:
        return self.summary


@pytest.fixture(scope="module")
def payment(tmp_path_factory):
    sc = load_scenario(ROOT / "scenarios" / "payment_timeout.yaml")
    sink = Recording()
    result = _run(tmp_path_factory.mktemp("payment"), sc, "today 14:20", "today 14:50",
                  alert_sinks=[sink])
    result.streamed = sink.docs
    return result


def test_payment_timeout_pages_within_three_minutes_and_resolves_after_recovery(payment):
    fault = payment.faults[0]
    latency = _fired(payment, "checkout-latency")
    breakers = _fired(payment, "circuit-breaker-open")
    assert latency and len(breakers) >= 2
    for alert in [latency[0], *breakers]:
        assert 0 < _epoch(alert["@timestamp"]) - fault.start_epoch <= 180
    # the breaker closes only once the gateway answers again: each alert resolves after the
    # fault ended, inside the window
    for alert in breakers:
        end = _resolved_at(payment, alert["alert"]["id"])
        assert end is not None and end > fault.end_epoch
    # checkouts failing fast behind the open breaker are no longer slow: the latency alert
    # resolves, while the checkout service's error rate pages until the recovery
    assert _resolved_at(payment, latency[0]["alert"]["id"]) is not None
    errors = [a for a in _fired(payment, "service-error-rate") if a["service"]["name"] == "checkout-service"]
    assert _resolved_at(payment, errors[0]["alert"]["id"]) > fault.end_epoch


def test_the_incident_record_lists_its_alerts_and_detection_delay(payment, tmp_path):
    record = payment.incidents[0]
    assert 60 <= record["detection_delay_s"] <= 180
    assert {a["rule_id"] for a in record["alerts"]} >= {"checkout-latency", "circuit-breaker-open"}
    assert not payment.false_alarms
    lines = (Path(payment.files[0]).parent / "alerts.ndjson").read_bytes().splitlines()
    docs = [orjson.loads(d) for d in lines[1::2]]
    assert docs == payment.alerts
    ids = [orjson.loads(a)["index"]["_id"] for a in lines[::2]]
    assert len(set(ids)) == len(docs)
    # streamed into their own index with the same deterministic ids (a re-sent one: 409)
    assert payment.streamed == dict(zip(ids, docs, strict=True))


def test_memory_leak_pages_on_the_heap_before_the_oom(tmp_path):
    sc = load_scenario(ROOT / "scenarios" / "memory_leak.yaml")
    result = _run(tmp_path, sc, "2 days ago 18:25", "2 days ago 18:48")
    ooms = sorted(_epoch(ts) for ts, _c, event, _d in result.state_log if event == "out_of_memory")
    heap = _fired(result, "heap-after-gc")
    assert ooms and heap
    # the leak is release 2.14.0's: the hosts the deploy reached
    (deploy,) = [c for c in sc.changes if c.fault is not None]
    leaking = set(deploy.hosts or ())
    first_on = {a["host"]["name"]: _epoch(a["@timestamp"]) for a in reversed(heap)}
    assert set(first_on) <= leaking
    assert min(first_on.values()) < ooms[0]


def test_a_normal_evening_peak_pages_no_one(tmp_path):
    """An hour of the evening peak without faults: no critical alert, at most two warnings
    (a whole default day raised none: docs/alerts.md)."""
    sc = load_scenario(ROOT / "scenarios" / "baseline.yaml")
    result = _run(tmp_path, sc, "today 18:00", "today 19:00")
    fired = [a for a in result.alerts if a["alert"]["state"] == "active"]
    assert not [a for a in fired if a["alert"]["severity"] == "critical"]
    assert len(fired) <= 2
    assert len(result.false_alarms) == len(fired)


MIDNIGHT = {"name": "midnight", "seed": 5, "window": {"start": "yesterday 23:30", "end": "today 00:30"},
            "faults": [{"type": "payment_gateway_slowdown", "start": "yesterday 23:52",
                        "duration_minutes": 12, "magnitude": 130}]}


def test_alerts_across_a_segment_boundary_are_the_same_for_any_workers_and_engine(tmp_path):
    """Midnight cuts the window into two segments: an alert firing before it resolves after
    it, once, whatever simulates the segments."""
    sc = parse_scenario(MIDNIGHT, "test")
    runs = {}
    for name, workers, engine in (("w1", 1, "fast"), ("w2", 2, "fast"), ("simpy", 2, "simpy")):
        result = simulate(sc, TODAY, tmp_path / name, workers=workers, engine=engine)
        runs[name] = (tmp_path / name / "alerts.ndjson").read_bytes()
    assert runs["w1"] == runs["w2"] == runs["simpy"]
    docs = result.alerts
    midnight = dt.datetime(2026, 11, 27, tzinfo=dt.UTC).timestamp()
    spanning = [a for a in docs if a["alert"]["state"] == "resolved"
                and _epoch(a["event"]["start"]) < midnight < _epoch(a["event"]["end"])]
    assert spanning


def test_live_steps_give_the_batch_alerts():
    """Evaluating as a live run does, a bucket at a time, gives what one pass gives."""
    sc = parse_scenario({}, "test")
    rules = alert_rules(sc)
    signals = signals_of(rules)
    cpu = signals.index(signal_of(next(r for r in rules if r.id == "cpu-high")))
    timeouts = signals.index(signal_of(next(r for r in rules if r.id == "payment-gateway-timeouts")))
    # a quiet CPU; the gateway timing out 10 times a minute from minute 110 to 114
    cells = {(cpu, "app-01", m): [6.0, 1.2, 0.3, 0.1, 0.0] for m in range(100, 130)}
    cells.update({(timeouts, "", m): [6.0, 10.0 if 110 <= m < 115 else 0.0, 3, 0, 0]
                  for m in range(100, 130)})
    whole = AlertEvaluator(rules, 100 * 60).advance(cells, 130 * 60)
    stepped = AlertEvaluator(rules, 100 * 60)
    pieces = []
    for until in range(100 * 60 + 25, 130 * 60 + 1, 25):
        pieces += stepped.advance(cells, until)
    assert [(e.rule.id, e.state, e.at_s) for e in whole] == [(e.rule.id, e.state, e.at_s) for e in pieces]
    assert [(e.state, e.at_s // 60) for e in whole] == [("active", 111), ("resolved", 117)]


BASE_RULE = {"id": "x", "name": "x", "source": "metrics", "aggregation": "max",
             "field": "host.cpu.usage", "threshold": 0.9}


@pytest.mark.parametrize("rule, problem", [
    ({"threshold": "high"}, "alerts.rules[0].threshold: Input should be a valid number"),
    ({"colour": "red"}, "alerts.rules[0].colour: unknown key"),
    ({"interval_minutes": 2, "for_minutes": 3}, "alerts.rules[0].for_minutes: 3 is not a whole"),
    ({"for_minutes": 1, "interval_minutes": 5}, "alerts.rules[0].for_minutes: 1 is not a whole"),
    ({"field": "cpu"}, "alerts.rules[0].field: unknown metric field 'cpu'"),
    ({"where": {"region": "eu"}}, "alerts.rules[0].where: metrics have no 'region'"),
    ({"aggregation": "p95"}, "alerts.rules[0].aggregation: 'p95' is not for metrics"),
    ({"min_requests": 20}, "alerts.rules[0].min_requests: only for transactions rules"),
])
def test_a_bad_rule_is_one_line_naming_file_and_field(tmp_path, capsys, rule, problem):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(orjson.dumps({"alerts": {"rules": [{**BASE_RULE, **rule}]}}).decode())
    code = main([str(scenario), "--output-dir", str(tmp_path / "out"), "--quiet",
                 "--today", "2026-11-27"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [err]
    assert err.startswith(f"error: {scenario}: {problem}")
    assert not (tmp_path / "out").exists()


def test_alerts_command_lists_active_then_recent(payment, capsys):
    """``storefront-sim alerts DIR``: an alert whose resolution is not written yet (a live
    run's file as it grows) is active; resolved ones are listed newest first."""
    out = Path(payment.files[0]).parent
    assert main(["alerts", str(out), "--recent", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "active: none"
    assert lines[1].startswith("recently resolved (3 of ")
    assert len(lines) == 5
    text = (out / "alerts.ndjson").read_bytes().splitlines()
    last_resolved = max(i for i, line in enumerate(text) if b'"state":"resolved"' in line)
    (out / "alerts.ndjson").write_bytes(b"\n".join(text[:last_resolved - 1]) + b"\n")
    assert main(["alerts", str(out), "--recent", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "active (1):" and "CRITICAL" in lines[1]
    assert main(["alerts", str(out / "nowhere")]) == 2


def test_the_report_shows_each_incidents_detection_and_its_alerts(payment):
    out = Path(payment.files[0]).parent
    assert main(["report", str(out), "--workers", "1"]) == 0
    html = (out / "report" / "index.html").read_text()
    delay = payment.incidents[0]["detection_delay_s"]
    assert f"Detected: +{delay // 60}:{delay % 60:02d} after the cause began" in html
    assert html.count("circuit-breaker-open") >= 4  # one row per host's alert
    assert "0 of them false alarms" in html
