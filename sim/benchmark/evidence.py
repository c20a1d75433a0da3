"""The evidence a benchmark case offers an investigator, read from its case directory only.

An investigator gets the telemetry (``all_data.ndjson``), the logs, the alerts and the
questions; the answer key sits apart (``answers/``) and reading it would be cheating, so
the reader refuses any path inside a benchmark's ``answers/``. Files are tens of MB: they
are streamed line by line and reduced to per-minute cells (requests, 5xx, latencies and
where the time went, per service, host and endpoint), per-minute metric samples per host,
and the few documents worth keeping whole (changes, alerts, log lines, error summaries).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ANSWERS = "answers"
TIMINGS = ("queue_wait_ms", "db_pool_wait_ms", "db_time_ms", "gateway_time_ms",
           "upstream_time_ms", "gc_pause_ms")
# metric fields that count events in their 10 s interval: summed over a minute (the rest are
# levels: a minute's value is its worst sample)
COUNTERS = frozenset({"jvm.gc.count", "jvm.gc.full_count", "jvm.gc.duration", "gateway.calls",
                      "gateway.timeouts", "gateway.failures", "circuit_breaker.not_permitted_calls"})

AGGREGATIONS = {"sum": sum, "max": max, "min": min, "mean": lambda v: sum(v) / len(v)}


class AnswersRefused(PermissionError):
    """A solver asked for a file of the answer key."""


def refuse_answers(path: Path) -> Path:
    """``path`` resolved, unless it lies in a benchmark's ``answers/`` (a folder of that name
    next to ``cases/`` or ``benchmark.json``): a solver sees what an investigator sees."""
    resolved = path.resolve()
    for folder in (resolved, *resolved.parents):
        if folder.name == ANSWERS and ((folder.parent / "cases").is_dir()
                                       or (folder.parent / "benchmark.json").exists()):
            raise AnswersRefused(f"{path}: inside the benchmark's answer key ({folder}); "
                                 "a solver reads cases/ only")
    return resolved


def epoch(ts: str) -> float:
    """Seconds since 1970 of an ISO time (``Z`` or an offset)."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def iso_minute(minute: int) -> str:
    """The ISO time (``Z``) a minute number (epoch // 60) starts at."""
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def documents(path: Path) -> Iterator[dict[str, Any]]:
    """The documents of a ``_bulk`` file, action lines skipped (a missing file: none)."""
    path = refuse_answers(path)
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip() or line.startswith(b'{"index"') or line.startswith(b'{"create"'):
                continue
            yield orjson.loads(line)


@dataclass
class Cell:
    """One minute of requests in one scope (all, a service, a host, an endpoint)."""

    requests: int = 0
    errors: int = 0  # 5xx: what the storefront failed, not the client's 4xx
    latencies: array = field(default_factory=lambda: array("f"))
    timing: dict[str, float] = field(default_factory=dict)  # sums of the timing.* fields

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95(self) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return float(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)])

    def mean_timing(self, name: str) -> float:
        return self.timing.get(name, 0.0) / self.requests if self.requests else 0.0


@dataclass
class Change:
    """A change as its documents tell it: one document per host it reached."""

    id: str
    kind: str
    action: str
    at: float  # when it began (a deploy's rollout start, else its first document)
    hosts: list[str]
    settings: list[tuple[str, str, str]]  # (name, old, new)
    message: str


@dataclass
class Alert:
    """An alert from its firing and (if any) resolving documents."""

    id: str
    rule: str
    severity: str
    fired: float
    resolved: float | None
    host: str | None
    service: str | None
    message: str


@dataclass
class LogLine:
    at: float
    host: str
    service: str
    logger: str
    action: str
    level: str
    message: str


@dataclass
class ErrorDoc:
    at: float
    host: str
    service: str
    type: str
    status: int
    message: str


@dataclass
class Evidence:
    """Everything a case offers, reduced to what an investigation looks at."""

    case: str
    start: float
    end: float
    cells: dict[tuple[str, str], dict[int, Cell]] = field(default_factory=dict)
    samples: dict[str, dict[str, dict[int, list[float]]]] = field(default_factory=dict)
    host_service: dict[str, str] = field(default_factory=dict)  # metric host -> service.type
    changes: list[Change] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    errors: list[ErrorDoc] = field(default_factory=list)

    @property
    def minutes(self) -> range:
        """The window's minute numbers (epoch // 60)."""
        return range(int(self.start // 60), int(math.ceil(self.end / 60)))

    def series(self, scope: str = "all", name: str = "") -> dict[int, Cell]:
        """Per-minute cells of ``scope`` (all, service, host, endpoint) ``name``."""
        return self.cells.get((scope, name), {})

    def names(self, scope: str) -> list[str]:
        return sorted(n for s, n in self.cells if s == scope)

    def metric(self, host: str, name: str, agg: str | None = None) -> dict[int, float]:
        """Per-minute value of a metric field on a host: ``agg`` of its samples (sum, max,
        min, mean); by default counters summed, levels at their worst sample."""
        per_minute = self.samples.get(host, {}).get(name, {})
        how = AGGREGATIONS[agg or ("sum" if name in COUNTERS else "max")]
        return {m: float(how(v)) for m, v in per_minute.items()}

    def metric_hosts(self, service_type: str | None = None) -> list[str]:
        return sorted(h for h, t in self.host_service.items() if service_type in (None, t))


def read_case(case_dir: Path) -> Evidence:
    """The evidence of ``cases/case-NNN``: its questions' window, telemetry, logs, alerts."""
    case_dir = refuse_answers(case_dir)
    questions = orjson.loads((case_dir / "questions.json").read_bytes())
    window = questions["window"]
    ev = Evidence(questions.get("case", case_dir.name), epoch(window["start"]), epoch(window["end"]))
    minute_of: dict[str, int] = {}  # "2026-06-03T10:41" -> minute number: parse each minute once

    def minute(ts: str) -> int:
        key = ts[:16]
        m = minute_of.get(key)
        if m is None:
            m = minute_of[key] = int(epoch(key + ":00Z") // 60)
        return m

    changes: dict[str, list[dict[str, Any]]] = {}
    for doc in documents(case_dir / "all_data.ndjson"):
        kind = doc.get("event_type")
        if kind == "transaction":
            _add_transaction(ev, doc, minute(doc["@timestamp"]))
        elif kind == "infrastructure_metric":
            _add_metric(ev, doc, minute(doc["@timestamp"]))
        elif kind == "error":
            ev.errors.append(ErrorDoc(epoch(doc["@timestamp"]), _get(doc, "host.name") or "",
                                      _get(doc, "service.name") or "", _get(doc, "error.type") or "",
                                      int(_get(doc, "http.response.status_code") or 0),
                                      (_get(doc, "error.message") or "")[:200]))
        elif kind == "change":
            changes.setdefault(_get(doc, "change.id") or doc["@timestamp"], []).append(doc)
    ev.changes = sorted((_change(cid, docs) for cid, docs in changes.items()),
                        key=lambda c: (c.at, c.id))
    for doc in documents(case_dir / "logs.ndjson"):
        if doc.get("event_type") == "log":
            ev.logs.append(LogLine(epoch(doc["@timestamp"]), _get(doc, "host.name") or "",
                                   _get(doc, "service.name") or "", _get(doc, "log.logger") or "",
                                   _get(doc, "event.action") or "", _get(doc, "log.level") or "",
                                   doc.get("message") or ""))
    ev.logs.sort(key=lambda line: line.at)
    ev.alerts = _alerts(documents(case_dir / "alerts.ndjson"))
    return ev


def _get(doc: dict[str, Any], dotted: str) -> Any:
    """A field by its dotted name, nested or flat."""
    if dotted in doc:
        return doc[dotted]
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _add_transaction(ev: Evidence, doc: dict[str, Any], minute: int) -> None:
    status = int(_get(doc, "http.response.status_code") or 0)
    latency = float(doc.get("response_time_ms") or 0.0)
    timing = doc.get("timing") or {}
    scopes = (("all", ""), ("service", _get(doc, "service.name") or ""),
              ("host", _get(doc, "host.name") or ""), ("endpoint", _get(doc, "transaction.name") or ""))
    for scope in scopes:
        cell = ev.cells.setdefault(scope, {}).get(minute)
        if cell is None:
            cell = ev.cells[scope][minute] = Cell()
        cell.requests += 1
        cell.errors += status >= 500
        cell.latencies.append(latency)
        for name in TIMINGS:
            value = timing.get(name)
            if value:
                cell.timing[name] = cell.timing.get(name, 0.0) + value


def _add_metric(ev: Evidence, doc: dict[str, Any], minute: int) -> None:
    host = _get(doc, "host.name") or ""
    ev.host_service.setdefault(host, _get(doc, "service.type") or "")
    per_host = ev.samples.setdefault(host, {})
    for name, value in _numbers(doc):
        per_host.setdefault(name, {}).setdefault(minute, []).append(value)
    if "service" in doc and (doc["service"] or {}).get("state") == "stopped":
        per_host.setdefault("service.stopped", {}).setdefault(minute, []).append(1.0)


def _numbers(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every numeric field of a metric document, by dotted name."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _numbers(value, name + ".")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, float(value)


def _change(change_id: str, docs: list[dict[str, Any]]) -> Change:
    docs.sort(key=lambda d: d["@timestamp"])
    first = docs[0]
    began = [epoch(t) for d in docs for t in (d["@timestamp"], _get(d, "event.start"),
                                               _get(d, "change.rollout.start")) if t]
    hosts = [h for d in docs if (h := _get(d, "host.name"))]
    settings = [(str(s.get("name")), str(s.get("old")), str(s.get("new")))
                for s in (_get(first, "change.settings") or [])]
    return Change(change_id, _get(first, "change.kind") or "", _get(first, "event.action") or "",
                  min(began), list(dict.fromkeys(hosts)), settings, first.get("message") or "")


def _alerts(docs: Iterator[dict[str, Any]]) -> list[Alert]:
    alerts: dict[str, Alert] = {}
    for doc in docs:
        if doc.get("event_type") != "alert":
            continue
        aid = _get(doc, "alert.id")
        at = epoch(doc["@timestamp"])
        if aid not in alerts:
            start = _get(doc, "event.start")
            alerts[aid] = Alert(aid, _get(doc, "rule.id") or "", _get(doc, "alert.severity") or "",
                                epoch(start) if start else at, None, _get(doc, "host.name"),
                                _get(doc, "service.name"), doc.get("message") or "")
        if _get(doc, "alert.state") == "resolved":
            alerts[aid].resolved = at
    return sorted(alerts.values(), key=lambda a: (a.fired, a.id))
