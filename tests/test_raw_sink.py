"""The OpenSearch sink's raw path: worker part-file bytes go out as they are (issue #15).

Why: the raw path sends a whole batch as one body and only splits documents out when a
request needs per-item handling; that split must keep the accounting exact, and the bytes
that reach the index must be the ones the worker wrote.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fake_bulk_server import BulkScript, fake_opensearch
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch

from sim.outputs.index_setup import ensure_index
from sim.outputs.opensearch import OpenSearchSink, connect
from sim.telemetry.encoding import EncodedDoc, bulk_lines

EVENT_TYPES = ("transaction", "error", "infrastructure_metric")
MAPPING: dict[str, Any] = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {"dynamic": "strict", "properties": {
        "event_type": {"type": "keyword"}, "seq": {"type": "long"},
        "message": {"type": "text"}}},
}


def _docs(n: int) -> list[tuple[str, dict[str, Any]]]:
    # a message with quotes, a backslash and non-ASCII: bytes must arrive unchanged
    return [(f"doc-{i:05d}", {"event_type": EVENT_TYPES[i % 3], "seq": i,
                              "message": f'say "hi" \\ {i} – naïve'}) for i in range(n)]


def _pieces(docs: list[tuple[str, dict[str, Any]]], sizes: tuple[int, ...]) -> Iterator[tuple[bytes, int]]:
    """The documents as bulk_lines pairs, in pieces of varying document counts."""
    i = k = 0
    while i < len(docs):
        n = sizes[k % len(sizes)]
        chunk = docs[i:i + n]
        yield b"".join(bulk_lines(d, doc) for d, doc in chunk), len(chunk)
        i += n
        k += 1


def test_raw_batches_under_faults_keep_exact_accounting(tmp_path: Path) -> None:
    reject = {"doc-00065", "doc-00130"}
    throttle = {"doc-00060", "doc-00061", "doc-00075", "doc-00120"}
    script = BulkScript(reject_400=reject, throttle_once=throttle, drop_requests={1},
                        status_requests={4: 503}, garbage_requests={6})
    docs = _docs(300)
    with fake_opensearch(script) as fake:
        sink = OpenSearchSink(connect(fake.url), "fake-index", dead_letter_path=tmp_path / "dead.ndjson",
                              chunk_size=40, senders=2, backoff_base=0.01, backoff_cap=0.05,
                              request_timeout=10.0, give_up_after=30.0)
        for lines, n in _pieces(docs, (7, 30, 1, 55)):
            sink.emit_raw(lines, n)
        summary = sink.close()
    good = {d for d, _ in docs} - reject
    assert set(fake.created) == good
    assert max(fake.created.values()) == 1
    assert all(fake.docs[d] == orjson.loads(orjson.dumps(doc)) for d, doc in docs if d in good)
    assert summary.generated == 300 and summary.unaccounted == 0
    assert summary.dead_lettered == len(reject)
    assert summary.indexed + summary.already_present == len(good)
    by_type = summary.details["by_event_type"]
    assert {t: row["generated"] for t, row in by_type.items()} == dict(
        Counter(doc["event_type"] for _, doc in docs))
    dead = [orjson.loads(x) for x in (tmp_path / "dead.ndjson").read_bytes().splitlines()]
    assert {x["_id"] for x in dead} == reject
    assert all(x["doc"] == dict(docs[x["doc"]["seq"]][1]) for x in dead)
    # the body went out as create actions into the URL's index
    assert all(len(r.ids) <= 40 + 55 for r in fake.requests)


@pytest.fixture()
def client(opensearch_url: str) -> OpenSearch:  # noqa: F811 - pytest fixture injection
    return connect(opensearch_url)


@pytest.fixture()
def index(client: OpenSearch) -> Iterator[str]:
    name = f"test-raw-{uuid.uuid4().hex[:10]}"
    assert ensure_index(client, name, MAPPING) == "created"
    yield name
    client.indices.delete(index=name, ignore=[404])


def test_raw_lines_and_encoded_docs_reach_the_node_unchanged(client: OpenSearch, index: str,
                                                             tmp_path: Path) -> None:
    docs = _docs(1000)
    docs[10][1]["unexpected"] = 1  # strict mapping: dead-lettered, the rest indexed
    sink = OpenSearchSink(client, index, dead_letter_path=tmp_path / "dead.ndjson", chunk_size=300)
    for lines, n in _pieces(docs[:600], (250, 3)):
        sink.emit_raw(lines, n)
    for doc_id, doc in docs[600:]:  # the in-process path: encoded documents, also raw
        sink.emit(doc_id, EncodedDoc(doc["event_type"], orjson.dumps(doc)))
    summary = sink.close()
    assert (summary.generated, summary.indexed, summary.dead_lettered, summary.unaccounted) == \
        (1000, 999, 1, 0)
    assert client.count(index=index)["count"] == 999
    for i in (0, 599, 600, 999):
        got = client.get(index=index, id=docs[i][0])["_source"]
        assert got == docs[i][1]
    dead = [orjson.loads(x) for x in (tmp_path / "dead.ndjson").read_bytes().splitlines()]
    assert [x["_id"] for x in dead] == [docs[10][0]]
    assert "strict_dynamic_mapping_exception" in dead[0]["reason"]


class _Captured(Exception):
    pass


@pytest.mark.parametrize(("flags", "expected"), [([], "local"), (["--workers", "2"], 2)])
def test_streaming_into_a_local_node_defaults_to_one_worker(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, opensearch_url: str,  # noqa: F811
        flags: list[str], expected: int | str | None) -> None:
    """One worker measured fastest into a node on this machine (docs/performance.md)."""
    import sim.cli

    seen: list[int | None] = []

    def fake_simulate(*args: Any, workers: int | None = None, **kw: Any) -> None:
        seen.append(workers)
        raise _Captured

    monkeypatch.setattr(sim.cli, "simulate", fake_simulate)
    index = f"test-workers-{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: w\noutput: {{index: {index}, incidents_index: {index}-inc}}\n")
    if expected == "local":  # a remote OPENSEARCH_URL keeps the all-cores default
        expected = 1 if sim.cli._on_this_machine(opensearch_url) else None
    with pytest.raises(_Captured):
        sim.cli.main([str(scenario), "--today", "2026-11-27", "--start", "today 10:00", "--end",
                      "today 10:10", "--no-files", "--quiet", "--opensearch", opensearch_url,
                      *flags])
    connect(opensearch_url).indices.delete(index=f"{index},{index}-inc", ignore_unavailable=True)
    assert seen == [expected]
