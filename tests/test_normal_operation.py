"""Normal operation lands in the seed's envelope, and output files are never half-written."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import orjson
import pytest

from sim.config import parse_scenario
from sim.run.batch import simulate


def read_docs(path):
    with open(path, "rb") as fh:
        lines = fh.readlines()
    actions = [orjson.loads(x) for x in lines[0::2]]
    docs = [orjson.loads(x) for x in lines[1::2]]
    return actions, docs


@pytest.fixture(scope="module")
def busy_hour(tmp_path_factory):
    out = tmp_path_factory.mktemp("normal")
    scenario = parse_scenario({"name": "normal", "seed": 3,
                               "window": {"start": "today 12:30", "end": "today 13:15"}}, "test")
    result = simulate(scenario, dt.date(2026, 11, 26), out)
    return out, result, *read_docs(out / "all_data.ndjson")


def test_response_times_and_error_rate_in_normal_envelope(busy_hour):
    _out, _result, _actions, docs = busy_hour
    tx = [d for d in docs if d["event_type"] == "transaction"]
    rt = np.array([d["response_time_ms"] for d in tx])
    errors = sum(d["status"] == "error" for d in tx) / len(tx)
    in_band = np.mean((rt >= 200) & (rt <= 800))
    assert in_band >= 0.8, in_band  # "mostly 200-800 ms"
    assert 0.01 <= errors <= 0.02, errors  # error rate 1-2%, success 98-99%
    assert np.percentile(rt, 99) < 5000  # no incident-like latency
    # errors come from realistic causes, not one generic error
    types = {d["error"]["type"] for d in docs if d["event_type"] == "error"}
    assert {"com.storefront.payment.CardDeclinedException",
            "org.springframework.web.bind.MethodArgumentNotValidException"} <= types


def test_every_failed_transaction_has_one_linked_error(busy_hour):
    _out, _result, _actions, docs = busy_hour
    failed = {d["transaction"]["id"]: d["trace"]["id"] for d in docs
              if d["event_type"] == "transaction" and d["status"] == "error"}
    errors = [d for d in docs if d["event_type"] == "error"]
    assert len(errors) == len(failed)
    assert all(failed[e["transaction"]["id"]] == e["trace"]["id"] for e in errors)


def test_metrics_every_interval_per_host(busy_hour):
    _out, _result, _actions, docs = busy_hour
    metrics = [d for d in docs if d["event_type"] == "infrastructure_metric"]
    hosts = {d["host"]["name"] for d in metrics}
    assert hosts == {"app-01", "app-02", "app-03", "app-04", "db-01", "payment-gateway"}
    per_host = len([d for d in metrics if d["host"]["name"] == "app-01"])
    assert per_host == 45 * 60 // 10  # every 10 s over 45 minutes


def test_bulk_format_ids_unique_and_summary_matches(busy_hour):
    out, result, actions, docs = busy_hour
    assert len(actions) == len(docs)
    ids = [a["index"]["_id"] for a in actions]
    assert len(set(ids)) == len(ids)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["total_documents"] == len(docs)
    counted = {}
    for d in docs:
        counted[d["event_type"]] = counted.get(d["event_type"], 0) + 1
    assert summary["counts"] == counted
    assert summary["window"] == {"start": "2026-11-26T12:30:00Z", "end": "2026-11-26T13:15:00Z"}


class _ExplodingSink:
    accepts_encoded = False
    remote = False
    send_when_idle = False

    def __init__(self, after):
        self.after = after
        self.n = 0
        self.closed_ok = None

    def emit(self, doc_id, doc):
        self.n += 1
        if self.n == self.after:
            raise RuntimeError("disk on fire")

    def emit_raw(self, lines, count):
        for _ in range(count):
            self.emit(None, None)

    def flush(self):
        pass

    def close(self, ok=True):
        from sim.outputs.sink import SinkSummary

        self.closed_ok = ok
        return SinkSummary("exploding", generated=self.n)


def test_failed_run_leaves_no_complete_looking_file(tmp_path):
    (tmp_path / "all_data.ndjson").write_text("earlier complete run\n")
    scenario = parse_scenario({"window": {"start": "today 10:00", "end": "today 10:20"}}, "t")
    sink = _ExplodingSink(after=5000)
    with pytest.raises(RuntimeError, match="disk on fire"):
        simulate(scenario, dt.date(2026, 11, 26), tmp_path, [sink])
    assert sink.closed_ok is False
    assert (tmp_path / "all_data.ndjson").read_text() == "earlier complete run\n"
    # beside the run's lock (sim.run.workspace), nothing but the earlier file
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock") == ["all_data.ndjson"]
