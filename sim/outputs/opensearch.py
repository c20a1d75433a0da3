"""Stream simulated documents into an OpenSearch index while the simulation runs.

Why it looks like this:

* Already-encoded documents (a worker's part-file lines through ``emit_raw``, an
  ``EncodedDoc`` through ``emit``) are never decoded: their bytes become one ``_bulk`` body
  per batch (``_RawBatch``), and only a request answered with errors is split into
  documents for the per-item path below. A dict given to ``emit`` is serialized (orjson)
  and batched. Batches go into a bounded queue; when OpenSearch is slow the queue fills and
  ``emit`` blocks, which is the back-pressure the simulation relies on (memory stays
  bounded).
* Sender threads each run ``opensearch.helpers.streaming_bulk`` over a lazy generator that
  pulls from the queue. Every action is ``create`` with the deterministic ``doc_id``, so a
  re-run or a retry of a partly applied request can never duplicate a document: a 409 means
  "already present".
* streaming_bulk itself only retries 429s, so it runs with ``max_retries=0``,
  ``raise_on_error=False`` and ``raise_on_exception=False``: every item comes back with a
  status and this module decides (answered requests are settled in one pass by
  ``_SettlingClient``, which is what the helper calls ``bulk`` on). 429/5xx/connection
  errors/timeouts are re-sent (only the failed items) with capped exponential backoff and
  full jitter, bounded by a total give-up time. Jitter only changes timing, never which
  documents end up in the index. A 413 (request larger than ``http.max_content_length``)
  halves the sender's request size and re-sends the same documents; a single document too
  large for the server is dead-lettered.
* Dead letters are only for documents rejected for their content (4xx about the document,
  e.g. ``mapper_parsing_exception``). A refusal that concerns the index or the cluster (a
  write block, ``read_only_allow_delete`` from the disk flood stage, a closed or missing
  index, missing privileges, a whole request refused with a 4xx) would refuse every
  document alike: it stops the sink at once, like running out of the retry budget does.
  Once stopped, ``emit`` raises :class:`~sim.outputs.sink.SinkStopped` so the simulation
  stops too, and the sender threads finish within seconds.
* ``close`` reports exact per-item accounting: every generated document is indexed,
  already present, dead-lettered, not sent (certainly not in the index: never sent, or
  refused for the index as a whole) or unconfirmed (sent, no answer: may be in the index).
  A re-run with the same ids completes the index without duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    SSLError,
    TransportError,
)
from opensearchpy.helpers import streaming_bulk
from opensearchpy.serializer import JSONSerializer

from sim.outputs.sink import SinkStopped, SinkSummary
from sim.telemetry.encoding import EncodedDoc, bulk_lines

__all__ = [
    "OpenSearchSetupError",
    "OpenSearchSink",
    "OrjsonSerializer",
    "connect",
    "refusal",
    "scrub_url",
]


class OpenSearchSetupError(RuntimeError):
    """OpenSearch cannot be used (bad URL, unreachable, credentials refused, bad mapping).

    The message is one line meant for the user and never contains secrets.
    """


class OrjsonSerializer(JSONSerializer):
    """opensearch-py serializer backed by orjson (several times faster than ``json``).

    Strings pass through unchanged: the sink hands over already-serialized sources.
    """

    mimetype: str = "application/json"

    def dumps(self, data: Any) -> str:
        if type(data) is _Action:
            return data.line
        if isinstance(data, str):
            return data
        if isinstance(data, bytes):
            return data.decode("utf-8")
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")

    def loads(self, s: str) -> Any:
        return orjson.loads(s)


class _Action(dict[str, Any]):
    """A bulk action that carries its own JSON line (built once, not per helper call).

    It stays a dict because opensearch-py's error path copies and unpacks the action.
    """

    __slots__ = ("line",)

    def __init__(self, index_line: str, index: str, doc_id: str) -> None:
        super().__init__(create={"_index": index, "_id": doc_id})
        self.line = index_line + orjson.dumps(doc_id).decode("utf-8") + "}}"


def scrub_url(url: str) -> str:
    """``url`` without user:password, safe to print or put in an exception."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        if parts.hostname and ":" in parts.hostname:  # IPv6 literal
            netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparseable URL>"


def connect(
    url: str,
    *,
    ca_certs: str | os.PathLike[str] | None = None,
    insecure: bool = False,
    timeout: float = 60.0,
    ping_timeout: float = 10.0,
    pool_maxsize: int = 8,
) -> OpenSearch:
    """Check that ``url`` is a usable OpenSearch and return a client for it.

    Called before the simulation starts so that a typo, a stopped cluster or wrong
    credentials fail in a second with one clear line (:class:`OpenSearchSetupError`)
    instead of after the simulation. Credentials come from ``OPENSEARCH_USER`` /
    ``OPENSEARCH_PASSWORD`` (or the URL's userinfo); TLS certificates are verified unless
    ``insecure=True`` is asked for explicitly.
    """
    safe = scrub_url(url)
    parts, port = _checked_url(url, safe)
    use_ssl = parts.scheme == "https"
    if insecure and use_ssl:
        print(
            "WARNING: TLS certificate verification is disabled (insecure=True); "
            "the connection can be intercepted.",
            file=sys.stderr,
        )
    host: dict[str, Any] = {
        "host": parts.hostname,
        "port": port or (443 if use_ssl else 80),
        "url_prefix": parts.path.rstrip("/"),
    }
    user = os.environ.get("OPENSEARCH_USER") or (parts.username or None)
    password = os.environ.get("OPENSEARCH_PASSWORD") or (parts.password or "")
    client = OpenSearch(
        hosts=[host],
        http_auth=(user, password) if user else None,
        use_ssl=use_ssl,
        verify_certs=not insecure,
        ssl_show_warn=not insecure,
        ca_certs=os.fspath(ca_certs) if ca_certs else None,
        serializer=OrjsonSerializer(),
        timeout=timeout,
        max_retries=0,  # the sink retries with backoff itself
        retry_on_timeout=False,
        pool_maxsize=pool_maxsize,
    )
    _check_answers(client, safe, ping_timeout)
    return client


def _checked_url(url: str, safe: str) -> tuple[SplitResult, int | None]:
    """``url`` split, and its port, once it is an http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number (or out of range) raises ValueError
    except ValueError as exc:
        raise OpenSearchSetupError(f"invalid OpenSearch URL {safe!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OpenSearchSetupError(f"invalid OpenSearch URL {safe!r}: expected http(s)://host[:port]")
    return parts, port


def _check_answers(client: OpenSearch, safe: str, ping_timeout: float) -> None:
    """``GET /`` answers as OpenSearch does; else the one line saying what went wrong."""
    try:
        info = client.info(request_timeout=ping_timeout)
    except AuthenticationException:
        raise OpenSearchSetupError(
            f"OpenSearch at {safe} rejected the credentials (HTTP 401); "
            "set OPENSEARCH_USER and OPENSEARCH_PASSWORD"
        ) from None
    except AuthorizationException:
        raise OpenSearchSetupError(
            f"OpenSearch at {safe} denied access (HTTP 403); the user lacks permissions"
        ) from None
    except SSLError as exc:
        raise OpenSearchSetupError(
            f"TLS handshake with {safe} failed ({_short(exc)}); give the CA bundle (--ca-certs) "
            "or, only if you accept the risk, --insecure"
        ) from None
    except ConnectionError as exc:
        raise OpenSearchSetupError(f"cannot connect to OpenSearch at {safe}: {_short(exc)}") from None
    except TransportError as exc:
        raise OpenSearchSetupError(f"OpenSearch at {safe} answered HTTP {exc.status_code} to GET /") from None
    if not isinstance(info, dict) or "version" not in info:
        raise OpenSearchSetupError(f"{safe} does not look like OpenSearch (GET / has no version)")


class _SettlingClient:
    """What streaming_bulk sees as the client: it settles answered requests itself.

    Why: with per-item results the helper builds and yields two dicts per document, which
    costs more CPU than the rest of the sink together (on a 2-core box that CPU is taken
    from OpenSearch). Here an answered request is accounted for in one pass and the helper
    gets an empty item list back; requests that fail as a whole still come out of the
    helper item by item (``raise_on_exception=False``).
    """

    def __init__(
        self, sink: OpenSearchSink, inflight: deque[_Doc], counts: _Counts, retry: list[_Doc]
    ) -> None:
        self._sink = sink
        self._inflight = inflight
        self._counts = counts
        self._retry = retry
        self.transport = sink.client.transport  # the helper serializes with it

    def bulk(self, body: str, **kwargs: Any) -> dict[str, Any]:
        if self._sink._stopped.is_set():
            raise _Stopped  # nothing more is sent once the sink stopped
        resp = self._sink.client.bulk(body=body, **kwargs)  # TransportError: helper's path
        n = body.count("\n") // 2  # action + source line per document (JSON has no raw \n)
        docs = [self._inflight.popleft() for _ in range(n)]
        self._sink._settle(docs, resp, self._counts, self._retry)
        return {"errors": False, "items": []}


def _drain_deque(items: deque[_Doc]) -> Iterator[_Doc]:
    """Yield items by popping them, so an aborted consumer leaves the rest in ``items``."""
    while items:
        yield items.popleft()


def _failure_text(status: Any, info: dict[str, Any]) -> str:
    """Short description of a retryable failure for the retry log line."""
    exc = info.get("exception")
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {_short(exc)}"
    err = info.get("error")
    kind = err.get("type", "") if isinstance(err, dict) else str(err)[:80]
    return f"HTTP {status} {kind}".strip()


def _error_of(info: dict[str, Any]) -> tuple[str, str]:
    """(type, reason) of an item's error, or of the exception of a failed whole request."""
    err = info.get("error")
    if isinstance(err, dict):
        return str(err.get("type", "")), str(err.get("reason", ""))
    exc = info.get("exception")
    if isinstance(exc, TransportError):
        body = exc.info.get("error") if isinstance(exc.info, dict) else None
        if isinstance(body, dict):
            return str(body.get("type", "")), str(body.get("reason", ""))
        return str(exc.error), ""
    return "", str(err or "")


def _short(exc: BaseException) -> str:
    """A one-line reason for a connection failure (no secrets: URLs are already scrubbed)."""
    cause: BaseException = exc
    info = getattr(exc, "info", None)
    if isinstance(info, BaseException):
        cause = info
    text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    verify = text.find("certificate verify failed")
    if verify >= 0:  # "...: certificate has expired (_ssl.c:1000)" -> what was wrong with it
        return text[verify:].split(" (_ssl.c")[0].rstrip(")").strip()[:200]
    for marker in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "Temporary failure in name resolution",
    ):
        if marker in text:
            return marker.lower()
    return text[:200]


#: Per-item error types that concern the index or the cluster, not the document.
_INDEX_REFUSALS = {
    "cluster_block_exception",
    "index_closed_exception",
    "index_not_found_exception",
    "security_exception",
    "authorization_exception",
}


def refusal(index: str, status: Any, error_type: str, reason: str, whole_request: bool = False) -> str | None:
    """One line naming ``index`` and the cause if this error is about the index or the
    cluster (every document would get it), else ``None`` (it is about one document)."""
    reason = " ".join(str(reason).split())[:200].rstrip(";")
    if error_type == "cluster_block_exception":
        hint = ""
        if "read-only-allow-delete" in reason or "flood-stage" in reason:
            hint = ("; free disk space on the cluster, then remove the block "
                    "(index.blocks.read_only_allow_delete: null)")
        return f"index {index!r} refuses writes: {reason}{hint}"
    if error_type == "index_closed_exception":
        return f"index {index!r} is closed; open it (POST /{index}/_open) and run again"
    if error_type == "index_not_found_exception":
        return (f"index {index!r} does not exist and the cluster does not allow creating it "
                "(action.auto_create_index); was it deleted during the run?")
    if error_type in _INDEX_REFUSALS or status in (401, 403):
        what = "rejected the credentials for writing" if status == 401 else "denied writing"
        return (f"OpenSearch {what} to index {index!r} (HTTP {status} {error_type}: {reason}); "
                "the user lacks the index privileges")
    if whole_request and isinstance(status, int) and 400 <= status < 500 and status not in (408, 413, 429):
        return f"OpenSearch refused every bulk request for index {index!r} (HTTP {status} {error_type})"
    return None


_DONE = object()  # queue sentinel: no more documents
_FILTER = "errors,items.*.status,items.*.error.type,items.*.error.reason"
_THREAD_PREFIX = "opensearch-sink-"
log = logging.getLogger(__name__)


class _QuietSenderThreads(logging.Filter):
    """Drop opensearch-py's per-request warnings (with tracebacks) from our sender threads.

    Every failed attempt would otherwise print a traceback while a node restarts; the sink
    logs one line per retry round itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName.startswith(_THREAD_PREFIX)


_QUIET = _QuietSenderThreads()


_INDEX_ACTION = b'{"index":{"_id":"'  # bulk_lines' action line: {"index":{"_id":"ID"}}
_CREATE_ACTION = b'{"create":{"_id":"'  # the same into the URL's index, never overwriting
_EVENT_TYPE = b'"event_type":"'
_EVENT_TYPES = re.compile(rb'"event_type":"([^"]*)"')


class _RawBatch:
    """Line pairs exactly as ``bulk_lines`` wrote them, sent as one ``_bulk`` body.

    Why: per-document Python work in this process is what a 2-core box takes from
    OpenSearch. The body is made by one ``replace`` (index -> create: the index is in the
    URL); event types are counted by one regex pass. Documents are only split out one by
    one when the request needs per-item handling (errors, retries, dead letters).
    """

    __slots__ = ("body", "count", "types")

    def __init__(self, pieces: list[bytes], count: int) -> None:
        lines = b"".join(pieces)
        self.body = lines.replace(_INDEX_ACTION, _CREATE_ACTION)
        self.count = count
        found = Counter(t.decode() for t in _EVENT_TYPES.findall(lines))
        missing = count - sum(found.values())
        if missing:
            found["unknown"] += missing
        self.types: Counter[str] = found

    def docs(self) -> list[_Doc]:
        """The batch as single documents, for the per-item paths."""
        out = []
        it = iter(self.body.split(b"\n"))
        start = len(_CREATE_ACTION)
        for action, body in zip(it, it, strict=False):
            i = body.find(_EVENT_TYPE)
            event_type = (body[i + len(_EVENT_TYPE):body.index(b'"', i + len(_EVENT_TYPE))].decode()
                          if i >= 0 else "unknown")
            out.append(_Doc(action[start:-3].decode(), event_type, body.decode("utf-8")))
        return out


@dataclass(slots=True)
class _Doc:
    """One document on its way; ``source`` is the serialized JSON (kept for re-sending)."""

    doc_id: str
    event_type: str
    source: str
    ambiguous: bool = False  # a whole-request failure hit it: a later 409 may be our own


@dataclass
class _Counts:
    """Outcome counters of one sender thread (merged in ``close``)."""

    by_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    retried_items: int = 0
    retry_rounds: int = 0
    ambiguous_409: int = 0
    split_413: int = 0  # requests split because the server found them too large
    chunk_bytes: int = 0  # this sender's request size limit (halved on a 413)
    oversize: list[_Doc] = field(default_factory=list)  # documents of a 413 request


class _Stopped(Exception):
    """Raised inside a sender instead of sending a request once the sink has stopped."""


#: How long failed documents are retried before the sink gives up (seconds).
GIVE_UP_AFTER_S = 600.0


class OpenSearchSink:
    """An :class:`~sim.outputs.sink.EventSink` that streams documents into one index.

    ``emit`` must be called from one thread (the simulation's). Sizing knobs: ``chunk_size``
    and ``max_chunk_bytes`` bound one ``_bulk`` request, ``senders`` requests are in flight
    at once, and at most ``queue_docs`` documents wait in memory before ``emit`` blocks.
    """

    def __init__(
        self,
        client: OpenSearch,
        index: str,
        *,
        dead_letter_path: str | os.PathLike[str],
        chunk_size: int = 5000,
        max_chunk_bytes: int = 8 * 1024 * 1024,
        senders: int = 2,
        queue_docs: int = 20_000,
        request_timeout: float = 120.0,
        give_up_after: float | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        refresh_on_close: bool = True,
        name: str = "opensearch",
    ) -> None:
        if senders < 1 or chunk_size < 1:
            raise ValueError("senders and chunk_size must be >= 1")
        self.client = client
        self.index = index
        self.dead_letter_path = Path(dead_letter_path)
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.request_timeout = request_timeout
        self.give_up_after = GIVE_UP_AFTER_S if give_up_after is None else give_up_after
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.refresh_on_close = refresh_on_close
        self.name = name
        # live runs: a sender sends what it has as soon as the queue runs dry, instead of
        # holding a partial chunk until more documents come (they come one bucket at a time)
        self.send_when_idle = False

        self._init_state(queue_docs, max_chunk_bytes, senders)
        self._start_senders(senders)

    def _init_state(self, queue_docs: int, max_chunk_bytes: int, senders: int) -> None:
        """The queue, the batches being filled, the stop flag, the per-sender counters."""
        self._batch_size = max(1, min(500, self.chunk_size))
        self._batch: list[_Doc] = []
        self._raw: list[bytes] = []  # encoded line pairs not yet made into a _RawBatch
        self._raw_count = 0
        self._raw_bytes = 0
        # raw batches are whole requests: bound how many wait, as the queue bounds documents
        self._raw_budget = threading.Semaphore(max(1, queue_docs // self.chunk_size))
        self._unsent_raw: Counter[str] = Counter()  # raw batches a stop kept from the queue
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(2, queue_docs // self._batch_size))
        self._generated: dict[str, int] = {}
        self._closed = False
        self._summary: SinkSummary | None = None
        self._stopped = threading.Event()
        self._stop_reason = ""
        self._gave_up = False
        self._last_failure = ""
        self._dead_lock = threading.Lock()
        self._dead_file: IO[bytes] | None = None
        self._errors: list[BaseException] = []
        # The dead-letter file belongs to this run: a stale one must not be mistaken for it.
        self.dead_letter_path.unlink(missing_ok=True)
        self._counts = [_Counts(chunk_bytes=max_chunk_bytes) for _ in range(senders)]

    def _start_senders(self, senders: int) -> None:
        """Quiet opensearch-py's per-request logging, then start the sender threads."""
        opensearch_logger = logging.getLogger("opensearch")
        if _QUIET not in opensearch_logger.filters:
            opensearch_logger.addFilter(_QUIET)
        self._threads = [
            threading.Thread(target=self._sender, args=(i,), name=f"{_THREAD_PREFIX}{i}", daemon=True)
            for i in range(senders)
        ]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ producer side
    accepts_encoded = True  # an EncodedDoc's bytes are sent as they are
    remote = True  # worth a core of its own: the simulation runs in a worker (sim.run.parallel)

    def emit(self, doc_id: str, doc: dict[str, Any] | EncodedDoc) -> None:
        """Queue one document; blocks while the queue is full (back-pressure)."""
        if self._closed:
            raise RuntimeError("emit() after close()")
        if type(doc) is EncodedDoc:  # already encoded: the raw path, no decoding
            self.emit_raw(bulk_lines(doc_id, doc), 1)
            return
        event_type = doc.get("event_type", "unknown")
        if not isinstance(event_type, str):
            event_type = str(event_type)
        source = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")
        generated = self._generated
        generated[event_type] = generated.get(event_type, 0) + 1
        self._batch.append(_Doc(doc_id, event_type, source))
        if len(self._batch) >= self._batch_size:
            self._put(self._batch)
            self._batch = []

    def emit_raw(self, lines: bytes, count: int) -> None:
        """``count`` action/document line pairs as a worker wrote them (``bulk_lines``): sent
        as they are, in requests of about ``chunk_size`` documents or ``max_chunk_bytes``."""
        if self._closed:
            raise RuntimeError("emit_raw() after close()")
        self._raw.append(lines)
        self._raw_count += count
        self._raw_bytes += len(lines)
        if self._raw_count >= self.chunk_size or self._raw_bytes >= self.max_chunk_bytes:
            self._flush_raw()

    def _flush_raw(self) -> None:
        batch = _RawBatch(self._raw, self._raw_count)
        self._raw, self._raw_count, self._raw_bytes = [], 0, 0
        generated = self._generated
        for event_type, n in batch.types.items():
            generated[event_type] = generated.get(event_type, 0) + n
        try:
            while not self._raw_budget.acquire(timeout=0.2):
                if self._stopped.is_set():
                    raise SinkStopped(self._stop_reason)
                if not any(t.is_alive() for t in self._threads):
                    raise RuntimeError(f"OpenSearch sink senders stopped: {self._errors[:1]!r}")
            self._put(batch)
        except RuntimeError:  # SinkStopped too: the batch was never queued, never sent
            self._unsent_raw.update(batch.types)
            raise

    def flush(self) -> None:
        """Queue the documents batched so far (a live run's bucket end); with
        ``send_when_idle`` the senders then send them without waiting for a full chunk."""
        if self._raw:
            self._flush_raw()
        if self._batch:
            self._put(self._batch)
            self._batch = []

    def _put(self, item: Any) -> None:
        """Blocking put that cannot hang forever if every sender thread died.

        Raises :class:`SinkStopped` (and ``item`` is not queued) once the sink stopped."""
        while True:
            if self._stopped.is_set():
                raise SinkStopped(self._stop_reason)
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if not any(t.is_alive() for t in self._threads) and not self._stopped.is_set():
                    raise RuntimeError(f"OpenSearch sink senders stopped: {self._errors[:1]!r}") from None

    def close(self, ok: bool = True) -> SinkSummary:
        """Flush, wait for the senders, refresh the index and report per-item accounting."""
        if self._summary is not None:
            return self._summary
        self._closed = True
        unsent = Counter[str]()
        try:
            if self._raw:
                self._flush_raw()
            if self._batch:
                self._put(self._batch)
                self._batch = []
            self._put(_DONE)
        except RuntimeError:  # SinkStopped, or every sender died: the senders are finishing
            for d in self._batch:
                unsent[d.event_type] += 1
            self._batch = []
        unsent.update(self._unsent_raw)
        for t in self._threads:
            t.join()
        # A stopped or crashed sink leaves documents in the queue: they were never sent.
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._queue.get_nowait()
                if type(item) is _RawBatch:
                    unsent.update(item.types)
                elif item is not _DONE:
                    for d in item:
                        unsent[d.event_type] += 1
        if self._dead_file is not None:
            self._dead_file.close()
        refreshed = False
        if self.refresh_on_close and not self._stopped.is_set():
            try:
                self.client.indices.refresh(index=self.index, request_timeout=self.request_timeout)
                refreshed = True
            except (TransportError, OSError) as exc:
                self._errors.append(exc)
        self._summary = self._build_summary(ok, refreshed, unsent)
        return self._summary

    def _build_summary(self, ok: bool, refreshed: bool, unsent: Counter[str]) -> SinkSummary:
        total: Counter[tuple[str, str]] = Counter()
        for c in self._counts:
            total.update(c.by_type)
        for et, n in unsent.items():
            total[(et, "not_sent")] += n
        by_type: dict[str, dict[str, int]] = {}
        for et in sorted(set(self._generated) | {k[0] for k in total}):
            row = {
                "generated": self._generated.get(et, 0),
                "indexed": total[(et, "indexed")],
                "already_present": total[(et, "already_present")],
                "dead_lettered": total[(et, "dead_lettered")],
            }
            row["unaccounted"] = (
                row["generated"] - row["indexed"] - row["already_present"] - row["dead_lettered"]
            )
            row["not_sent"] = total[(et, "not_sent")]
            row["unconfirmed"] = total[(et, "unconfirmed")]
            by_type[et] = row
        details: dict[str, Any] = {
            "index": self.index,
            "by_event_type": by_type,
            "retried_items": sum(c.retried_items for c in self._counts),
            "retry_rounds": sum(c.retry_rounds for c in self._counts),
            "ambiguous_409": sum(c.ambiguous_409 for c in self._counts),
            "split_413": sum(c.split_413 for c in self._counts),
            "not_sent": sum(v for (_, o), v in total.items() if o == "not_sent"),
            "unconfirmed": sum(v for (_, o), v in total.items() if o == "unconfirmed"),
            "refreshed": refreshed,
            "run_ok": ok,
        }
        if self._dead_file is not None:
            details["dead_letter_path"] = str(self.dead_letter_path)
        if self._stopped.is_set():
            details["stopped"] = self._stop_reason
            if self._gave_up:
                details["gave_up"] = self._stop_reason
        if self._errors:
            details["errors"] = [f"{type(e).__name__}: {e}"[:300] for e in self._errors[:5]]
        return SinkSummary(
            name=self.name,
            generated=sum(self._generated.values()),
            indexed=sum(v for (_, o), v in total.items() if o == "indexed"),
            already_present=sum(v for (_, o), v in total.items() if o == "already_present"),
            dead_lettered=sum(v for (_, o), v in total.items() if o == "dead_lettered"),
            details=details,
        )

    # ------------------------------------------------------------------ sender side
    def _sender(self, slot: int) -> None:
        """Thread body: fresh documents through streaming_bulk, failed ones through retries."""
        counts = self._counts[slot]
        rng = random.Random()  # jitter only: affects timing, never content
        carry: deque[_Doc] = deque()  # taken from the queue, not yet handed to the helper
        retry: list[_Doc] = []
        try:
            finished = False
            while not finished or carry:
                if self._stopped.is_set():
                    break  # ``retry`` keeps what the last round could not settle
                retry = []
                state = {"done": finished}
                self._run_bulk(self._fresh(state, retry, carry, counts), counts, retry)
                finished = state["done"]
                if retry:
                    self._retry(retry, counts, rng)
        except BaseException as exc:  # noqa: BLE001 - reported in the summary, never lost
            self._errors.append(exc)
            raise
        finally:
            # Stopped (or crashed): what this sender holds was never sent, or got no answer.
            for d in (*carry, *retry):
                counts.by_type[(d.event_type, "unconfirmed" if d.ambiguous else "not_sent")] += 1

    def _fresh(self, state: dict[str, bool], retry: list[_Doc], carry: deque[_Doc],
               counts: _Counts) -> Iterator[_Doc]:
        """Lazily yield queued documents; stop early once something needs a retry.

        Stopping early makes streaming_bulk flush its partial chunk, so retries never mix
        with fresh documents and no new documents are taken while OpenSearch struggles
        (the queue fills up and the simulation waits). ``carry`` holds the rest of the
        current queue batch, so an aborted helper loses nothing.
        """
        sent = False
        while True:
            while carry and not counts.oversize:  # a 413: split before sending more
                yield carry.popleft()
            if retry or counts.oversize or state["done"] or self._stopped.is_set():
                return
            if self.send_when_idle and sent and self._queue.empty():
                return  # the helper sends its partial chunk now
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            sent = True
            if item is _DONE:
                self._queue.put(_DONE)  # let the other senders see it too
                state["done"] = True
                return
            if type(item) is _RawBatch:
                self._raw_budget.release()
                self._send_raw(item, counts, retry)
                continue
            carry.extend(item)

    def _send_raw(self, batch: _RawBatch, counts: _Counts, retry: list[_Doc]) -> None:
        """One request with the batch's bytes as body; per-item handling only on trouble."""
        try:
            resp = self.client.bulk(body=batch.body, index=self.index,
                                    request_timeout=self.request_timeout, filter_path=_FILTER)
        except TransportError as exc:  # as streaming_bulk reports a request that failed whole
            info = {"status": exc.status_code, "error": exc.error, "exception": exc}
            for d in batch.docs():
                self._classify(d, info, counts, retry)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. an unparseable response: re-send
            self._errors.append(exc)
            self._last_failure = f"{type(exc).__name__}: {str(exc)[:120]}"
            for d in batch.docs():
                d.ambiguous = True
                retry.append(d)
            return
        items = resp.get("items") if isinstance(resp, dict) else None
        if resp.get("errors") is False and isinstance(items, list) and len(items) == batch.count:
            by_type = counts.by_type
            for event_type, n in batch.types.items():
                by_type[(event_type, "indexed")] += n
            return
        self._settle(batch.docs(), resp if isinstance(resp, dict) else {}, counts, retry)

    def _run_bulk(self, docs: Iterator[_Doc], counts: _Counts, retry: list[_Doc]) -> None:
        """Send ``docs`` with streaming_bulk and sort every item's result."""
        inflight: deque[_Doc] = deque()
        index = self.index
        prefix = '{"create":{"_index":' + orjson.dumps(index).decode("utf-8") + ',"_id":'

        def actions() -> Iterator[tuple[dict[str, Any], str]]:
            for d in docs:
                inflight.append(d)
                yield _Action(prefix, index, d.doc_id), d.source

        settling = _SettlingClient(self, inflight, counts, retry)
        results = streaming_bulk(
            settling,
            actions(),
            chunk_size=self.chunk_size,
            max_chunk_bytes=counts.chunk_bytes,
            expand_action_callback=tuple,  # actions are already (action, source) pairs
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=0,
            request_timeout=self.request_timeout,
            filter_path=_FILTER,
        )
        try:
            # Answered requests are settled inside _SettlingClient.bulk; what the helper
            # yields here are the items of requests that failed as a whole.
            for _ok, result in results:
                (info,) = result.values()
                self._classify(inflight.popleft(), info, counts, retry)
        except _Stopped:
            retry.extend(inflight)  # not sent: the sender reports them as such
            inflight.clear()
        except Exception as exc:  # noqa: BLE001 - e.g. an unparseable response
            # A failure outside the per-item protocol: whatever has no result yet is re-sent
            # (create + deterministic ids make that safe); bounded by the give-up time.
            self._errors.append(exc)
            self._last_failure = f"{type(exc).__name__}: {str(exc)[:120]}"
        for d in inflight:
            d.ambiguous = True
            retry.append(d)
        inflight.clear()
        while counts.oversize:
            self._split(counts, retry)

    def _split(self, counts: _Counts, retry: list[_Doc]) -> None:
        """The server answered 413 to a request: re-send its documents in smaller requests;
        a document alone in a 413 request can never be accepted and is dead-lettered."""
        big, counts.oversize = counts.oversize, []
        if len(big) == 1:
            d = big[0]
            reason = (f"the document alone ({len(d.source):,} bytes) is larger than the server "
                      "accepts (http.max_content_length)")
            self._dead_letter(d, 413, {"error": {"type": "request_entity_too_large", "reason": reason}})
            counts.by_type[(d.event_type, "dead_lettered")] += 1
            return
        size = sum(len(d.source) + len(d.doc_id) + 64 for d in big)
        counts.chunk_bytes = max(1, min(counts.chunk_bytes, size) // 2)
        counts.split_413 += 1
        log.warning("opensearch sink: HTTP 413 for %d documents; requests now at most %d bytes",
                    len(big), counts.chunk_bytes)
        pending = deque(big)
        self._run_bulk(_drain_deque(pending), counts, retry)
        retry.extend(pending)

    def _settle(self, docs: list[_Doc], resp: dict[str, Any], counts: _Counts, retry: list[_Doc]) -> None:
        """Account for every item of an answered ``_bulk`` request (in request order)."""
        items = resp.get("items")
        if not isinstance(items, list) or len(items) != len(docs):
            self._last_failure = "bulk response without one item per document"
            self._errors.append(RuntimeError(self._last_failure))
            for d in docs:
                d.ambiguous = True
                retry.append(d)
            return
        by_type = counts.by_type
        if resp.get("errors") is False:  # the common case: every item was created
            for d in docs:
                by_type[(d.event_type, "indexed")] += 1
            return
        for d, item in zip(docs, items, strict=True):
            (info,) = item.values()
            self._classify(d, info, counts, retry)

    def _classify(self, d: _Doc, info: dict[str, Any], counts: _Counts, retry: list[_Doc]) -> None:
        status = info.get("status")
        if isinstance(status, int) and 200 <= status < 300:
            counts.by_type[(d.event_type, "indexed")] += 1
            return
        if status == 409:
            counts.by_type[(d.event_type, "already_present")] += 1
            if d.ambiguous:
                counts.ambiguous_409 += 1
            return
        whole = "exception" in info  # the request failed as a whole
        if whole and status == 413:
            counts.oversize.append(d)
            return
        err_type, err_reason = _error_of(info)
        why = refusal(self.index, status, err_type, err_reason, whole_request=whole)
        if why is not None:
            self._stop(why)
            counts.by_type[(d.event_type, "not_sent")] += 1  # refused: not in the index
        elif not isinstance(status, int) or status == 429 or status >= 500:
            # Connection error/timeout ("N/A"), throttling or a server-side failure.
            self._last_failure = _failure_text(status, info)
            if whole:
                d.ambiguous = True  # whole request failed: it may have been applied
            retry.append(d)
        else:
            self._dead_letter(d, status, info)
            counts.by_type[(d.event_type, "dead_lettered")] += 1

    def _dead_letter(self, d: _Doc, status: int, info: dict[str, Any]) -> None:
        """Append a permanently rejected document to the dead-letter NDJSON file."""
        err = info.get("error")
        reason = f"{err.get('type', 'error')}: {err.get('reason', '')}" if isinstance(err, dict) else str(err)
        line = orjson.dumps(
            {
                "_id": d.doc_id,
                "_index": self.index,
                "status": status,
                "reason": reason,
                "doc": orjson.loads(d.source),
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        with self._dead_lock:
            if self._dead_file is None:
                self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
                self._dead_file = self.dead_letter_path.open("wb")
            self._dead_file.write(line)

    def _retry(self, retry: list[_Doc], counts: _Counts, rng: random.Random) -> None:
        """Re-send only failed items until all are settled or the give-up time is over."""
        started = time.monotonic()
        attempt = 0
        while retry:
            if self._stopped.is_set():
                return
            delay = rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))
            remaining = self.give_up_after - (time.monotonic() - started)
            if remaining <= 0:
                self._gave_up = True
                self._stop(
                    f"OpenSearch at {self._where()} still failed {len(retry)} documents for index "
                    f"{self.index!r} after {self.give_up_after:g}s of retries "
                    f"(last failure: {self._last_failure})"
                )
                return
            log.log(
                logging.WARNING if attempt == 0 else logging.INFO,
                "opensearch sink: %d documents to retry (%s); attempt %d in %.1fs",
                len(retry),
                self._last_failure,
                attempt + 1,
                delay,
            )
            if self._stopped.wait(min(delay, remaining)):
                return
            attempt += 1
            counts.retry_rounds += 1
            counts.retried_items += len(retry)
            pending: deque[_Doc] = deque(retry)
            retry.clear()
            self._run_bulk(_drain_deque(pending), counts, retry)
            retry.extend(pending)  # not handed to the helper before it stopped: not sent

    def _stop(self, reason: str) -> None:
        """Stop sending (first reason wins): senders finish what is in flight and leave,
        ``emit`` raises SinkStopped, and whatever was not delivered is reported as not sent
        or unconfirmed."""
        with self._dead_lock:
            if self._stopped.is_set():
                return
            self._stop_reason = reason
            self._stopped.set()
        log.info("opensearch sink: stopping: %s", reason)

    def _where(self) -> str:
        """host:port of the server (for messages; never credentials)."""
        try:
            conn = self.client.transport.connection_pool.connections[0]
            return str(getattr(conn, "host", "")).split("://")[-1] or "?"
        except (AttributeError, IndexError):
            return "?"
