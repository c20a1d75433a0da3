"""The rule-based solver: an on-call checklist, written down.

1. Symptoms: a minute is abnormal when its p95 is twice the window's usual (the median of
   its first 20 minutes) or its 5xx share is well above the usual (more traffic alone is
   not an incident: the question asks for errors or latency).
   An incident is a stretch of abnormal minutes with at least 3 in a row, short gaps
   allowed; at most the two strongest stretches are reported.
2. What saturated first: in the minutes around the onset, each resource's own signal is
   compared with its usual level (gateway latency and timeouts, gateway 5xx and breakers,
   query time, upstream time and timeouts, full GCs and heap logs, request rate, pool
   and thread waits); the earliest names the kind. Pools and threads run short when
   anything else is slow, so they name it only when nothing else stood out.
3. What changed: the last change in the 90 minutes before the onset that plausibly explains
   that resource (a push shrinking the pool, heap or threads that ran out, a deploy to
   exactly the hosts that
   leak, a flag switched on shortly before symptoms no dependency explains) is named, and
   the kind becomes the change's.

Deliberately simple: delayed effects, overlapping causes and benign changes fool it, as
they fool a hurried investigator.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from sim.benchmark.evidence import Change, Evidence, iso_minute
from sim.benchmark.vocabulary import DEPENDENCIES

BASELINE_MINUTES = 20
P95_FACTOR = 2.0  # a minute's p95 this many times the usual is abnormal
ERROR_FACTOR, ERROR_EXCESS = 3.0, 0.02  # ... or its 5xx share 3x the usual and 2 points above
RATE_FACTOR = 1.8  # this many times the usual requests is a surge
MIN_RUN = 3  # consecutive abnormal minutes that make a stretch an incident
MAX_GAP = 3  # normal minutes a stretch may skip
MAX_INCIDENTS = 2
AROUND = (-3, 5)  # minutes around the onset where the first saturated resource is looked for
SIGNAL_FACTOR = 5.0  # a dependency's own metric this many times its usual
CHANGE_LOOKBACK_S = 90 * 60.0
FLAG_LOOKBACK_S = 30 * 60.0
UPSTREAM_URL = re.compile(r"https?://([a-z][a-z-]*-service)")
UPSTREAM_HOSTS = {"inventory": "inventory-service", "recommendations": "recommendation-service"}
HEAP_LOGS = ("heap_pressure", "out_of_memory")
POOL_LOGS = ("db_pool_exhausted", "db_pool_timeout")
THREAD_LOGS = ("thread_pool_saturated",)
# the order in which signals of the same minute are believed: a slow dependency holds the
# pools and threads up, not the other way round
PRIORITY = ("gateway_slow", "gateway_errors", "db_slow", "upstream", "heap", "surge", "pool",
            "threads")
KIND_OF_SIGNAL = {"gateway_slow": "payment_gateway_slowdown", "gateway_errors": "dependency_error_burst",
                  "db_slow": "db_slow_queries", "upstream": "upstream_slowdown", "heap": "memory_leak",
                  "surge": "traffic_surge", "pool": "db_slow_queries", "threads": "traffic_surge"}
# resources that run short because something else is slow: named only when nothing else is
SYMPTOMS = ("pool", "threads")
# the settings whose shrinking starves a resource: a push that did so is its cause
SETTINGS_OF_SIGNAL = {"pool": ("db_pool",), "heap": ("heap",), "threads": ("worker_threads", "accept_queue")}


@dataclass
class Stretch:
    first: int
    last: int
    strength: float


@dataclass
class Finding:
    """What the minutes around an onset say: each signal's first minute, and where."""

    first_minute: dict[str, int] = field(default_factory=dict)
    hosts: dict[str, set[str]] = field(default_factory=dict)
    upstream: str | None = None


def solve(ev: Evidence) -> list[dict[str, Any]]:
    stretches = _stretches(ev)
    strongest = sorted(stretches, key=lambda s: -s.strength)[:MAX_INCIDENTS]
    return [_incident(ev, s) for s in sorted(strongest, key=lambda s: s.first)]


def _usual(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _baseline(ev: Evidence, series: dict[int, float]) -> float:
    first = ev.minutes[0]
    return _usual([v for m, v in series.items() if first <= m < first + BASELINE_MINUTES])


def _stretches(ev: Evidence) -> list[Stretch]:
    """Stretches of abnormal minutes of the whole storefront."""
    cells = ev.series()
    p95 = {m: c.p95 for m, c in cells.items()}
    err = {m: c.error_rate for m, c in cells.items()}
    base_p95, base_err = _baseline(ev, p95), _baseline(ev, err)
    score: dict[int, float] = {}
    for m in ev.minutes:
        cell = cells.get(m)
        if cell is None or not cell.requests:
            continue
        excess = 0.0
        if base_p95 and p95[m] >= P95_FACTOR * base_p95:
            excess += p95[m] / base_p95
        if err[m] >= max(ERROR_FACTOR * base_err, base_err + ERROR_EXCESS):
            excess += 100.0 * (err[m] - base_err)
        if excess:
            score[m] = excess
    out: list[Stretch] = []
    run: list[int] = []
    for m in sorted(score):
        if run and m - run[-1] > MAX_GAP + 1:
            out.extend(_stretch(run, score))
            run = []
        run.append(m)
    out.extend(_stretch(run, score))
    return out


def _stretch(run: list[int], score: dict[int, float]) -> list[Stretch]:
    longest = streak = 0
    for a, b in zip([None, *run], run, strict=False):
        streak = streak + 1 if a is not None and b - a == 1 else 1
        longest = max(longest, streak)
    if longest < MIN_RUN:
        return []
    return [Stretch(run[0], run[-1], sum(score[m] for m in run))]


def _incident(ev: Evidence, s: Stretch) -> dict[str, Any]:
    finding = _saturated(ev, s)
    causes = [k for k in finding.first_minute if k not in SYMPTOMS] or list(finding.first_minute)
    signal = min(causes, key=lambda k: (finding.first_minute[k], PRIORITY.index(k)), default=None)
    kind = KIND_OF_SIGNAL[signal] if signal else _guess_from_endpoints(ev, s)
    places = _places(signal, finding)
    change = _cause(ev, s, signal, finding)
    if change is not None:
        kind = change.kind
        places = [*change.hosts, *places]
    ranked = list(dict.fromkeys([*places, *_hosts_by_anomaly(ev, s)]))[:5]
    return {"start": iso_minute(s.first), "end": iso_minute(s.last + 1), "root_cause_kind": kind,
            "locations": ranked, "change": change.id if change else None}


def _saturated(ev: Evidence, s: Stretch) -> Finding:
    """Each resource's first minute of trouble near the onset (and, for hosts, where)."""
    f = Finding()
    lo, hi = s.first + AROUND[0], s.first + AROUND[1]
    near = range(lo, hi + 1)

    def mark(signal: str, m: int, host: str | None = None) -> None:
        if lo <= m <= hi:
            f.first_minute[signal] = min(f.first_minute.get(signal, m), m)
            if host:
                f.hosts.setdefault(signal, set()).add(host)

    gw_p95 = ev.metric("payment-gateway", "gateway.latency_p95_ms")
    gw_usual = _baseline(ev, gw_p95)
    for m, v in gw_p95.items():
        if gw_usual and v >= SIGNAL_FACTOR * gw_usual:
            mark("gateway_slow", m)
    for m, v in ev.metric("payment-gateway", "gateway.timeouts").items():
        if v >= 3:
            mark("gateway_slow", m)
    failures = ev.metric("payment-gateway", "gateway.failures")
    fail_usual = max(1.0, _baseline(ev, failures))
    for m, v in failures.items():
        if v >= SIGNAL_FACTOR * fail_usual:
            mark("gateway_errors", m)
    apps = ev.metric_hosts("app-instance")
    for host in apps:
        for m, v in ev.metric(host, "circuit_breaker.state_code").items():
            if v >= 2 and "gateway_slow" not in f.first_minute:
                mark("gateway_errors", m, host)
    for host in ev.metric_hosts("database"):
        query_ms = ev.metric(host, "db.avg_query_ms", "mean")
        usual = _baseline(ev, query_ms)
        for m, v in query_ms.items():
            if usual and v >= SIGNAL_FACTOR * usual:
                mark("db_slow", m)
    upstream = {m: c.mean_timing("upstream_time_ms") for m, c in ev.series().items()}
    usual = _baseline(ev, upstream)
    for m, v in upstream.items():
        if usual and v >= SIGNAL_FACTOR * usual:
            mark("upstream", m)
    rate = {m: float(c.requests) for m, c in ev.series().items()}
    usual = _baseline(ev, rate)
    for m, v in rate.items():
        if usual and v >= RATE_FACTOR * usual:
            mark("surge", m)
    for host in apps:
        for m, v in ev.metric(host, "jvm.gc.full_count").items():
            if v > 2:
                mark("heap", m, host)
        for m, v in ev.metric(host, "db.client.connection.pending_requests", "min").items():
            if v > 0:
                mark("pool", m, host)
        for m, v in ev.metric(host, "thread_pool.queued", "min").items():
            if v > 0:
                mark("threads", m, host)
    for line in ev.logs:
        m = int(line.at // 60)
        if m not in near:
            continue
        if line.action in HEAP_LOGS:
            mark("heap", m, line.host)
        elif line.action in POOL_LOGS:
            mark("pool", m, line.host)
        elif line.action in THREAD_LOGS:
            mark("threads", m, line.host)
        elif line.action == "upstream_timeouts_started":
            mark("upstream", m)
            f.upstream = f.upstream or UPSTREAM_HOSTS.get(line.host)
    if "upstream" in f.first_minute and f.upstream is None:
        f.upstream = _upstream_in_errors(ev, lo * 60.0, (s.last + 1) * 60.0)
    # heap trouble on the other hosts later in the stretch belongs to the same leak
    if "heap" in f.first_minute:
        for host in apps:
            if any(v > 2 and s.first <= m <= s.last
                   for m, v in ev.metric(host, "jvm.gc.full_count").items()):
                f.hosts["heap"].add(host)
    return f


def _upstream_in_errors(ev: Evidence, lo: float, hi: float) -> str | None:
    """The upstream service the errors of the stretch name most often."""
    counts: dict[str, int] = {}
    for e in ev.errors:
        if lo <= e.at < hi and (hit := UPSTREAM_URL.search(e.message)):
            counts[hit.group(1)] = counts.get(hit.group(1), 0) + 1
    return max(sorted(counts), key=lambda k: counts[k], default=None)


def _places(signal: str | None, f: Finding) -> list[str]:
    """The implicated dependency or hosts of a signal."""
    if signal in ("gateway_slow", "gateway_errors"):
        return [DEPENDENCIES["gateway"]]
    if signal in ("db_slow", "pool"):
        return [DEPENDENCIES["db"]]
    if signal == "upstream":
        return [f.upstream or DEPENDENCIES["inventory"]]
    if signal == "heap":
        return sorted(f.hosts.get("heap", ()))
    return []


def _cause(ev: Evidence, s: Stretch, signal: str | None, f: Finding) -> Change | None:
    """The last change before the onset that explains the saturated resource, if any."""
    onset = s.first * 60.0
    for change in sorted(ev.changes, key=lambda c: -c.at):
        if not onset - CHANGE_LOOKBACK_S <= change.at <= onset + 60.0:
            continue
        if change.kind == "config_push" and signal in SETTINGS_OF_SIGNAL and \
                _shrinks(change, SETTINGS_OF_SIGNAL[signal]):
            return change
        if change.kind == "deploy" and signal == "heap" and \
                set(change.hosts) == f.hosts.get("heap", set()):
            return change
        if change.kind == "feature_flag" and onset - change.at <= FLAG_LOOKBACK_S and \
                signal in (None, "upstream", "surge", "pool") and \
                all(new != "off" for _, _, new in change.settings):
            return change
    return None


def _shrinks(change: Change, prefix: tuple[str, ...]) -> bool:
    """Whether a push set a setting starting with ``prefix`` lower than it was."""
    for name, old, new in change.settings:
        if name.startswith(prefix):
            try:
                if float(new) < float(old):
                    return True
            except ValueError:
                continue
    return False


def _guess_from_endpoints(ev: Evidence, s: Stretch) -> str:
    """No resource stood out: the endpoint that suffered most hints at the dependency."""
    worst, worst_ratio = "", 0.0
    for name in ev.names("endpoint"):
        series = {m: c.p95 for m, c in ev.series("endpoint", name).items()}
        usual = _baseline(ev, series)
        peak = max((v for m, v in series.items() if s.first <= m <= s.last), default=0.0)
        if usual and peak / usual > worst_ratio:
            worst, worst_ratio = name, peak / usual
    return {"checkout": "payment_gateway_slowdown", "cart": "db_slow_queries",
            "product": "upstream_slowdown", "search": "db_slow_queries"}.get(worst, "traffic_surge")


def _hosts_by_anomaly(ev: Evidence, s: Stretch) -> list[str]:
    """App hosts by how much worse their p95 and 5xx share were during the stretch."""
    strength: dict[str, float] = {}
    for host in ev.metric_hosts("app-instance"):
        cells = ev.series("host", host)
        usual = _baseline(ev, {m: c.p95 for m, c in cells.items()}) or 1.0
        during = [c for m, c in cells.items() if s.first <= m <= s.last]
        strength[host] = sum(c.p95 / usual + 100.0 * c.error_rate for c in during)
    return sorted(strength, key=lambda h: (-strength[h], h))
