"""The seed's validation queries, evaluated over generated NDJSON without OpenSearch.

Small and streaming: each function makes one pass over an ``all_data.ndjson`` (the _bulk
format: an action line, then a document line) and computes what the corresponding
OpenSearch query would return, so tests and reports can check the data as the demo will
query it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

PERF_MIN_RESPONSE_MS = 5000.0


def iter_docs(path: Path) -> Iterator[dict[str, Any]]:
    """Documents of a _bulk NDJSON file (action lines skipped)."""
    with open(path, "rb") as fh:
        for action in fh:
            doc = fh.readline()
            if not doc:
                raise ValueError(f"{path}: action line without a document: {action[:80]!r}")
            yield orjson.loads(doc)


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class Distribution:
    """``status_distribution`` terms, ``response_time_stats`` stats and the 1 h ``timeline``."""

    status: dict[str, int] = field(default_factory=dict)
    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    sum: float = 0.0
    hourly: dict[str, int] = field(default_factory=dict)

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0


def check_data_distribution(path: Path) -> Distribution:
    """The seed's "Check Data Distribution" aggregation (over every document, as in OpenSearch)."""
    d = Distribution()
    for doc in iter_docs(path):
        status = doc.get("status")
        if status is not None:
            d.status[status] = d.status.get(status, 0) + 1
        rt = doc.get("response_time_ms")
        if rt is not None:
            d.count += 1
            d.sum += rt
            d.min = min(d.min, rt)
            d.max = max(d.max, rt)
        hour = doc["@timestamp"][:13] + ":00:00Z"
        d.hourly[hour] = d.hourly.get(hour, 0) + 1
    return d


@dataclass
class PerformanceHits:
    """Hits of "Find Performance Incidents" and how many fall inside given windows."""

    total: int = 0
    inside: int = 0
    latest: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outside_share(self) -> float:
        return (self.total - self.inside) / self.total if self.total else 0.0


def find_performance_incidents(
    path: Path, windows: list[tuple[float, float]] = (), size: int = 10  # type: ignore[assignment]
) -> PerformanceHits:
    """response_time_ms >= 5000 AND status == error, newest first (``size`` kept)."""
    hits = PerformanceHits()
    docs: list[dict[str, Any]] = []
    for doc in iter_docs(path):
        rt = doc.get("response_time_ms")
        if rt is None or rt < PERF_MIN_RESPONSE_MS or doc.get("status") != "error":
            continue
        hits.total += 1
        t = _epoch(doc["@timestamp"])
        if any(lo <= t < hi for lo, hi in windows):
            hits.inside += 1
        docs.append(doc)
        if len(docs) > 4 * size:
            docs.sort(key=lambda x: x["@timestamp"], reverse=True)
            del docs[size:]
    docs.sort(key=lambda x: x["@timestamp"], reverse=True)
    hits.latest = docs[:size]
    return hits


@dataclass
class MinuteView:
    """Per-minute transaction stats and selected metric/error series from the documents."""

    requests: dict[int, int] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    latencies: dict[int, list[float]] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)
    endpoint_slow: dict[str, int] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def p95(self, minute: int) -> float:
        values = sorted(self.latencies.get(minute, []))
        return values[min(len(values) - 1, int(0.95 * len(values)))] if values else 0.0

    def error_pct(self, minute: int) -> float:
        n = self.requests.get(minute, 0)
        return 100.0 * self.errors.get(minute, 0) / n if n else 0.0


def minute_view(path: Path, keep_metrics: bool = True) -> MinuteView:
    """One pass: per-minute p95/error rate of transactions, error types, metric documents.

    Keeps every latency of the file: meant for the short windows tests use."""
    v = MinuteView()
    for doc in iter_docs(path):
        kind = doc["event_type"]
        if kind == "transaction":
            m = int(_epoch(doc["@timestamp"]) // 60)
            v.requests[m] = v.requests.get(m, 0) + 1
            if doc["status"] == "error":
                v.errors[m] = v.errors.get(m, 0) + 1
            rt = doc["response_time_ms"]
            v.latencies.setdefault(m, []).append(rt)
            if rt >= PERF_MIN_RESPONSE_MS:
                name = doc["transaction"]["name"]
                v.endpoint_slow[name] = v.endpoint_slow.get(name, 0) + 1
        elif kind == "error":
            t = doc["error"]["type"]
            v.error_types[t] = v.error_types.get(t, 0) + 1
        elif kind == "infrastructure_metric" and keep_metrics:
            v.metrics.append(doc)
    return v
