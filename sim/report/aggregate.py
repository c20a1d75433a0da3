"""One streaming pass over ``all_data.ndjson`` into per-minute aggregates, in parallel.

The file is cut into byte ranges that start at an action line (``{"index":`` after a
newline: JSON documents never hold a raw newline), each range is scanned by a worker
process, and the parent folds the small per-range results into dense per-minute arrays.
Memory grows with the number of minutes, never with the number of documents: latencies
go into fixed log-scale histograms (mergeable), error documents into counts per type.

Transactions are 95 % of the documents and have one fixed layout (``sim/telemetry/documents.py``
writes them as bytes), so they are read by byte search for the three fields a report
needs; anything that does not look like that layout, and every metric document, is
parsed with orjson. Action lines are never parsed.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

# latency histogram: 8 log-spaced bins per doubling from 1 ms (as sim/truth/records.py)
BINS_PER_DOUBLING = 8
N_BINS = 8 * 18  # up to ~262 s
SLOW_MS = 5000.0  # the seed's "Find Performance Incidents": response_time_ms >= 5000, error

RANGE_BYTES = 16 << 20  # one worker task; bounds a worker's memory (~8x this)
_ACTION_STARTS = (b'{"index":', b'{"create":')
_TS = b'{"@timestamp":"'
_KIND_AT = len(b'{"@timestamp":"2026-11-28T13:30:00.009Z","event_type":"')  # 55
_RT = b'","response_time_ms":'
_ERROR_TYPE = b'"error":{"type":"'

# metric fields the report draws: dotted name -> path in the document
METRIC_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(name.split("."))
    for name in (
        "host.cpu.usage", "thread_pool.active", "thread_pool.queued", "thread_pool.max",
        "db.client.connection.used", "db.client.connection.pending_requests",
        "db.client.connection.max", "jvm.memory.used", "jvm.memory.limit", "jvm.gc.duration",
        "circuit_breaker.state_code", "db.cache_hit_ratio", "db.active_queries",
        "db.queued_queries", "gateway.latency_p95_ms", "gateway.timeouts", "gateway.calls",
    )
}
STOPPED = "service.stopped"  # 1 while service.state is not "running" (a crashed JVM)


class ReportInputError(Exception):
    """Bad input: the message is the one line the user sees."""


@dataclass(frozen=True)
class ChangeDoc:
    """One change document (a host reached by a push, a deploy step, a flag switched): few,
    so kept whole rather than per minute."""

    ms: int
    change_id: str
    kind: str
    host: str  # "" for a flag (the fleet)
    version: str
    message: str
    settings: tuple[tuple[str, str, str], ...]  # (name, old, new) as the document writes them


def _change_doc(doc: dict[str, Any], ms: int) -> ChangeDoc:
    raw = doc.get("change")
    change: dict[str, Any] = raw if isinstance(raw, dict) else {}
    settings = tuple((str(x.get("name")), str(x.get("old")), str(x.get("new")))
                     for x in change.get("settings") or [] if isinstance(x, dict))
    return ChangeDoc(ms, str(change.get("id", "?")), str(change.get("kind", "?")),
                     str(_get(doc, ("host", "name")) or ""),
                     str(_get(doc, ("service", "version")) or ""), str(doc.get("message", "")),
                     settings)


@dataclass
class RangeResult:
    """What one worker found in its byte range (small: a range covers minutes, not days)."""

    lines: int = 0
    docs: Counter[str] = field(default_factory=Counter)
    tx_minutes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tx_table: np.ndarray = field(default_factory=lambda: np.zeros((0, 3 + N_BINS), np.int64))
    errors: Counter[tuple[int, str]] = field(default_factory=Counter)
    # (minute, host, field) -> [sum, count, max]
    metrics: dict[tuple[int, str, str], list[float]] = field(default_factory=dict)
    changes: list[ChangeDoc] = field(default_factory=list)
    problem: tuple[int, str] | None = None  # (line within the range, message)


@dataclass
class Aggregates:
    """Per-minute figures of a whole run, as dense arrays over ``minutes`` (epoch minutes)."""

    first_minute: int
    requests: np.ndarray  # transactions that started in the minute
    failed: np.ndarray  # ...with status error
    slow_failed: np.ndarray  # ...and response_time_ms >= 5000: the seed's query hits
    hist: np.ndarray  # [minute, bin] latency counts
    error_types: list[str]
    errors: np.ndarray  # [minute, type] error documents
    metrics: dict[tuple[str, str], np.ndarray]  # (host, field) -> [minute, (sum, count, max)]
    docs: dict[str, int]
    lines: int
    changes: list[ChangeDoc] = field(default_factory=list)  # in time order

    @property
    def n(self) -> int:
        return len(self.requests)

    def epochs(self) -> np.ndarray:
        """Start of every minute, epoch seconds."""
        return (self.first_minute + np.arange(self.n)) * 60

    def quantile(self, q: float) -> np.ndarray:
        """Per-minute latency quantile (upper edge of its bin, ms); NaN without requests."""
        cum = np.cumsum(self.hist, axis=1)
        rank = q * self.requests
        idx = (cum < rank[:, None]).sum(axis=1)
        upper = 2.0 ** ((np.minimum(idx, N_BINS - 1) + 1) / BINS_PER_DOUBLING)
        return np.where(self.requests > 0, upper, np.nan)

    def hosts(self, field_name: str) -> list[str]:
        return sorted(h for h, f in self.metrics if f == field_name)

    def mean(self, host: str, field_name: str) -> np.ndarray:
        a = self.metrics.get((host, field_name))
        if a is None:
            return np.full(self.n, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(a[:, 1] > 0, a[:, 0] / np.maximum(a[:, 1], 1), np.nan)

    def total(self, host: str, field_name: str) -> np.ndarray:
        a = self.metrics.get((host, field_name))
        return np.zeros(self.n) if a is None else a[:, 0]

    def maximum(self, host: str, field_name: str) -> np.ndarray:
        a = self.metrics.get((host, field_name))
        if a is None:
            return np.full(self.n, np.nan)
        return np.where(a[:, 1] > 0, a[:, 2], np.nan)


def _minute_of_key(key: bytes, cache: dict[bytes, int]) -> int:
    m = cache.get(key)
    if m is None:
        t = dt.datetime.fromisoformat(key.decode() + ":00+00:00")
        m = cache[key] = int(t.timestamp()) // 60
    return m


def _epoch_ms(ts: str) -> int:
    return int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    v: Any = doc
    for k in path:
        if not isinstance(v, dict):
            return None
        v = v.get(k)
    return v


def _add_metric(r: RangeResult, minute: int, host: str, name: str, value: float) -> None:
    cell = r.metrics.get((minute, host, name))
    if cell is None:
        r.metrics[(minute, host, name)] = [value, 1.0, value]
    else:
        cell[0] += value
        cell[1] += 1.0
        if value > cell[2]:
            cell[2] = value


def _parsed(doc: dict[str, Any], r: RangeResult, tx: Callable[[bytes, float, bool], None],
            keys: dict[bytes, int]) -> str | None:
    """Add one parsed document; returns a problem or None."""
    ts, kind = doc.get("@timestamp"), doc.get("event_type")
    if not isinstance(ts, str) or not isinstance(kind, str):
        return "not a document (no @timestamp or event_type)"
    try:
        ms = _epoch_ms(ts)
    except ValueError:
        return f"@timestamp: not a date: {ts[:40]!r}"
    r.docs[kind] += 1
    if kind == "transaction":
        rt = doc.get("response_time_ms")
        if not isinstance(rt, int | float):
            return "transaction without a numeric response_time_ms"
        tx(ts[:16].encode(), float(rt), doc.get("status") == "error")
    elif kind == "error":
        r.errors[(ms // 60000, str(_get(doc, ("error", "type"))))] += 1
    elif kind == "infrastructure_metric":
        minute = (ms - 1) // 60000  # a sample is stamped at the end of its interval
        host = str(_get(doc, ("host", "name")))
        for name, path in METRIC_FIELDS.items():
            v = _get(doc, path)
            if isinstance(v, int | float):
                _add_metric(r, minute, host, name, float(v))
        state = _get(doc, ("service", "state"))
        if state is not None:
            _add_metric(r, minute, host, STOPPED, 0.0 if state == "running" else 1.0)
    elif kind == "change":
        r.changes.append(_change_doc(doc, ms))
    return None


def scan_range(path: str, start: int, end: int, is_last: bool) -> RangeResult:
    """Aggregate the action/document pairs in bytes [start, end) of ``path``."""
    r = RangeResult()
    docs, cut_short = _document_lines(path, start, end, is_last, r)
    keys: dict[bytes, int] = {}
    tx_keys, tx_rts, tx_failed = _scan_documents(docs, cut_short, r, keys)
    if tx_keys:
        _fold_transactions(r, docs, keys, tx_keys, tx_rts, tx_failed)
    return r


def _document_lines(path: str, start: int, end: int, is_last: bool,
                    r: RangeResult) -> tuple[list[bytes], bool]:
    """The range's document lines (its action lines dropped, counted in ``r.lines``) and
    whether the file ends there without a newline; an action line left without its
    document is ``r.problem``."""
    with open(path, "rb") as fh:
        fh.seek(start)
        buf = fh.read(end - start)
    lines = buf.split(b"\n")
    del buf
    cut_short = is_last and lines[-1] != b""  # no newline at the end of the file
    if lines[-1] == b"":
        lines.pop()
    r.lines = len(lines)
    if len(lines) % 2:
        r.problem = (len(lines), "an action line without its document (the file is truncated)"
                     if is_last else "an action line without its document")
        lines.pop()
    return lines[1::2], cut_short


def _scan_documents(docs: list[bytes], cut_short: bool, r: RangeResult,
                    keys: dict[bytes, int]) -> tuple[list[bytes], list[float], list[bool]]:
    """Add the documents to ``r`` up to the first problem; transactions and errors in the
    layout documents.py writes by byte search, any other parsed. Returns the transactions'
    columns: minute key, response time, failed."""
    tx_keys: list[bytes] = []
    tx_rts: list[float] = []
    tx_failed: list[bool] = []
    ka, ra, fa = tx_keys.append, tx_rts.append, tx_failed.append

    def tx(key: bytes, rt: float, failed: bool) -> None:
        ka(key)
        ra(rt)
        fa(failed)

    n_tx = n_err = 0
    last = len(docs) - 1
    for j, doc in enumerate(docs):
        try:
            kind = doc[_KIND_AT]
            if kind == 116 and j != last and doc.startswith(_TS):  # 't': a transaction as
                # documents.py writes it
                i = doc.find(_RT, 200)
                e = doc.find(b",", i + 21)
                status = doc[i - 7:i]
                if i > 0 and e > 0 and (status == b"success" or status[2:] == b"error"):
                    ka(doc[15:31])
                    ra(float(doc[i + 21:e]))
                    fa(status[2:] == b"error")
                    n_tx += 1
                    continue
            elif kind == 101 and j != last and doc.startswith(_TS):  # 'e': error
                i = doc.find(_ERROR_TYPE, 100)
                e = doc.find(b'"', i + 17)
                if i > 0 and e > 0:
                    r.errors[(_minute_of_key(doc[15:31], keys), doc[i + 17:e].decode())] += 1
                    n_err += 1
                    continue
        except (IndexError, ValueError):
            pass
        problem = _parse_one(doc, r, tx, keys, truncated=cut_short and j == last)
        if problem:
            r.problem = (2 * j + 2, problem)
            break
    r.docs["transaction"] += n_tx
    r.docs["error"] += n_err
    return tx_keys, tx_rts, tx_failed


def _parse_one(doc: bytes, r: RangeResult, tx: Callable[[bytes, float, bool], None],
               keys: dict[bytes, int], truncated: bool) -> str | None:
    """A document the byte search did not take, parsed and added; its problem or None."""
    try:
        parsed = orjson.loads(doc)
    except orjson.JSONDecodeError as exc:
        return "truncated document: the file ends inside it" if truncated \
            else f"not valid JSON ({exc})"
    return (_parsed(parsed, r, tx, keys) if isinstance(parsed, dict)
            else "not a document (not a JSON object)")


def _fold_transactions(r: RangeResult, docs: list[bytes], keys: dict[bytes, int],
                       tx_keys: list[bytes], tx_rts: list[float], tx_failed: list[bool]) -> None:
    """The transactions' columns as ``r.tx_minutes``/``r.tx_table``: per minute requests,
    failed, slow failed and the latency histogram (or the line of an unreadable minute)."""
    uniq, inv = np.unique(np.array(tx_keys, dtype="S16"), return_inverse=True)
    rts = np.array(tx_rts)
    bins = np.clip((np.log2(np.maximum(rts, 1.0)) * BINS_PER_DOUBLING).astype(np.int64),
                   0, N_BINS - 1)
    failed = np.array(tx_failed)
    table = np.zeros((len(uniq), 3 + N_BINS), np.int64)
    table[:, 0] = np.bincount(inv, minlength=len(uniq))
    table[:, 1] = np.bincount(inv, weights=failed, minlength=len(uniq)).astype(np.int64)
    table[:, 2] = np.bincount(inv, weights=failed & (rts >= SLOW_MS),
                              minlength=len(uniq)).astype(np.int64)
    table[:, 3:] = np.bincount(inv * N_BINS + bins,
                               minlength=len(uniq) * N_BINS).reshape(len(uniq), N_BINS)
    try:
        r.tx_minutes = np.array([_minute_of_key(bytes(k), keys) for k in uniq], np.int64)
    except ValueError:
        for j, doc in enumerate(docs):
            try:
                _minute_of_key(doc[15:31], keys)
            except ValueError:
                r.problem = (2 * j + 2, f"@timestamp: not a date: {doc[15:39]!r}")
                return
        raise
    r.tx_table = table


def plan_ranges(path: Path, size: int) -> list[tuple[int, int]]:
    """Byte ranges of about RANGE_BYTES, each starting at an action line."""
    range_bytes = RANGE_BYTES
    cuts = [0]
    with open(path, "rb") as fh:
        pos = range_bytes
        while pos < size:
            fh.seek(pos - 1)
            probe = fh.read(1 << 16)
            found = -1
            for start in _ACTION_STARTS:
                i = probe.find(b"\n" + start)
                if i >= 0 and (found < 0 or i < found):
                    found = i
            if found < 0:
                pos += 1 << 16
                continue
            cut = pos - 1 + found + 1
            if cut > cuts[-1]:
                cuts.append(cut)
            pos = cut + range_bytes
    cuts.append(size)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def _scan_task(task: tuple[str, int, int, bool]) -> RangeResult:
    return scan_range(*task)


def _results(path: Path, workers: int) -> Iterator[RangeResult]:
    size = path.stat().st_size
    ranges = plan_ranges(path, size)
    tasks = [(str(path), s, e, i == len(ranges) - 1) for i, (s, e) in enumerate(ranges)]
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_scan_task, tasks)
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sim.report.aggregate"])
    with ctx.Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(_scan_task, tasks)


@dataclass
class _Folded:
    """The ranges' results, folded in file order (still sparse: per minute that occurs)."""

    lines: int = 0
    docs: Counter[str] = field(default_factory=Counter)
    tx_parts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    errors: Counter[tuple[int, str]] = field(default_factory=Counter)
    metric_parts: dict[tuple[str, str], list[np.ndarray]] = field(default_factory=dict)
    changes: list[ChangeDoc] = field(default_factory=list)


def aggregate(path: Path, workers: int | None = None,
              span: tuple[int, int] | None = None) -> Aggregates:
    """Scan ``path`` (a run's all_data.ndjson) into per-minute aggregates.

    ``span`` (first, last epoch minute) makes the arrays cover at least that window.
    Raises ReportInputError naming the line of the first problem."""
    if workers is None:
        workers = default_workers()
    folded = _fold_ranges(path, workers)
    if folded.lines == 0:
        raise ReportInputError(f"{path}: no documents")
    first, n = _minute_range(folded, span)
    table = np.zeros((n, 3 + N_BINS), np.int64)
    for m, t in folded.tx_parts:
        np.add.at(table, m - first, t)
    types = sorted({t for (_, t) in folded.errors})
    col = {t: i for i, t in enumerate(types)}
    err = np.zeros((n, len(types)), np.int64)
    for (m, t), c in folded.errors.items():
        err[m - first, col[t]] += c
    return Aggregates(
        first_minute=first, requests=table[:, 0], failed=table[:, 1], slow_failed=table[:, 2],
        hist=table[:, 3:], error_types=types, errors=err,
        metrics=_metric_arrays(folded.metric_parts, first, n),
        docs=dict(sorted(folded.docs.items())), lines=folded.lines,
        changes=sorted(folded.changes, key=lambda c: (c.ms, c.change_id, c.host)),
    )


def _fold_ranges(path: Path, workers: int) -> _Folded:
    """Every range's result, in order; the first problem raises ReportInputError with its
    line in the file."""
    folded = _Folded()
    for r in _results(path, workers):
        if r.problem is not None:
            line, message = r.problem
            raise ReportInputError(f"{path}: line {folded.lines + line}: {message}")
        folded.lines += r.lines
        folded.docs.update(r.docs)
        if len(r.tx_minutes):
            folded.tx_parts.append((r.tx_minutes, r.tx_table))
        folded.errors.update(r.errors)
        folded.changes.extend(r.changes)
        rows: dict[tuple[str, str], list[list[float]]] = {}
        for (minute, host, name), cell in r.metrics.items():
            rows.setdefault((host, name), []).append([float(minute), *cell])
        for key, cells in rows.items():
            folded.metric_parts.setdefault(key, []).append(np.array(cells))
    return folded


def _minute_range(folded: _Folded, span: tuple[int, int] | None) -> tuple[int, int]:
    """The first epoch minute with anything in it (or of ``span``) and how many minutes."""
    minutes = [int(f(m)) for m, _ in folded.tx_parts for f in (np.min, np.max)]
    minutes += [m for (m, _) in folded.errors]
    minutes += [int(f(a[:, 0])) for parts in folded.metric_parts.values() for a in parts
                for f in (np.min, np.max)]
    if span is not None:
        minutes += list(span)
    first = min(minutes)
    return first, max(minutes) - first + 1


def _metric_arrays(metric_parts: dict[tuple[str, str], list[np.ndarray]], first: int,
                   n: int) -> dict[tuple[str, str], np.ndarray]:
    """(host, field) -> dense [minute, (sum, count, max)] over the run's minutes."""
    metrics: dict[tuple[str, str], np.ndarray] = {}
    for key, parts in sorted(metric_parts.items()):
        a = np.zeros((n, 3))
        a[:, 2] = -np.inf
        for rows_a in parts:
            idx = rows_a[:, 0].astype(np.int64) - first
            np.add.at(a[:, 0], idx, rows_a[:, 1])
            np.add.at(a[:, 1], idx, rows_a[:, 2])
            np.maximum.at(a[:, 2], idx, rows_a[:, 3])
        metrics[key] = a
    return metrics
