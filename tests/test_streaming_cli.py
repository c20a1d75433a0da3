"""End to end against a real OpenSearch node: stream while simulating, then re-stream."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch

from sim.cli import main
from sim.outputs.validation_queries import check_data_distribution


@pytest.fixture()
def names(opensearch_url):  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    index, incidents = f"e2e-{suffix}", f"e2e-incidents-{suffix}"
    yield index, incidents
    OpenSearch(opensearch_url).indices.delete(index=f"{index},{incidents}",
                                              ignore_unavailable=True)


def _scenario(tmp_path, index, incidents):
    path = tmp_path / "e2e.yaml"
    path.write_text(
        "name: e2e\n"
        "faults:\n  - type: payment_gateway_slowdown\n    start: today 14:25\n"
        f"output:\n  index: {index}\n  incidents_index: {incidents}\n")
    return path


def _args(scenario, out, url):
    return [str(scenario), "--today", "2026-11-27", "--start", "today 14:20", "--end",
            "today 14:45", "--base-tps", "5", "--output-dir", str(out), "--quiet",
            "--opensearch", url]


def test_stream_counts_match_and_restream_changes_nothing(tmp_path, opensearch_url, names,  # noqa: F811
                                                          capsys):
    index, incidents = names
    scenario = _scenario(tmp_path, index, incidents)
    assert main(_args(scenario, tmp_path / "a", opensearch_url)) == 0
    summary = json.loads((tmp_path / "a" / "run_summary.json").read_text())
    client = OpenSearch(opensearch_url)
    client.indices.refresh(index=f"{index},{incidents}")
    for kind, n in summary["counts"].items():
        got = client.count(index=index, body={"query": {"term": {"event_type": kind}}})["count"]
        assert got == n, kind
    # the ground truth went to its own index, and the telemetry carries no label of it
    records = [orjson.loads(x) for x in
               (tmp_path / "a" / "incidents.ndjson").read_bytes().splitlines()[1::2]]
    assert client.count(index=incidents)["count"] == len(records) == 1
    assert client.count(index=index, body={"query": {"exists": {"field": "incident_id"}}})[
        "count"] == 0
    # the seed's "Find Performance Incidents" hits fall inside the observed window
    hits = client.search(index=index, body={
        "query": {"bool": {"must": [{"range": {"response_time_ms": {"gte": 5000}}},
                                    {"term": {"status": "error"}}]}},
        "sort": [{"@timestamp": "desc"}], "size": 10})["hits"]["hits"]
    assert hits
    window = (records[0]["symptom_start"], records[0]["symptom_end"])
    assert all(window[0] <= h["_source"]["@timestamp"] <= window[1] for h in hits)
    # the seed's "Check Data Distribution", sent to the node, agrees with the NDJSON written
    # beside it by the same run
    aggs = client.search(index=index, body={
        "size": 0, "aggs": {
            "status_distribution": {"terms": {"field": "status"}},
            "response_time_stats": {"stats": {"field": "response_time_ms"}},
            "timeline": {"date_histogram": {"field": "@timestamp", "calendar_interval": "1h"}}}},
    )["aggregations"]
    local = check_data_distribution(tmp_path / "a" / "all_data.ndjson")
    assert {b["key"]: b["doc_count"] for b in aggs["status_distribution"]["buckets"]} == local.status
    stats = aggs["response_time_stats"]
    assert stats["count"] == local.count and stats["max"] == pytest.approx(local.max)
    assert stats["avg"] == pytest.approx(local.avg, rel=1e-6)
    hourly = {b["key_as_string"][:13]: b["doc_count"] for b in aggs["timeline"]["buckets"]}
    assert hourly == {k[:13]: v for k, v in local.hourly.items()}
    capsys.readouterr()
    # same scenario again: every document is already there, nothing is duplicated
    assert main(_args(scenario, tmp_path / "b", opensearch_url)) == 0
    err = capsys.readouterr().err
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == summary["total_documents"]
    assert f"already present {summary['total_documents']:,}" in err


def test_unreachable_opensearch_fails_fast_before_any_output(tmp_path, names, capsys):
    index, incidents = names
    scenario = _scenario(tmp_path, index, incidents)
    code = main(_args(scenario, tmp_path / "out", "http://127.0.0.1:9"))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "127.0.0.1:9" in err[0]
    assert not (tmp_path / "out").exists()
