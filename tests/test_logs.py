"""Logs of the state changes: one line per change the model announced, in the order things
happened, in the words of the software, and a HikariCP line per timed-out connection wait
that names the request's trace."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from test_mapping import COMPATIBLE, flat_mapping, leaves

from sim.config import parse_scenario
from sim.run.batch import simulate
from sim.run.traces import LOGS_FILE


def bulk(path: Path) -> list[tuple[str, dict]]:
    lines = path.read_bytes().splitlines()
    return [(orjson.loads(a)["index"]["_id"], orjson.loads(d))
            for a, d in zip(lines[::2], lines[1::2], strict=True)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("logs")
    scenario = parse_scenario({
        "name": "logs", "window": {"start": "today 14:00", "end": "today 14:30", "warmup_minutes": 2},
        "storefront": {"heap": {"max_mb": 1200}},
        "faults": [
            {"type": "memory_leak", "start": "today 14:00", "duration_minutes": 30, "magnitude": 3},
            {"type": "db_slow_queries", "start": "today 14:12", "duration_minutes": 6, "magnitude": 105},
        ],
        "changes": [
            {"kind": "config_push", "at": "today 14:05", "hosts": ["app-01"],
             "settings": {"db_pool.max_size": 12}},
            {"kind": "feature_flag", "at": "today 14:06", "flag": "recommended_for_you", "share": 0.5},
            {"kind": "deploy", "at": "today 14:20", "version": "2.13.5", "hosts": ["app-04"],
             "warmup_requests": 400}],
        "output": {"traces": {"enabled": True, "sample_share": 0.0}},
    }, "test")
    result = simulate(scenario, dt.date(2026, 11, 27), out, workers=1)
    return result, out, [d for _, d in bulk(out / LOGS_FILE)]


def test_every_state_change_has_its_line_in_order(run):
    result, _, logs = run
    changes = [(ts, event) for ts, _c, event, _d in result.state_log]
    logged = [(d["@timestamp"], d["event"]["action"]) for d in logs
              if d["event"]["action"] not in ("lb_marked_down", "lb_marked_up", "db_pool_timeout",
                                              "config_change", "deployment", "feature_flag")]
    assert changes and logged == changes
    assert [d["@timestamp"] for d in logs] == sorted(d["@timestamp"] for d in logs)


def test_a_crash_reads_as_it_happened(run):
    """OOM, the load balancer takes the server out, Spring Boot starts, it is back in."""
    _, _, logs = run
    oom = next(d for d in logs if d["event"]["action"] == "out_of_memory")
    host = oom["host"]["name"]
    after = [d for d in logs if d["@timestamp"] >= oom["@timestamp"]
             and (d["host"]["name"] == host or f"storefront/{host} " in d["message"])]
    actions = [d["event"]["action"] for d in after]
    first = {a: actions.index(a) for a in ("out_of_memory", "lb_marked_down", "instance_restarted",
                                           "lb_marked_up")}
    assert first["out_of_memory"] < first["lb_marked_down"] < first["instance_restarted"] \
        < first["lb_marked_up"]
    assert oom["message"] == "Terminating due to java.lang.OutOfMemoryError: Java heap space"
    assert oom["log"]["level"] == "ERROR"


def test_pool_timeouts_name_their_trace(run):
    _, out, logs = run
    timeouts = [d for d in logs if d["event"]["action"] == "db_pool_timeout"]
    assert timeouts
    errors = {d["trace"]["id"]: d for _, d in bulk(out / "all_data.ndjson")
              if d["event_type"] == "error"}
    for d in timeouts:
        error = errors[d["trace"]["id"]]
        assert error["transaction"]["id"] == d["transaction"]["id"]
        assert error["error"]["type"] == "java.sql.SQLTransientConnectionException"
        assert d["message"].startswith("HikariPool-1 - Connection is not available, request "
                                       "timed out after")
        total, active, idle, waiting = (int(p.split("=")[1]) for p in
                                        d["message"].split("(")[1].rstrip(")").split(", "))
        assert total == active + idle and waiting >= 0


def test_log_fields_are_mapped(run):
    """Logs go to the main index: every field they carry is in mapping.json already."""
    mapping = flat_mapping()
    for doc in run[2]:
        for path, kind, value in leaves(doc):
            assert path in mapping, path
            if kind is None:
                assert isinstance(value, COMPATIBLE[mapping[path]]), (path, value)


def test_each_change_is_logged_by_the_tool_that_made_it(run):
    """A config push, a flag and a deploy step: one line each, at the change document's time,
    in its words, from the config client, the flag service and the CD tool."""
    _, out, logs = run
    docs = [d for _, d in bulk(out / "all_data.ndjson") if d["event_type"] == "change"]
    lines = [d for d in logs if d["event"]["action"] in ("config_change", "deployment", "feature_flag")]
    assert len(docs) == 3
    assert [(d["@timestamp"], d["message"]) for d in lines] == [(d["@timestamp"], d["message"]) for d in docs]
    assert [(d["host"]["name"], d["log"]["logger"]) for d in lines] == [
        ("app-01", "org.springframework.cloud.context.refresh.ContextRefresher"),
        ("flagd", "dev.openfeature.flagd"), ("app-04", "argocd-application-controller")]
