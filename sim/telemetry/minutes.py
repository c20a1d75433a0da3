"""Per-minute aggregates of what the simulated clients saw, collected while a segment runs.

Every finished request is added to its arrival minute (counts, errors by kind, a latency
histogram, per-endpoint and per-host counts, failed orders): memory grows with minutes,
never with requests. The incident records (``sim.truth.records``) are derived from them.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sim.model.changes import ActiveChange
from sim.model.faults import ActiveFault

# latency histogram: log-spaced bins, 8 per doubling, from 1 ms
_BINS_PER_DOUBLING = 8
_N_BINS = 8 * 18  # up to ~262 s


SLOW_MS = 5000.0  # the seed's "Find Performance Incidents" threshold
SEARCH_AFTER_FAULT_S = 45 * 60.0  # how long after a fault ends its symptoms may last


def _bin(ms: float) -> int:
    if ms <= 1.0:
        return 0
    return min(_N_BINS - 1, int(math.log2(ms) * _BINS_PER_DOUBLING))


def _bin_upper_ms(i: int) -> float:
    return 2.0 ** ((i + 1) / _BINS_PER_DOUBLING)


@dataclass
class Minute:
    """What clients saw for requests that *arrived* in one UTC minute."""

    requests: int = 0
    errors: int = 0
    slow_errors: int = 0
    # a compact C array: these buckets are what a long run's memory grows with
    hist: array = field(default_factory=lambda: array("i", bytes(4 * _N_BINS)))
    kinds: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, list[int]] = field(default_factory=dict)  # name -> [requests, errors, slow]
    hosts: dict[str, list[int]] = field(default_factory=dict)
    failed_orders: int = 0
    lost_revenue: float = 0.0

    def p95_ms(self) -> float:
        return _quantile(self.hist, self.requests, 0.95)

    def error_pct(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def merge(self, other: Minute) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.slow_errors += other.slow_errors
        self.hist = array("i", [a + b for a, b in zip(self.hist, other.hist, strict=True)])
        for k, n in other.kinds.items():
            self.kinds[k] = self.kinds.get(k, 0) + n
        for mine, theirs in ((self.endpoints, other.endpoints), (self.hosts, other.hosts)):
            for k, v in theirs.items():
                row = mine.setdefault(k, [0, 0, 0])
                for i in range(3):
                    row[i] += v[i]
        self.failed_orders += other.failed_orders
        self.lost_revenue += other.lost_revenue


def _quantile(hist: Sequence[int], n: int, q: float) -> float:
    if n <= 0:
        return 0.0
    rank = q * n
    acc = 0
    for i, c in enumerate(hist):
        acc += c
        if acc >= rank:
            return _bin_upper_ms(i)
    return _bin_upper_ms(len(hist) - 1)


BASELINE_S = 35 * 60.0  # observe_window compares with the half hour before a fault
TRAILING_S = SEARCH_AFTER_FAULT_S + 65 * 60.0  # ...and follows symptoms this long after it
# A push does not end: its symptoms may wait for the traffic it cannot take (a pool shrunk in
# the morning runs out at the lunch or the evening peak). Symptoms are looked for this long
# after a change; the minutes kept span it, its baseline before and a trailing tail after.
CHANGE_HORIZON_S = 6 * 3600.0


def minutes_needed(faults: Iterable[ActiveFault], changes: Iterable[ActiveChange] = ()) -> set[int]:
    """The epoch minutes the incident records can look at: around faults and after changes,
    nowhere else."""
    spans = [(f.start_epoch, f.end_epoch) for f in faults]
    spans += [(c.epoch, c.epoch + CHANGE_HORIZON_S) for c in changes]
    keys: set[int] = set()
    for start, end in spans:
        keys.update(range(int((start - BASELINE_S) // 60), int((end + TRAILING_S) // 60) + 1))
    return keys


class MinuteAggregator:
    """Collects ``Minute`` buckets keyed by epoch minute during one segment.

    Only the minutes around this segment's faults and after its changes are kept, so memory
    grows with the number of incidents and changes, not with the number of simulated days."""

    def __init__(self, origin_epoch_s: float, faults: Iterable[ActiveFault] = (),
                 changes: Iterable[ActiveChange] = ()):
        self.origin_s = origin_epoch_s
        self.minutes: dict[int, Minute] = {}
        self.keep = minutes_needed(faults, changes)

    def add(self, arrival_s: float, endpoint: str, host: str, response_ms: float,
            failure_kind: str | None, failed_order_amount: float | None) -> None:
        key = int((self.origin_s + arrival_s) // 60)
        m = self.minutes.get(key)
        if m is None:
            if key not in self.keep:
                return
            m = self.minutes[key] = Minute()
        m.requests += 1
        m.hist[_bin(response_ms)] += 1
        slow = response_ms >= SLOW_MS
        error = failure_kind is not None
        if failure_kind is not None:
            m.errors += 1
            m.kinds[failure_kind] = m.kinds.get(failure_kind, 0) + 1
            m.slow_errors += slow
        for table, name in ((m.endpoints, endpoint), (m.hosts, host)):
            row = table.get(name)
            if row is None:
                row = table[name] = [0, 0, 0]
            row[0] += 1
            row[1] += error
            row[2] += slow
        if failed_order_amount is not None:
            m.failed_orders += 1
            m.lost_revenue += failed_order_amount


def merge_minutes(parts: Iterable[dict[int, Minute]]) -> dict[int, Minute]:
    out: dict[int, Minute] = {}
    for part in parts:
        for key, m in part.items():
            if key in out:
                out[key].merge(m)
            else:
                out[key] = m
    return out
