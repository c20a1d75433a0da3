"""Trace Analytics' own queries, sent to a real node after a streamed demo run, give the
figures computed independently from the run's NDJSON span file.

The request bodies are those OpenSearch Dashboards' Observability plugin sends in Data
Prepper mode (opensearch-project/dashboards-observability at commit
eec79bc7ca48acddaff2e78353494aa123b5df82, ``public/components/trace_analytics/requests/
queries/``: ``services_queries.ts`` getServicesQuery, getServiceMapQuery and
getServiceMetricsQuery; ``traces_queries.ts`` getTracesQuery and
getTraceGroupPercentilesQuery; ``dashboard_queries.ts`` getDashboardQuery). The test node
has no Painless, so the aggregations that are scripts (bucket_script, the scripted latency
and last-updated metrics) are left out of the bodies and computed here from the inputs the
scripts read; every other part is sent as the plugin sends it.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch

from sim.cli import main
from sim.outputs.index_setup import template_name
from sim.outputs.trace_indices import FIRST_SPAN_INDEX
from sim.telemetry.spans import SERVICE_MAP_INDEX, SPAN_INDEX, SPANS_FILE

EMPTY_BOOL: dict[str, list[Any]] = {"must": [], "filter": [], "should": [], "must_not": []}


def services_query() -> dict[str, Any]:
    return {"size": 0, "query": {"bool": EMPTY_BOOL},
            "aggs": {"service": {"terms": {"field": "serviceName", "size": 10000},
                                 "aggs": {"trace_count": {"cardinality": {"field": "traceId"}}}}}}


def service_map_query(max_nodes: int = 500, max_edges: int = 1000) -> dict[str, Any]:
    def edges(side: str) -> dict[str, Any]:
        return {"terms": {"field": f"{side}.resource", "size": max_edges},
                "aggs": {"service": {"terms": {"field": f"{side}.serviceName", "size": max_edges}},
                         "domain": {"terms": {"field": f"{side}.domain", "size": max_edges}}}}

    return {"size": 0, "query": {"bool": EMPTY_BOOL},
            "aggs": {"service_name": {"terms": {"field": "serviceName", "size": max_nodes},
                                      "aggs": {"target_resource": {"terms": {
                                          "field": "target.resource", "size": max_edges}},
                                          "target_edges": edges("target"),
                                          "destination_edges": edges("destination")}}}}


def service_metrics_query(services: list[str], target_resources: list[str]) -> dict[str, Any]:
    not_root = {"bool": {"must_not": {"term": {"parentSpanId": {"value": ""}}}}}
    return {"size": 0, "query": {"bool": {"must": [], "should": [], "must_not": [], "filter": [
        {"terms": {"serviceName": services}},
        {"bool": {"should": [
            {"bool": {"filter": [not_root, {"terms": {"name": target_resources}}]}},
            {"bool": {"must": {"term": {"parentSpanId": {"value": ""}}}}}],
            "adjust_pure_negative": True, "boost": 1}}]}},
        "aggregations": {"service_name": {
            "terms": {"field": "serviceName", "size": 500, "min_doc_count": 1,
                      "shard_min_doc_count": 0, "show_term_doc_count_error": False,
                      "order": [{"_count": "desc"}, {"_key": "asc"}]},
            "aggregations": {
                "average_latency_nanos": {"avg": {"field": "durationInNanos"}},
                "error_count": {"filter": {"term": {"status.code": "2"}}}}}}}


def traces_query(max_traces: int = 500) -> dict[str, Any]:
    return {"size": 0, "query": {"bool": EMPTY_BOOL},
            "aggs": {"unique_traces": {"cardinality": {"field": "traceId"}},
                     "traces": {"terms": {"field": "traceId", "size": max_traces,
                                          "order": {"_key": "asc"}},
                                "aggs": {"trace_group": {"terms": {"field": "traceGroup", "size": 1}},
                                         "error_count": {"filter": {"term": {
                                             "traceGroupFields.statusCode": "2"}}}}}},
            "track_total_hits": False}


def trace_group_percentiles_query() -> dict[str, Any]:
    return {"size": 0, "query": {"bool": {**EMPTY_BOOL, "must": [
        {"term": {"parentSpanId": {"value": ""}}}]}},
        "aggs": {"trace_group_name": {"terms": {"field": "name", "size": 10000}, "aggs": {
            "percentiles": {"percentiles": {"field": "durationInNanos",
                                            "percents": list(range(101))}}}}}}


def dashboard_query() -> dict[str, Any]:
    return {"size": 0, "query": {"bool": EMPTY_BOOL},
            "aggs": {"trace_group_name": {"terms": {"field": "traceGroup", "size": 10000}, "aggs": {
                "trace_count": {"cardinality": {"field": "traceId"}},
                "error_count": {"filter": {"term": {"traceGroupFields.statusCode": "2"}},
                                "aggs": {"trace_count": {"cardinality": {"field": "traceId"}}}}}}}}


@pytest.fixture(scope="module")
def streamed(tmp_path_factory, opensearch_url):  # noqa: F811
    """The payment demo's incident minutes, streamed with traces; the otel indices and the
    run's own indices are removed afterwards."""
    tmp = tmp_path_factory.mktemp("trace-analytics")
    suffix = uuid.uuid4().hex[:8]
    index, incidents = f"ta-{suffix}", f"ta-incidents-{suffix}"
    client = OpenSearch(opensearch_url)
    client.indices.delete(index=f"{FIRST_SPAN_INDEX},{SERVICE_MAP_INDEX}", ignore_unavailable=True)
    scenario = Path(__file__).resolve().parent.parent / "scenarios" / "payment_timeout.yaml"
    out = tmp / "out"
    args = [str(scenario), "--today", "2026-11-27", "--start", "today 14:27", "--end", "today 14:31",
            "--base-tps", "4", "--output-dir", str(out), "--quiet", "--opensearch", opensearch_url,
            "--index", index, "--workers", "1", "--trace-sample", "0.1"]
    try:
        yield _with_incidents(args, tmp, incidents), out, client, args, tmp, incidents
    finally:
        client.indices.delete(index=f"{index},{incidents},{FIRST_SPAN_INDEX},{SERVICE_MAP_INDEX}",
                              ignore_unavailable=True)
        for name in (SPAN_INDEX, SERVICE_MAP_INDEX):
            client.indices.delete_template(name=f"{name}-index-template", ignore=[404])
        for name in (index, incidents):
            client.indices.delete_index_template(name=template_name(name), ignore=[404])


def _with_incidents(args: list[str], tmp: Path, incidents: str) -> int:
    path = tmp / "payment.yaml"
    text = Path(args[0]).read_text() + f"output:\n  incidents_index: {incidents}\n"
    path.write_text(text)
    return main([str(path), *args[1:]])


def spans_of(out: Path) -> list[dict[str, Any]]:
    lines = (out / SPANS_FILE).read_bytes().splitlines()
    return [orjson.loads(d) for d in lines[1::2]]


def search(client: OpenSearch, index: str, body: dict[str, Any]) -> dict[str, Any]:
    client.indices.refresh(index=index)
    return client.search(index=index, body=body)["aggregations"]


def test_services_and_the_service_map(streamed):
    code, out, client = streamed[:3]
    assert code == 0
    spans = spans_of(out)
    traces_by_service: dict[str, set[str]] = defaultdict(set)
    for s in spans:
        traces_by_service[s["serviceName"]].add(s["traceId"])
    got = search(client, SPAN_INDEX, services_query())["service"]["buckets"]
    assert {b["key"]: b["trace_count"]["value"] for b in got} == \
        {k: len(v) for k, v in traces_by_service.items()}
    assert {"checkout-service", "inventory-service", "recommendation-service"} <= set(traces_by_service)
    # the edges: a span whose parent is in another service
    by_id = {s["spanId"]: s for s in spans}
    calls: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for s in spans:
        parent = by_id.get(s["parentSpanId"])
        if parent is not None and parent["serviceName"] != s["serviceName"]:
            calls[parent["serviceName"]].add((s["name"], s["serviceName"]))
    buckets = search(client, SERVICE_MAP_INDEX, service_map_query())["service_name"]["buckets"]
    from_map = {b["key"]: {(e["key"], d["key"]) for e in b["destination_edges"]["buckets"]
                           for d in e["domain"]["buckets"]} for b in buckets}
    assert {k: v for k, v in from_map.items() if v} == dict(calls)
    served = {b["key"]: {t["key"] for t in b["target_resource"]["buckets"]} for b in buckets}
    for caller_edges in calls.values():
        for name, service in caller_edges:
            assert name in served[service]
    assert set(from_map) == set(traces_by_service)  # every service is a node of the map


def test_service_latency_and_error_rate(streamed):
    _, out, client = streamed[:3]
    spans = spans_of(out)
    buckets = search(client, SERVICE_MAP_INDEX, service_map_query())["service_name"]["buckets"]
    targets = sorted({t["key"] for b in buckets for t in b["target_resource"]["buckets"]})
    services = sorted({s["serviceName"] for s in spans})
    got = search(client, SPAN_INDEX, service_metrics_query(services, targets))["service_name"]["buckets"]
    chosen = [s for s in spans if s["parentSpanId"] == "" or s["name"] in targets]
    count = Counter(s["serviceName"] for s in chosen)
    errors = Counter(s["serviceName"] for s in chosen if s["status.code"] == 2)
    total_ns = Counter()
    for s in chosen:
        total_ns[s["serviceName"]] += s["durationInNanos"]
    for b in got:
        name = b["key"]
        assert b["doc_count"] == count[name]
        # the plugin's bucket scripts: latency in ms to 2 decimals, error rate in percent
        latency_ms = round(b["average_latency_nanos"]["value"] / 10000) / 100.0
        assert latency_ms == pytest.approx(round(total_ns[name] / count[name] / 10000) / 100.0,
                                           abs=0.011)
        assert 100 * b["error_count"]["doc_count"] / b["doc_count"] == \
            pytest.approx(100 * errors[name] / count[name])
    assert errors["checkout-service"] > 0  # the gateway's timeouts fail checkouts


def test_traces_and_trace_groups(streamed):
    _, out, client = streamed[:3]
    spans = spans_of(out)
    roots = {s["traceId"]: s for s in spans if s["parentSpanId"] == ""}
    per_trace = Counter(s["traceId"] for s in spans)
    aggs = search(client, SPAN_INDEX, traces_query())
    assert aggs["unique_traces"]["value"] == pytest.approx(len(roots), rel=0.01)
    listed = aggs["traces"]["buckets"]
    assert [b["key"] for b in listed] == sorted(roots)[:500]
    for b in listed:
        root = roots[b["key"]]
        assert b["doc_count"] == per_trace[b["key"]]
        assert b["trace_group"]["buckets"][0]["key"] == root["name"]
        assert b["error_count"]["doc_count"] == (per_trace[b["key"]] if root["status.code"] == 2 else 0)
    groups = search(client, SPAN_INDEX, trace_group_percentiles_query())["trace_group_name"]["buckets"]
    by_group: dict[str, list[int]] = defaultdict(list)
    for r in roots.values():
        by_group[r["name"]].append(r["durationInNanos"])
    assert {g["key"]: g["doc_count"] for g in groups} == {k: len(v) for k, v in by_group.items()}
    for g in groups:
        assert g["percentiles"]["values"]["100.0"] == pytest.approx(max(by_group[g["key"]]), rel=1e-9)
    dashboard = search(client, SPAN_INDEX, dashboard_query())["trace_group_name"]["buckets"]
    failed = Counter(r["name"] for r in roots.values() if r["status.code"] == 2)
    for g in dashboard:
        assert g["trace_count"]["value"] == len(by_group[g["key"]])
        assert g["error_count"]["trace_count"]["value"] == failed[g["key"]]
    assert failed["POST /api/checkout"] > 0


def test_streaming_again_sends_nothing_twice(streamed, capsys):
    """The same run again: every span, edge and log line is already there (409 on create
    with the files' ids), and the indices hold each once."""
    _, out, client, args, tmp, incidents = streamed
    spans = len(spans_of(out))
    edges = len((out / "otel-v1-apm-service-map.ndjson").read_bytes().splitlines()) // 2
    again = [*args]
    again[again.index("--output-dir") + 1] = str(tmp / "again")
    capsys.readouterr()
    assert _with_incidents(again, tmp, incidents) == 0
    err = capsys.readouterr().err
    assert f"sink opensearch:{SPAN_INDEX}: generated {spans:,} indexed 0 already present {spans:,}" in err
    client.indices.refresh(index=f"{SPAN_INDEX},{SERVICE_MAP_INDEX}")
    roots = client.count(index=SPAN_INDEX, body={"query": {"term": {"parentSpanId": ""}}})["count"]
    assert roots == sum(1 for s in spans_of(out) if s["parentSpanId"] == "")
    assert client.count(index=SERVICE_MAP_INDEX)["count"] == edges
