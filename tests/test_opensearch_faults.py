"""Fault injection against a fake OpenSearch: retries re-send only what failed.

Why: 429s, partial 400s and dropped connections are rare on a healthy local node but
routine on a busy cluster; the sink's per-item accounting must hold exactly under them.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fake_bulk_server import BulkScript, FakeOpenSearch, fake_opensearch
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.outputs.opensearch import OpenSearchSetupError, OpenSearchSink, connect

N = 200
EVENT_TYPES = ("http_request", "order", "app_log")


def _docs(n: int = N) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"doc-{i:05d}", {"event_type": EVENT_TYPES[i % 3], "seq": i, "amount": i * 1.5}) for i in range(n)
    ]


def _sink(url: str, tmp_path: Path, **kw: Any) -> OpenSearchSink:
    opts: dict[str, Any] = {
        "chunk_size": 50,
        "senders": 1,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "request_timeout": 10.0,
        "give_up_after": 30.0,
    }
    opts.update(kw)
    return OpenSearchSink(connect(url), "fake-index", dead_letter_path=tmp_path / "dead.ndjson", **opts)


def _retryable(outcome: str) -> bool:
    return outcome in ("429", "dropped", "garbage") or outcome.startswith("5")


def _assert_only_failures_resent(fake: FakeOpenSearch) -> None:
    """Every re-sent id last failed retryably, and retries never mix with fresh docs."""
    last: dict[str, str] = {}
    for req in fake.requests:
        seen = [i for i in req.ids if i in last]
        assert not seen or len(seen) == len(req.ids), f"request {req.number} mixes retries"
        for doc_id in seen:
            assert _retryable(last[doc_id]), (
                f"{doc_id} re-sent in request {req.number} after outcome {last[doc_id]}"
            )
        last.update(req.outcome)


def test_retries_only_failed_items_and_dead_letters_400s(tmp_path: Path) -> None:
    reject = {"doc-00065", "doc-00130"}
    throttle = {"doc-00060", "doc-00061", "doc-00075", "doc-00120"}
    script = BulkScript(
        reject_400=reject, throttle_once=throttle, drop_requests={1}, status_requests={4: 503}
    )
    docs = _docs()
    with fake_opensearch(script) as fake:
        sink = _sink(fake.url, tmp_path)
        for doc_id, doc in docs:
            sink.emit(doc_id, doc)
        summary = sink.close()

    _assert_only_failures_resent(fake)
    good = {d for d, _ in docs} - reject
    # Good documents were created exactly once, rejected ones never.
    assert set(fake.created) == good
    assert max(fake.created.values()) == 1
    # Ids of the dropped first request came back: they were applied, so they answer 409.
    dropped = set(fake.requests[0].ids)
    assert len(dropped) == 50
    resend_counts = {i: sum(i in r.ids for r in fake.requests) for i in dropped}
    assert set(resend_counts.values()) == {2}
    # Each id is sent once plus once per retryable failure it got (429, dropped, 503).
    sends: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for req in fake.requests:
        sends.update(req.ids)
        failures.update(i for i, o in req.outcome.items() if _retryable(o))
    assert all(sends[i] == 1 + failures[i] for i in sends)
    assert all(failures[i] >= 1 for i in throttle)
    assert all(sends[i] == 1 for i in reject)
    assert any(r.outcome and set(r.outcome.values()) == {"503"} for r in fake.requests)

    assert summary.generated == N
    assert summary.unaccounted == 0
    assert summary.dead_lettered == len(reject)
    assert summary.already_present == len(dropped)  # ambiguous: applied before the drop
    assert summary.details["ambiguous_409"] == len(dropped)
    assert summary.indexed == len(good) - len(dropped)
    by_type = summary.details["by_event_type"]
    assert sum(row["generated"] for row in by_type.values()) == N
    assert all(row["unaccounted"] == 0 for row in by_type.values())

    lines = [orjson.loads(x) for x in (tmp_path / "dead.ndjson").read_bytes().splitlines()]
    assert {x["_id"] for x in lines} == reject
    for x in lines:
        assert x["status"] == 400
        assert x["_index"] == "fake-index"
        assert "mapper_parsing_exception" in x["reason"]
        assert x["doc"]["seq"] == int(x["_id"].split("-")[1])


def test_gives_up_after_bounded_time_and_reports_unaccounted(tmp_path: Path) -> None:
    with fake_opensearch(BulkScript(always_status=503)) as fake:
        sink = _sink(fake.url, tmp_path, give_up_after=0.5, refresh_on_close=False)
        started = time.monotonic()
        for doc_id, doc in _docs():
            sink.emit(doc_id, doc)
        summary = sink.close()
    assert time.monotonic() - started < 10
    assert summary.generated == N
    assert summary.indexed == 0
    assert summary.unaccounted == N
    assert "gave_up" in summary.details
    assert fake.requests, "it did try"


def test_two_senders_keep_exact_accounting(tmp_path: Path) -> None:
    throttle = {f"doc-{i:05d}" for i in range(0, 2000, 37)}
    script = BulkScript(throttle_once=throttle, status_requests={3: 502, 7: 500}, garbage_requests={5})
    docs = _docs(2000)
    with fake_opensearch(script) as fake:
        sink = _sink(fake.url, tmp_path, senders=2, chunk_size=100)
        for doc_id, doc in docs:
            sink.emit(doc_id, doc)
        summary = sink.close()
    _assert_only_failures_resent(fake)
    assert set(fake.created) == {d for d, _ in docs}
    assert max(fake.created.values()) == 1
    assert summary.indexed == 2000
    assert summary.unaccounted == 0
    assert summary.details["retried_items"] >= len(throttle)


def test_401_fails_fast_without_leaking_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENSEARCH_USER", "alice")
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "hunter2-secret")
    with fake_opensearch(BulkScript(auth_required=True)) as fake:
        url = fake.url.replace("http://", "http://bob:url-secret@")
        started = time.monotonic()
        with pytest.raises(OpenSearchSetupError) as err:
            connect(url)
    assert time.monotonic() - started < 5
    msg = str(err.value)
    assert "401" in msg
    assert "\n" not in msg
    assert "hunter2-secret" not in msg
    assert "url-secret" not in msg
    assert "bob" not in msg
    assert fake.url in msg


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 300),
    chunk_size=st.integers(1, 60),
    senders=st.sampled_from((1, 2)),
    data=st.data(),
)
def test_any_fault_script_keeps_exact_accounting(
    n: int, chunk_size: int, senders: int, data: st.DataObject
) -> None:
    """Whatever mix of faults: every document is indexed once, dead-lettered, or reported."""
    ids = [f"doc-{i:05d}" for i in range(n)]
    reject = set(data.draw(st.lists(st.sampled_from(ids), max_size=5)))
    script = BulkScript(
        reject_400=reject,
        throttle_once=set(data.draw(st.lists(st.sampled_from(ids), max_size=20))),
        drop_requests=set(data.draw(st.lists(st.integers(1, 12), max_size=3))),
        status_requests=data.draw(
            st.dictionaries(st.integers(1, 12), st.sampled_from((429, 500, 502, 503)), max_size=3)
        ),
        garbage_requests=set(data.draw(st.lists(st.integers(1, 12), max_size=2))),
    )
    with tempfile.TemporaryDirectory() as tmp, fake_opensearch(script) as fake:
        sink = _sink(
            fake.url, Path(tmp), chunk_size=chunk_size, senders=senders, backoff_base=0.001, backoff_cap=0.01
        )
        for doc_id, doc in _docs(n):
            sink.emit(doc_id, doc)
        summary = sink.close()
        dead = Path(tmp) / "dead.ndjson"
        dead_ids = {orjson.loads(x)["_id"] for x in dead.read_bytes().splitlines()} if reject else set()
    _assert_only_failures_resent(fake)
    assert summary.generated == n
    assert summary.unaccounted == 0
    assert set(fake.created) == set(ids) - reject
    assert not fake.created or max(fake.created.values()) == 1
    assert summary.dead_lettered == len(reject)
    assert dead_ids == reject
    assert summary.indexed + summary.already_present == n - len(reject)
