"""The per-minute series the figures draw, named: also what ``report/data.json`` holds.

One place turns the aggregates into plotted numbers, so the data file is exactly the data
behind the figures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.report.aggregate import STOPPED, Aggregates, ChangeDoc

# app-instance series: name in data.json -> (metric field, how a minute's samples combine)
HOST_SERIES: dict[str, tuple[str, str]] = {
    "threads_busy": ("thread_pool.active", "mean"),
    "threads_queued": ("thread_pool.queued", "mean"),
    "db_pool_active": ("db.client.connection.used", "mean"),
    "db_pool_pending": ("db.client.connection.pending_requests", "mean"),
    "heap_used_bytes": ("jvm.memory.used", "mean"),
    "heap_max_bytes": ("jvm.memory.limit", "maximum"),
    "gc_pause_s": ("jvm.gc.duration", "total"),
    "breaker_state": ("circuit_breaker.state_code", "maximum"),  # 0 closed, 1 half-open, 2 open
    "stopped": (STOPPED, "maximum"),  # 1: the JVM was down in the minute
    "cpu": ("host.cpu.usage", "mean"),
}
DB_SERIES = {"cache_hit_ratio": ("db.cache_hit_ratio", "mean")}
GATEWAY_SERIES = {
    "latency_p95_ms": ("gateway.latency_p95_ms", "maximum"),
    "timeouts": ("gateway.timeouts", "total"),
}


@dataclass
class Series:
    """Full-window series; ``epochs`` are the minutes' starts (epoch seconds)."""

    epochs: np.ndarray
    requests: np.ndarray
    failed: np.ndarray
    perf_hits: np.ndarray  # the seed's "Find Performance Incidents" hits per minute
    latency: dict[str, np.ndarray]  # p50, p95, p99 (ms)
    errors_by_type: dict[str, np.ndarray]  # error documents per minute, by error.type
    app_hosts: dict[str, dict[str, np.ndarray]]
    database: dict[str, dict[str, np.ndarray]]
    gateway: dict[str, dict[str, np.ndarray]]
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # see ``changes``

    def index(self, epoch: float) -> int:
        """Index of the minute holding ``epoch`` (clamped to the window)."""
        return int(np.clip((epoch - self.epochs[0]) // 60, 0, len(self.epochs)))

    def to_json(self) -> dict[str, Any]:
        def arr(a: np.ndarray) -> list[Any]:
            if a.dtype.kind in "iu":
                return [int(v) for v in a]
            return [None if not np.isfinite(v) else round(float(v), 6) for v in a]

        def hosts(group: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
            return {h: {k: arr(v) for k, v in s.items()} for h, s in group.items()}

        return {
            "minutes": [dt.datetime.fromtimestamp(int(e), dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
                        for e in self.epochs],
            "transactions": arr(self.requests),
            "failed_transactions": arr(self.failed),
            "performance_incident_hits": arr(self.perf_hits),
            "latency_ms": {k: arr(v) for k, v in self.latency.items()},
            "errors_by_type": {k: arr(v) for k, v in self.errors_by_type.items()},
            "app_hosts": hosts(self.app_hosts),
            "database": hosts(self.database),
            "payment_gateway": hosts(self.gateway),
            "changes": self.changes,
        }


def _group(agg: Aggregates, marker: str, spec: dict[str, tuple[str, str]]
           ) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for host in agg.hosts(marker):
        out[host] = {name: getattr(agg, how)(host, field) for name, (field, how) in spec.items()}
    return out


def _iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changes(docs: list[ChangeDoc]) -> list[dict[str, Any]]:
    """One entry per change (its documents grouped by change id, in time order): when it
    reached its first and last host, the hosts, each setting as "name old -> new" (a push
    reaching hosts with different values lists each once), and the first message."""
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        c = out.get(d.change_id)
        if c is None:
            c = out[d.change_id] = {"id": d.change_id, "kind": d.kind, "at": _iso_ms(d.ms),
                                    "epoch": d.ms / 1000, "hosts": [], "settings": [],
                                    "message": d.message}
        c["end"] = _iso_ms(d.ms)
        if d.host and d.host not in c["hosts"]:
            c["hosts"].append(d.host)
        for name, old, new in d.settings:
            text = f"{name} {old} -> {new}"
            if text not in c["settings"]:
                c["settings"].append(text)
    return list(out.values())


def build_series(agg: Aggregates) -> Series:
    return Series(
        epochs=agg.epochs(),
        requests=agg.requests,
        failed=agg.failed,
        perf_hits=agg.slow_failed,
        latency={f"p{int(q * 100)}": agg.quantile(q) for q in (0.5, 0.95, 0.99)},
        errors_by_type={t: agg.errors[:, i] for i, t in enumerate(agg.error_types)},
        app_hosts=_group(agg, "thread_pool.active", HOST_SERIES),
        database=_group(agg, "db.cache_hit_ratio", DB_SERIES),
        gateway=_group(agg, "gateway.latency_p95_ms", GATEWAY_SERIES),
        changes=changes(agg.changes),
    )
