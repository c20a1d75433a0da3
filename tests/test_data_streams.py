"""Index templates and data streams on the real node: the template applies, a data stream
receives a demo window, the seed's queries work through it, and conflicts are one line."""

from __future__ import annotations

import fnmatch
import json
import uuid

import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch

from sim.cli import main
from sim.outputs.index_setup import ensure_index, flatten_mapping, ism_policy, load_mapping, template_name
from sim.outputs.mapping import MAPPING_PATH
from sim.outputs.validation_queries import check_data_distribution


@pytest.fixture()
def client(opensearch_url):  # noqa: F811
    return OpenSearch(opensearch_url)


@pytest.fixture()
def name(client):
    target = f"logs-storefront-{uuid.uuid4().hex[:8]}"
    yield target
    client.indices.delete_data_stream(name=target, ignore=[404])
    client.indices.delete(index=target, ignore_unavailable=True)
    client.indices.delete_index_template(name=template_name(target), ignore=[404])


def _run(tmp_path, url, *flags):
    scenario = tmp_path / "ds.yaml"
    scenario.write_text(f"name: ds\nfaults:\n  - type: payment_gateway_slowdown\n"
                        f"    start: today 14:25\noutput:\n  incidents_index: ds-inc-{tmp_path.name}\n")
    return main([str(scenario), "--today", "2026-11-27", "--start", "today 14:20", "--end",
                 "today 14:40", "--base-tps", "5", "--output-dir", str(tmp_path / "out"),
                 "--quiet", "--opensearch", url, *flags])


def test_index_setup_goes_through_a_composable_template(client, name):
    body = load_mapping(MAPPING_PATH)
    assert ensure_index(client, name, body) == "created"
    (template,) = client.indices.get_index_template(name=template_name(name))["index_templates"]
    assert template["index_template"]["index_patterns"] == [name]
    mapped = client.indices.get_mapping(index=name)[name]["mappings"]
    assert flatten_mapping(mapped) == flatten_mapping(body["mappings"])
    assert ensure_index(client, name, body) == "exists"


def test_data_stream_receives_a_window_and_answers_the_seed_queries(tmp_path, opensearch_url,  # noqa: F811
                                                                    client, name, capsys):
    assert _run(tmp_path, opensearch_url, "--data-stream", name) == 0
    # the project's node has no index-management plugin (not on Maven Central): said once
    notes = [x for x in capsys.readouterr().err.splitlines() if "index-management" in x]
    assert len(notes) == 1 and "sim/outputs/ism_policy.json" in notes[0]
    (stream,) = client.indices.get_data_stream(name=name)["data_streams"]
    assert stream["template"] == template_name(name)
    assert all(i["index_name"].startswith(f".ds-{name}-") for i in stream["indices"])
    client.indices.refresh(index=name)
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert client.count(index=name)["count"] == summary["total_documents"]
    aggs = client.search(index=name, body={
        "size": 0, "aggs": {
            "status_distribution": {"terms": {"field": "status"}},
            "response_time_stats": {"stats": {"field": "response_time_ms"}},
            "timeline": {"date_histogram": {"field": "@timestamp", "calendar_interval": "1h"}}}},
    )["aggregations"]
    local = check_data_distribution(tmp_path / "out" / "all_data.ndjson")
    assert {b["key"]: b["doc_count"] for b in aggs["status_distribution"]["buckets"]} == local.status
    assert aggs["response_time_stats"]["count"] == local.count
    hits = client.search(index=name, body={
        "query": {"bool": {"must": [{"range": {"response_time_ms": {"gte": 5000}}},
                                    {"term": {"status": "error"}}]}},
        "sort": [{"@timestamp": "desc"}], "size": 10})["hits"]["hits"]
    assert hits  # the seed's "Find Performance Incidents" works through the data stream
    # streaming the same window again adds nothing (create-only operations)
    assert _run(tmp_path, opensearch_url, "--data-stream", name) == 0
    client.indices.refresh(index=name)
    assert client.count(index=name)["count"] == summary["total_documents"]


def test_incompatible_template_is_one_line(tmp_path, opensearch_url, client, name, capsys):  # noqa: F811
    body = load_mapping(MAPPING_PATH)
    body["mappings"]["properties"]["response_time_ms"] = {"type": "keyword"}
    client.indices.put_index_template(name=template_name(name), body={
        "index_patterns": [name], "data_stream": {}, "template": {"mappings": body["mappings"]}})
    assert _run(tmp_path, opensearch_url, "--data-stream", name) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "response_time_ms" in err[0] and template_name(name) in err[0]
    assert not (tmp_path / "out").exists()


def test_a_refused_data_stream_name_is_one_line(tmp_path, opensearch_url, capsys):  # noqa: F811
    assert _run(tmp_path, opensearch_url, "--data-stream", "Bad Name") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data stream 'Bad Name' refused" in err[0]


def test_shipped_ism_policy_rolls_over_and_deletes_the_streams_backing_indices():
    body = ism_policy("logs-storefront-demo", delete_after_days=3)["policy"]
    states = {s["name"]: s for s in body["states"]}
    assert body["default_state"] in states
    for state in states.values():
        assert all(t["state_name"] in states for t in state["transitions"])
    rollover = states["hot"]["actions"][0]["rollover"]
    assert rollover == {"min_index_age": "1d", "min_size": "5gb"}
    assert states["hot"]["transitions"][0]["conditions"] == {"min_rollover_age": "3d"}
    assert states["delete"]["actions"] == [{"delete": {}}]
    patterns = body["ism_template"][0]["index_patterns"]
    assert any(fnmatch.fnmatch(".ds-logs-storefront-demo-000001", p) for p in patterns)
    assert not any(fnmatch.fnmatch(".ds-logs-other-000001", p) for p in patterns)
