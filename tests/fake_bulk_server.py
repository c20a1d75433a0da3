"""A scriptable fake OpenSearch for fault-injection tests of the streaming sink.

Why fake: a real node cannot be told to throttle exactly these three documents, reject
those two, and drop the connection of the first request. This server can, and it records
every ``_bulk`` request (the ids in it and what it answered) so a test can prove that only
failed items were re-sent and that good documents were created exactly once.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class BulkScript:
    """What the fake does. Request numbers count ``_bulk`` requests from 1."""

    reject_400: set[str] = field(default_factory=set)  # always mapper_parsing_exception
    throttle_once: set[str] = field(default_factory=set)  # 429 on the first attempt only
    drop_requests: set[int] = field(default_factory=set)  # apply, then close w/o answer
    status_requests: dict[int, int] = field(default_factory=dict)  # whole-request status
    always_status: int | None = None  # every _bulk answered with this status
    garbage_requests: set[int] = field(default_factory=set)  # 200 with an unparseable body
    auth_required: bool = False  # 401 for everything
    item_error: tuple[int, str, str] | None = None  # every item: (status, type, reason)
    whole_error_type: str = "fake_failure"  # error type of whole-request failures


@dataclass
class BulkRecord:
    """One received ``_bulk`` request and what became of each id in it."""

    number: int
    ids: list[str]
    outcome: dict[str, str]  # id -> "201" / "409" / "429" / "400" / "dropped" / "503"...


class FakeOpenSearch:
    """State shared by the handler threads (guarded by one lock)."""

    def __init__(self, script: BulkScript) -> None:
        self.script = script
        self.lock = threading.Lock()
        self.requests: list[BulkRecord] = []
        self.created: Counter[str] = Counter()  # id -> number of 201 answers
        self.docs: dict[str, dict[str, Any]] = {}
        self._throttled: set[str] = set()
        self.url = ""

    def bulk(self, body: bytes) -> tuple[int, dict[str, Any] | None]:
        """Apply one _bulk body; (status, response) with response None = drop connection."""
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        pairs = [(json.loads(lines[i]), json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]
        with self.lock:
            number = len(self.requests) + 1
            ids = [next(iter(a.values()))["_id"] for a, _ in pairs]
            record = BulkRecord(number, ids, {})
            self.requests.append(record)
            s = self.script
            if number in s.garbage_requests:
                record.outcome = {i: "garbage" for i in ids}
                return 200, {"__garbage__": True}
            whole = s.always_status or s.status_requests.get(number)
            if whole:
                record.outcome = {i: str(whole) for i in ids}
                return whole, {"error": {"type": s.whole_error_type, "reason": "scripted"}, "status": whole}
            items = []
            for (action, source), doc_id in zip(pairs, ids, strict=True):
                op, meta = next(iter(action.items()))
                if s.item_error is not None:
                    st, err = s.item_error[0], {"type": s.item_error[1], "reason": s.item_error[2]}
                elif doc_id in s.reject_400:
                    st, err = (
                        400,
                        {"type": "mapper_parsing_exception", "reason": "failed to parse field [amount]"},
                    )
                elif doc_id in s.throttle_once and doc_id not in self._throttled:
                    self._throttled.add(doc_id)
                    st, err = 429, {"type": "es_rejected_execution_exception", "reason": "rejected execution"}
                elif doc_id in self.docs:
                    st, err = (
                        409,
                        {
                            "type": "version_conflict_engine_exception",
                            "reason": f"[{doc_id}]: document already exists",
                        },
                    )
                else:
                    self.docs[doc_id] = source
                    self.created[doc_id] += 1
                    st, err = 201, None
                record.outcome[doc_id] = str(st)
                item: dict[str, Any] = {"_index": meta.get("_index"), "_id": doc_id, "status": st}
                if err:
                    item["error"] = err
                items.append({op: item})
            if number in s.drop_requests:
                record.outcome = {i: "dropped" for i in ids}
                return 0, None
            return 200, {
                "took": 1,
                "errors": any("error" in next(iter(x.values())) for x in items),
                "items": items,
            }


def _handler(state: FakeOpenSearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _dispatch(self) -> None:
            body = self._body()
            if state.script.auth_required:
                self._send(
                    401,
                    {
                        "error": {
                            "type": "security_exception",
                            "reason": "missing authentication credentials",
                        },
                        "status": 401,
                    },
                )
                return
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(
                    200,
                    {
                        "name": "fake",
                        "cluster_name": "fake",
                        "version": {"number": "2.19.6", "distribution": "opensearch"},
                    },
                )
            elif path.endswith("/_bulk"):
                status, resp = state.bulk(body)
                if resp is None:
                    self.close_connection = True  # no answer: the client sees a dropped link
                    return
                if resp.get("__garbage__"):
                    data = b"<html>502 from a confused proxy"
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self._send(status, resp)
            elif path.endswith("/_refresh"):
                self._send(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
            else:
                self._send(404, {"error": {"type": "fake_not_found", "reason": path}, "status": 404})

        do_GET = do_POST = do_PUT = do_HEAD = _dispatch  # noqa: N815 - stdlib naming

    return Handler


@contextmanager
def fake_opensearch(script: BulkScript | None = None) -> Iterator[FakeOpenSearch]:
    """Run the fake on 127.0.0.1 (free port) for the duration of the block."""
    state = FakeOpenSearch(script or BulkScript())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-opensearch", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
