"""The OpenSearch sink and index setup against a real node.

Why a real node: the guarantees that matter (exact counts, idempotent re-runs, no loss and
no duplicates across a kill -9 of the node) are properties of OpenSearch + the sink
together; a mock would only test our assumptions about OpenSearch.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearch_fixtures import OpenSearchNode, opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch

from sim.outputs.index_setup import (
    IndexMappingError,
    bulk_load_settings,
    ensure_index,
    flatten_mapping,
    setup_index,
    template_name,
)
from sim.outputs.opensearch import OpenSearchSetupError, OpenSearchSink, connect

EVENT_TYPES = ("http_request", "order", "app_log")

MAPPING: dict[str, Any] = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "@timestamp": {"type": "date"},
            "event_type": {"type": "keyword"},
            "seq": {"type": "long"},
            "amount": {"type": "double"},
            "service": {"properties": {"name": {"type": "keyword"}}},
            "message": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        },
    },
}


def make_docs(n: int) -> list[tuple[str, dict[str, Any]]]:
    """Deterministic documents with three event types (ids derived from ``seq``)."""
    docs = []
    for i in range(n):
        et = EVENT_TYPES[i % 3]
        docs.append(
            (
                f"{et}-{i:07d}",
                {
                    "@timestamp": f"2026-01-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                    "event_type": et,
                    "seq": i,
                    "amount": round(i * 0.25, 2),
                    "service": {"name": f"svc-{i % 5}"},
                    "message": f"GET /products/{i % 97} completed in {i % 300} ms",
                },
            )
        )
    return docs


@pytest.fixture()
def client(opensearch_url: str) -> OpenSearch:  # noqa: F811 - pytest fixture injection
    return connect(opensearch_url)


@pytest.fixture()
def index(client: OpenSearch) -> Iterator[str]:
    """A fresh, uniquely named index with MAPPING; deleted afterwards."""
    name = f"test-sink-{uuid.uuid4().hex[:10]}"
    assert ensure_index(client, name, MAPPING) == "created"
    yield name
    client.indices.delete(index=name, ignore=[404])


def stream(
    client: OpenSearch, index: str, docs: list[tuple[str, dict[str, Any]]], dead: Path, **kw: Any
) -> Any:
    sink = OpenSearchSink(client, index, dead_letter_path=dead, **kw)
    for doc_id, doc in docs:
        sink.emit(doc_id, doc)
    return sink.close()


def counts_by_type(client: OpenSearch, index: str) -> dict[str, int]:
    resp = client.search(
        index=index,
        body={"size": 0, "aggs": {"t": {"terms": {"field": "event_type", "size": 10}}}},
    )
    return {b["key"]: b["doc_count"] for b in resp["aggregations"]["t"]["buckets"]}


def expected_by_type(docs: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, doc in docs:
        out[doc["event_type"]] = out.get(doc["event_type"], 0) + 1
    return out


def test_stream_counts_overall_and_per_event_type(client: OpenSearch, index: str, tmp_path: Path) -> None:
    docs = make_docs(6000)
    with bulk_load_settings(client, index):
        summary = stream(client, index, docs, tmp_path / "dead.ndjson", chunk_size=700)
    assert summary.generated == 6000
    assert summary.indexed == 6000
    assert summary.unaccounted == 0
    assert client.count(index=index)["count"] == 6000
    assert counts_by_type(client, index) == expected_by_type(docs)
    for et, n in expected_by_type(docs).items():
        assert client.count(index=index, body={"query": {"term": {"event_type": et}}})["count"] == n
        assert summary.details["by_event_type"][et]["indexed"] == n
    assert not (tmp_path / "dead.ndjson").exists()
    # The queries the project relies on work on the bare-jar node.
    aggs = client.search(
        index=index,
        body={
            "size": 0,
            "query": {"match": {"message": "products"}},
            "aggs": {
                "s": {"stats": {"field": "amount"}},
                "h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}},
                "r": {"range": {"field": "seq", "ranges": [{"to": 100}, {"from": 100}]}},
            },
        },
    )["aggregations"]
    assert aggs["s"]["count"] == 6000
    assert sum(b["doc_count"] for b in aggs["h"]["buckets"]) == 6000
    assert [b["doc_count"] for b in aggs["r"]["buckets"]] == [100, 5900]


def test_restreaming_same_docs_is_idempotent(client: OpenSearch, index: str, tmp_path: Path) -> None:
    docs = make_docs(3000)
    first = stream(client, index, docs, tmp_path / "dead.ndjson")
    assert first.indexed == 3000
    second = stream(client, index, docs, tmp_path / "dead.ndjson")
    assert second.already_present == 3000
    assert second.indexed == 0
    assert second.unaccounted == 0
    assert client.count(index=index)["count"] == 3000
    assert all(row["already_present"] == row["generated"] for row in second.details["by_event_type"].values())


def test_mapping_rejections_are_dead_lettered(client: OpenSearch, index: str, tmp_path: Path) -> None:
    docs = make_docs(500)
    docs[10][1]["unexpected_field"] = 1  # strict mapping -> 400
    docs[20][1]["seq"] = "not-a-number"  # mapper_parsing_exception -> 400
    dead = tmp_path / "dead.ndjson"
    summary = stream(client, index, docs, dead)
    assert summary.dead_lettered == 2
    assert summary.indexed == 498
    assert summary.unaccounted == 0
    lines = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert {x["_id"] for x in lines} == {docs[10][0], docs[20][0]}
    reasons = " ".join(x["reason"] for x in lines)
    assert "strict_dynamic_mapping_exception" in reasons
    assert "mapper_parsing_exception" in reasons
    assert all(x["status"] == 400 and x["_index"] == index for x in lines)


def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    opensearch_node: OpenSearchNode,  # noqa: F811 - pytest fixture injection
    client: OpenSearch,
    index: str,
    tmp_path: Path,
) -> None:
    if not opensearch_node.own_node:
        pytest.skip("needs the project's own node (OPENSEARCH_URL points elsewhere)")
    n = 60_000
    docs = make_docs(n)
    # Commit often so the restart replays a short translog (replay runs ~2k ops/s on a cold JVM, 60k
    # ops would dominate the test's run time); the kill still hits in-flight requests.
    client.indices.put_settings(index=index, body={"index": {"translog.flush_threshold_size": "4mb"}})
    start_killer = threading.Event()
    killed = threading.Event()
    restarted = threading.Event()
    problems: list[BaseException] = []

    def killer() -> None:
        try:
            start_killer.wait(120)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until some documents are in
                try:
                    if client.count(index=index)["count"] > 0:
                        break
                except Exception:  # noqa: BLE001 - node may be busy; keep polling
                    pass
                time.sleep(0.05)
            pid = opensearch_node.pid()
            assert pid, "no pid file for the project's node"
            os.kill(pid, signal.SIGKILL)
            killed.set()
            while True:  # the JVM must be gone before a restart can take the data dir
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            opensearch_node.script("start", timeout=300)
            restarted.set()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test below
            problems.append(exc)
            killed.set()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    sink = OpenSearchSink(
        client,
        index,
        dead_letter_path=tmp_path / "dead.ndjson",
        chunk_size=1000,
        backoff_base=0.2,
        backoff_cap=2.0,
        give_up_after=240.0,
        request_timeout=60.0,
    )
    for i, (doc_id, doc) in enumerate(docs):
        if i == n // 5:
            start_killer.set()
        if i == (3 * n) // 5:
            assert killed.wait(120), "node was not killed in time"
        sink.emit(doc_id, doc)
    summary = sink.close()
    thread.join(300)
    assert not problems, problems
    assert restarted.is_set()
    assert summary.unaccounted == 0, summary
    assert summary.dead_lettered == 0
    assert summary.indexed + summary.already_present == n
    assert summary.details["retried_items"] > 0, "the kill did not hit the stream"
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == n
    stats = client.search(index=index, body={"size": 0, "aggs": {"s": {"stats": {"field": "seq"}}}})[
        "aggregations"
    ]["s"]
    # count == n with unique _ids, and exactly the seq values 0..n-1: every id once.
    assert (stats["count"], stats["min"], stats["max"]) == (n, 0, n - 1)
    assert stats["sum"] == n * (n - 1) / 2
    assert counts_by_type(client, index) == expected_by_type(docs)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connection_fails_fast() -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    started = time.monotonic()
    with pytest.raises(OpenSearchSetupError, match="cannot connect") as err:
        connect(url)
    assert time.monotonic() - started < 5
    assert url in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("url", ["localhost:9200", "ftp://127.0.0.1:9200", "http://", "nonsense"])
def test_bad_url_fails_fast(url: str) -> None:
    with pytest.raises(OpenSearchSetupError, match="invalid OpenSearch URL"):
        connect(url)


def test_existing_incompatible_mapping_names_the_field(client: OpenSearch) -> None:
    name = f"test-map-{uuid.uuid4().hex[:10]}"
    wrong = {
        "mappings": {
            "properties": {
                "@timestamp": {"type": "date"},
                "event_type": {"type": "text"},
                "seq": {"type": "long"},
            }
        }
    }
    client.indices.create(index=name, body=wrong)
    try:
        with pytest.raises(IndexMappingError, match="'event_type' has type text"):
            ensure_index(client, name, MAPPING)
        client.indices.put_mapping(index=name, body={"properties": {"amount": {"type": "double"}}})
        del wrong["mappings"]["properties"]["event_type"]
        ok_name = f"test-map-{uuid.uuid4().hex[:10]}"
        client.indices.create(index=ok_name, body=MAPPING)
        try:
            assert ensure_index(client, ok_name, MAPPING) == "exists"
        finally:
            client.indices.delete(index=ok_name)
    finally:
        client.indices.delete(index=name)
    # an index made by an older version lacks fields added since: they are added, and its
    # template (ours) gains them too; a field of another type is still refused (above)
    older = f"test-map-{uuid.uuid4().hex[:10]}"
    client.indices.create(index=older, body={"mappings": {"properties": {"seq": {"type": "long"}}}})
    client.indices.put_index_template(name=template_name(older), body={
        "index_patterns": [older], "template": {"mappings": {"properties": {"seq": {"type": "long"}}}}})
    try:
        assert ensure_index(client, older, MAPPING) == "exists"
        mapped = flatten_mapping(client.indices.get_mapping(index=older)[older]["mappings"])
        assert mapped["@timestamp"] == "date" and mapped["seq"] == "long"
        template = client.indices.get_index_template(name=template_name(older))["index_templates"][0]
        assert flatten_mapping(template["index_template"]["template"]["mappings"])["@timestamp"] == "date"
    finally:
        client.indices.delete(index=older)
        client.indices.delete_index_template(name=template_name(older))


def test_bulk_load_settings_are_restored_even_on_failure(client: OpenSearch, index: str) -> None:
    client.indices.put_settings(index=index, body={"index": {"refresh_interval": "5s"}})

    def current() -> Any:
        flat = client.indices.get_settings(index=index, flat_settings=True)[index]["settings"]
        return flat.get("index.refresh_interval")

    with pytest.raises(RuntimeError), bulk_load_settings(client, index) as previous:
        assert previous == {"index.refresh_interval": "5s"}
        assert current() == "-1"
        raise RuntimeError("simulation failed")
    assert current() == "5s"


def test_setup_index_from_mapping_file(client: OpenSearch, tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_bytes(orjson.dumps(MAPPING))
    name = f"test-setup-{uuid.uuid4().hex[:10]}"
    out = tmp_path / "out.txt"
    try:
        with out.open("w") as fh:
            assert setup_index(client, name, path, out=fh) == 0
            assert setup_index(client, name, path, out=fh) == 0
        text = out.read_text()
        assert "created index" in text
        assert "already exists with a compatible mapping" in text
    finally:
        client.indices.delete(index=name, ignore=[404])
