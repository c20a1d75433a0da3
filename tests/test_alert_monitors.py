"""The OpenSearch Alerting monitors decide what the simulation decided, on a real node.

The Alerting plugin is not installable here, and the test node has no script engine
(no lang-painless), so each monitor is checked as far as the node allows: its search input,
with ``{{period_end}}`` filled in for every evaluation time of a run, runs on the node over
that run's documents, without the three pipeline stages that need a script; those
(``breach``: the monitor's own Painless expression, ``held``: a moving sum, ``held_max``)
and the trigger condition are then applied to the node's answer here, as written in the
monitor. The groups left must be those the simulated alerts had active at that time.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch

from sim.config import alert_rules, load_scenario
from sim.outputs.alert_monitors import GROUPS, filled, monitor_bodies
from sim.outputs.index_setup import load_mapping
from sim.outputs.mapping import MAPPING_PATH
from sim.run.batch import simulate

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 27)
RUNS = {  # a few minutes before each incident to its last alert's resolution
    "payment_timeout": ("today 14:22", "today 14:45"),
    "db_pool_exhaustion": ("yesterday 12:13", "yesterday 12:31"),
}
SCRIPTED = ("breach", "held", "held_max")


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _fields(rules) -> set[str]:
    """What the monitors read: documents are indexed with only these (the same values),
    so the shared node indexes a fraction of the bytes."""
    keep = {"@timestamp", "event_type", "response_time_ms", "http.response.status_code"}
    for r in rules:
        keep.update([*r.where, r.group_by, r.field, r.relative_to])
    return {f for f in keep if f}


def _strip(doc: dict[str, Any], fields: set[str], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in doc.items():
        name = prefix + key
        if isinstance(value, dict):
            inner = _strip(value, fields, name + ".")
            if inner:
                out[key] = inner
        elif name in fields:
            out[key] = value
    return out


def _index(client: OpenSearch, index: str, out: Path, fields: set[str]) -> None:
    body = load_mapping(MAPPING_PATH)
    client.indices.create(index=index, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
        "mappings": body["mappings"]})
    lines = (out / "all_data.ndjson").read_bytes().splitlines()
    batch: list[bytes] = []
    for action, raw in zip(lines[::2], lines[1::2], strict=True):
        if b'"event_type":"error"' in raw[:80]:
            continue  # no monitor reads error documents
        batch += [action, orjson.dumps(_strip(orjson.loads(raw), fields))]
        if len(batch) >= 20_000:
            assert not client.bulk(body=b"\n".join(batch) + b"\n", index=index)["errors"]
            batch = []
    if batch:
        assert not client.bulk(body=b"\n".join(batch) + b"\n", index=index)["errors"]
    client.indices.refresh(index=index)


def _painless(source: str, params: dict[str, float]) -> float:
    """The monitors' breach expressions: ``(a && b ...) ? 1 : 0`` of comparisons and
    arithmetic on ``params.x`` (nothing else is generated)."""
    m = re.fullmatch(r"\((.*)\) \? 1 : 0", source)
    assert m, source
    expr = re.sub(r"params\.(\w+)", r"params['\1']", m.group(1)).replace("&&", " and ")
    assert set(expr) <= set("params[]'_abcdefghijklmnopqrstuvwxyz0123456789.*/+-<>= ()"), expr
    return 1.0 if eval(expr, {"__builtins__": {}}, {"params": params}) else 0.0  # noqa: S307


def _path(bucket: dict[str, Any], path: str) -> float:
    """A buckets_path of one interval bucket, with gap_policy insert_zeros."""
    if path == "_count":
        return float(bucket["doc_count"])
    name, _, metric = path.partition(">")
    if metric == "_count":
        return float(bucket[name]["doc_count"])
    value = bucket[name]["value"]
    return 0.0 if value is None else float(value)


def monitor_active(client: OpenSearch, index: str, monitor: dict[str, Any],
                   period_end_s: float) -> set[str]:
    """The groups the monitor's trigger matches at ``period_end_s``: the node runs the
    search, the scripted stages are applied here as the monitor defines them."""
    query = filled(monitor, int(period_end_s * 1000))
    inner = query["aggregations"][GROUPS]["aggregations"]
    stages = {"held_max": inner.pop("held_max")}
    interval_aggs = inner["per_interval"]["aggs"]
    stages.update({k: interval_aggs.pop(k) for k in ("breach", "held")})
    answer = client.search(index=index, body=query)
    breach, held = stages["breach"]["bucket_script"], stages["held"]["moving_fn"]
    trigger = monitor["triggers"][0]["bucket_level_trigger"]["condition"]
    need = float(trigger["script"]["source"].split(">=")[1])
    active = set()
    for group in answer["aggregations"][GROUPS]["buckets"]:
        flags = [_painless(breach["script"]["source"],
                           {k: _path(b, p) for k, p in breach["buckets_path"].items()})
                 for b in group["per_interval"]["buckets"]]
        window, shift = held["window"], held["shift"]
        sums = [sum(flags[max(0, i - window + shift):i + shift]) for i in range(len(flags))]
        if sums and max(sums) >= need:
            active.add(group["key"]["group"])
    return active


@pytest.mark.parametrize("name", sorted(RUNS))
def test_monitors_agree_with_the_simulated_alerts_on_a_real_node(opensearch_url, tmp_path, name):  # noqa: F811
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    start, end = RUNS[name]
    scenario = scenario.model_copy(update={"window": scenario.window.model_copy(
        update={"start": start, "end": end})})
    result = simulate(scenario, TODAY, tmp_path, workers=1)
    rules = alert_rules(scenario)
    assert any(a["alert"]["severity"] == "critical" for a in result.alerts)
    client = OpenSearch(opensearch_url, timeout=120)
    index = f"alerts-test-{name.replace('_', '-')}-{os.getpid()}"
    lo, hi = result.window.start.timestamp(), result.window.end.timestamp()
    agreed, total, nearby = 0, 0, 0
    try:
        _index(client, index, tmp_path, _fields(rules))
        for rule, monitor in zip(rules, monitor_bodies(scenario, index), strict=True):
            step = rule.interval_minutes * 60
            t = math.ceil(lo / step) * step + step
            while t <= hi:
                got = {_label(rule, g) for g in monitor_active(client, index, monitor, t)}
                want = {f"{rule.id}{'-' + g if g else ''}" for g in
                        (_sim_groups(result.alerts, rule, t))}
                total += 1
                if got == want:
                    agreed += 1
                elif any(got == {f"{rule.id}{'-' + g if g else ''}" for g in
                                 _sim_groups(result.alerts, rule, t + d)} for d in (-step, step)):
                    nearby += 1  # within one evaluation interval
                else:
                    pytest.fail(f"{rule.id} at {dt.datetime.fromtimestamp(t, dt.UTC):%H:%M}: "
                                f"monitor {sorted(got)}, simulated {sorted(want)}")
                t += step
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
    print(f"{name}: {agreed} of {total} evaluations agree exactly, {nearby} within one interval")
    assert agreed >= 0.97 * total


def _sim_groups(alerts: list[dict[str, Any]], rule, at: float) -> set[str]:
    """The groups (host, service; "" for a rule without group_by) the simulation had
    active at ``at``."""
    out = set()
    for doc in alerts:
        if doc["rule"]["id"] != rule.id or doc["alert"]["state"] != "active":
            continue
        start = _epoch(doc["@timestamp"])
        ends = [_epoch(d["@timestamp"]) for d in alerts
                if d["alert"]["id"] == doc["alert"]["id"] and d["alert"]["state"] == "resolved"]
        if start <= at < (ends[0] if ends else math.inf):
            out.add(_doc_group(doc, rule))
    return out


def _doc_group(doc: dict[str, Any], rule) -> str:
    if rule.group_by is None:
        return ""
    return doc[rule.group_by.split(".")[0]]["name"]


def _label(rule, group: str) -> str:
    return rule.id if rule.group_by is None else f"{rule.id}-{group}"
