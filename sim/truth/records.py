"""Ground truth: per-minute aggregates of what the simulated clients saw, and incident records.

The simulation only ever injects causes. To tell where an incident *showed*, every segment
keeps small per-minute aggregates of its transactions (counts, errors by kind, a latency
histogram, per-endpoint and per-host counts, failed orders) — memory grows with minutes,
never with requests — and returns them in its picklable result. After the run the minutes
are merged and each fault's observed symptom window, the order in which resources gave
way (from the model's own state log) and its impact are derived from them. None of this
is written into the telemetry documents: it goes to ``incidents.ndjson`` (and its own
index), and cuts ``all_data.ndjson`` into the seed's normal/incident/recovery files.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sim.config import StorefrontConfig, with_settings
from sim.model.changes import ActiveChange, applied, deployed, flag_shares, setting
from sim.model.distractors import WHY as DISTRACTOR_WHY
from sim.model.distractors import Distractor
from sim.model.endpoints import ENDPOINTS
from sim.model.faults import ActiveFault
from sim.outputs.ndjson import open_partial, read_lines, write_bulk_file
from sim.telemetry.documents import change_text, setting_text
from sim.telemetry.minutes import CHANGE_HORIZON_S, SEARCH_AFTER_FAULT_S, Minute

# The seed's envelopes turned into per-minute thresholds.
ABNORMAL_ERROR_PCT = 5.0  # normal is 1-2 %
ABNORMAL_P95_MS = 2000.0  # normal responses are 200-800 ms
SEVERE_ERROR_PCT = 10.0
SEVERE_P95_MS = 5000.0
RELATIVE_P95_FACTOR = 1.6  # ...or this many times the p95 before the fault
NORMAL_MINUTES_TO_RECOVER = 3  # consecutive normal minutes that end a symptom window
CHAIN_EVENTS = (
    "gateway_timeouts_started", "upstream_timeouts_started", "cpu_saturated", "db_server_saturated",
    "db_pool_exhausted", "thread_pool_saturated", "heap_pressure", "long_gc_pause",
    "circuit_breaker_open", "out_of_memory",
)


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _parse_iso(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


HOST_MIN_REQUESTS = 50


def _host_in_trouble(m: Minute) -> bool:
    """One instance failing (an OOM, a GC spiral) hides in the fleet-wide numbers."""
    return any(
        n >= HOST_MIN_REQUESTS and (100.0 * err / n >= ABNORMAL_ERROR_PCT or slow / n >= 0.05)
        for n, err, slow in m.hosts.values()
    )


def _abnormal(m: Minute, p95_limit_ms: float = ABNORMAL_P95_MS) -> bool:
    return m.error_pct() >= ABNORMAL_ERROR_PCT or m.p95_ms() >= p95_limit_ms or \
        _host_in_trouble(m)


def _baseline_p95_limit(minutes: dict[int, Minute], before_key: int) -> float:
    """A gradual slowdown counts once p95 is well above the half hour before the fault."""
    p95s = sorted(m.p95_ms() for k in range(before_key - 30, before_key)
                  if (m := minutes.get(k)) is not None and m.requests)
    if len(p95s) < 5:
        return ABNORMAL_P95_MS
    return min(ABNORMAL_P95_MS, RELATIVE_P95_FACTOR * p95s[len(p95s) // 2])


def _severe(m: Minute) -> bool:
    return m.error_pct() >= SEVERE_ERROR_PCT or m.p95_ms() >= SEVERE_P95_MS


@dataclass(frozen=True)
class ObservedWindow:
    """Epoch seconds: symptoms start, the incident phase ends, symptoms are gone."""

    start: float
    incident_end: float
    end: float


def observe_window(fault: ActiveFault, minutes: dict[int, Minute],
                   claimed_until: float = 0.0) -> ObservedWindow | None:
    """Where this fault's symptoms showed in the telemetry, or None if they never did:
    from its start to ``SEARCH_AFTER_FAULT_S`` after its end (see ``observe_span``)."""
    return observe_span(fault.start_epoch, fault.end_epoch, fault.end_epoch + SEARCH_AFTER_FAULT_S,
                        minutes, claimed_until)


def observe_span(start_s: float, end_s: float, search_until_s: float, minutes: dict[int, Minute],
                 claimed_until: float = 0.0) -> ObservedWindow | None:
    """Where the symptoms of a cause active from ``start_s`` to ``end_s`` showed, looking
    until ``search_until_s``; None if they never did.

    A minute is abnormal when the fleet's error rate or p95 (absolute, or relative to the
    half hour before the cause) or one host's error/slow share crosses its threshold.
    Symptoms start at the first abnormal minute from the cause's start on; they end once
    ``NORMAL_MINUTES_TO_RECOVER`` consecutive normal minutes follow after ``end_s``. The
    incident phase ends after the last severe minute (or the first abnormal one if none
    was severe); the rest of the symptom window is recovery."""
    first = int(max(start_s, claimed_until) // 60)
    last = int(search_until_s // 60)
    limit = _baseline_p95_limit(minutes, int(start_s // 60))
    start = None
    for key in range(first, last + 1):
        m = minutes.get(key)
        if m is not None and m.requests and _abnormal(m, limit):
            start = key
            break
    if start is None:
        return None
    end = start + 1
    last_severe = None
    normal_run = 0
    key = start
    while key <= last + 60:
        m = minutes.get(key)
        if m is None:
            break
        if _abnormal(m, limit):
            normal_run = 0
            end = key + 1
            if _severe(m):
                last_severe = key
        else:
            normal_run += 1
            if normal_run >= NORMAL_MINUTES_TO_RECOVER and key * 60 >= end_s:
                break
        key += 1
    incident_end = (last_severe + 1) if last_severe is not None else start + 1
    return ObservedWindow(start * 60.0, incident_end * 60.0, end * 60.0)


def _affected(minutes: dict[int, Minute], win: ObservedWindow, attr: str) -> list[str]:
    """Endpoints/hosts whose error or slow share in the incident phase is well above their
    normal (the recovery tail would dilute a short, sharp hit)."""
    during: dict[str, list[int]] = {}
    before: dict[str, list[int]] = {}
    lo, hi = int(win.start // 60), int(win.incident_end // 60)
    for key in range(lo - 60, hi):
        m = minutes.get(key)
        if m is None:
            continue
        target = during if key >= lo else before
        for name, row in getattr(m, attr).items():
            acc = target.setdefault(name, [0, 0, 0])
            for i in range(3):
                acc[i] += row[i]
    out = []
    for name, (n, err, slow) in sorted(during.items()):
        if n == 0:
            continue
        b = before.get(name, [0, 0, 0])
        base_err = b[1] / b[0] if b[0] else 0.02
        base_slow = b[2] / b[0] if b[0] else 0.0
        if err / n >= max(0.05, 2.5 * base_err) or slow / n >= max(0.02, 3 * base_slow):
            out.append(name)
    return out


SERVICE_OF_ENDPOINT = {name: endpoint.service for name, endpoint in ENDPOINTS.items()}


def build_incident_records(
    faults: list[ActiveFault],
    minutes: dict[int, Minute],
    state_log: list[tuple[str, str, str, str]],
    origin: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One ground-truth record per fault, in start order. A fault's symptoms are looked for
    after those of the fault before it have ended, unless the two causes overlap in time."""
    log = sorted((_parse_iso(ts), comp, ev, detail) for ts, comp, ev, detail in state_log)
    records = []
    claimed = 0.0
    cause_end = 0.0
    for fault in sorted(faults, key=lambda f: (f.start_epoch, f.fault_id)):
        # a fault that begins while another is still active overlaps it: both keep their own
        # window (``sim.truth.overlap`` shares out the failures); one that begins after looks
        # for its symptoms once the earlier one's have ended
        win = observe_window(fault, minutes, 0.0 if fault.start_epoch < cause_end else claimed)
        cause_end = max(cause_end, fault.end_epoch)
        rec = _cause(fault, (origin or {}).get(fault.fault_id, "pinned"), win is not None)
        if win is None:
            rec.update(_not_observed())
        else:
            claimed = win.end
            rec.update(_observed(fault.start_epoch, fault.end_epoch, win, minutes, log))
        records.append(rec)
    return records


def _cause(fault: ActiveFault, origin: str, observed: bool) -> dict[str, Any]:
    """What was injected, and when."""
    return {
        "incident_id": fault.fault_id,
        "incident_type": fault.incident_type,
        "origin": origin,
        "cause": {"fault_type": fault.type, "magnitude": fault.magnitude,
                  "target": fault.target, "ramp_s": fault.ramp_s},
        "fault_start": _iso(fault.start_epoch),
        "fault_end": _iso(fault.end_epoch),
        "observed": observed,
    }


def _observed(cause_start: float, cause_end: float | None, win: ObservedWindow,
              minutes: dict[int, Minute], log: list[tuple[float, str, str, str]]) -> dict[str, Any]:
    """Where and how a cause (a fault, or a change: ``cause_end`` None, it lasts) showed:
    its symptom window, peaks, what it touched, the order in which resources gave way, and
    its impact."""
    ms = [minutes[k] for k in range(int(win.start // 60), int(win.end // 60)) if k in minutes]
    total = Minute()
    for m in ms:
        total.merge(m)
    endpoints = _affected(minutes, win, "endpoints")
    chain = [
        {"at": _iso(t), "component": comp, "event": ev, "detail": detail}
        for t, comp, ev, detail in log
        if cause_start - 60 <= t < win.end and ev in CHAIN_EVENTS
    ]
    first: dict[str, dict[str, Any]] = {}
    for entry in chain:
        first.setdefault(entry["event"], entry)
    first_by_event = list(first.values())
    return {
        "symptom_start": _iso(win.start),
        "incident_end": _iso(win.incident_end),
        "symptom_end": _iso(win.end),
        "duration_min": round((win.end - win.start) / 60.0, 1),
        "incident_phase_min": round((win.incident_end - win.start) / 60.0, 1),
        "recovery_after_cause_min": None if cause_end is None else
        round(max(0.0, win.end - cause_end) / 60.0, 1),
        "peak_p95_ms": round(max(m.p95_ms() for m in ms), 0),
        "peak_error_rate_pct": round(max(m.error_pct() for m in ms if m.requests), 1),
        "affected_endpoints": endpoints,
        "affected_services": sorted({SERVICE_OF_ENDPOINT.get(e, e) for e in endpoints}),
        "affected_hosts": _affected(minutes, win, "hosts"),
        "first_saturated": first_by_event[0] if first_by_event else None,
        "saturation_order": first_by_event,
        "chain": chain[:200],
        "impact": _impact(total),
    }


# What a change's incident is called, after the resource that gave way first (the fault
# catalogue's names where one fits).
INCIDENT_OF_FIRST_SATURATED: dict[str, str] = {
    "db_pool_exhausted": "db_connection_pool_exhaustion",
    "db_server_saturated": "db_server_saturation",
    "thread_pool_saturated": "thread_pool_exhaustion",
    "cpu_saturated": "cpu_saturation",
    "gateway_timeouts_started": "payment_gateway_timeout",
    "upstream_timeouts_started": "upstream_service_degradation",
    "heap_pressure": "memory_pressure",
    "long_gc_pause": "memory_pressure",
    "out_of_memory": "memory_pressure",
    "circuit_breaker_open": "circuit_breaker_activation",
}
CHANGE_INCIDENT_DEFAULT = "change_regression"  # symptoms, but no resource gave way


MIN_CHANGE_SYMPTOM_S = 5 * 60.0  # shorter abnormal stretches after a change are noise, not its incident


def _sustained_span(at: float, minutes: dict[int, Minute]) -> ObservedWindow | None:
    """The symptoms of a change made at ``at``: from the first abnormal stretch that lasts
    ``MIN_CHANGE_SYMPTOM_S`` (a minute's blip is skipped) to the last abnormal minute before
    ``CHANGE_HORIZON_S``. A change does not end, so quieter minutes in between (a slower
    morning, then the lunch peak running the pools out) are one incident, not several."""
    horizon = at + CHANGE_HORIZON_S
    win = observe_span(at, at, horizon, minutes)
    while win is not None and win.end - win.start < MIN_CHANGE_SYMPTOM_S:
        win = observe_span(at, at, horizon, minutes, claimed_until=win.end)
    if win is None:
        return None
    return observe_span(at, horizon, horizon, minutes, claimed_until=win.start)


def build_change_records(
    changes: list[ActiveChange],
    faults: list[ActiveFault],
    minutes: dict[int, Minute],
    state_log: list[tuple[str, str, str, str]],
    storefront: StorefrontConfig,
    origin: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A ground-truth record per change whose symptoms showed within ``CHANGE_HORIZON_S``,
    in time order (``origin``: "runtime" for a live run's changes; absent: "pinned"). A
    change made while a fault's symptoms fade is left out (they are the fault's); one that
    overlaps a fault gets its own record, and ``sim.truth.overlap`` shares out the failures;
    one without symptoms gets no record."""
    log = sorted((_parse_iso(ts), comp, ev, detail) for ts, comp, ev, detail in state_log)
    records: list[dict[str, Any]] = []
    claimed_until = 0.0  # a change whose symptoms start inside an earlier one's is not their cause
    for i, change in enumerate(changes):
        if change.benign:
            continue  # a distractor: recorded as one (``distractor_records``), never a cause
        win = _sustained_span(change.epoch, minutes)
        if win is None or win.start < claimed_until or any(
                f.end_epoch <= change.epoch < f.end_epoch + SEARCH_AFTER_FAULT_S for f in faults):
            continue  # an earlier change's symptoms, or a fault's recovery it was made in
        if any(f.start_epoch <= win.start + 60.0 < f.end_epoch + SEARCH_AFTER_FAULT_S for f in faults):
            # the symptoms began while a fault acted: the change is credited only from its
            # own mechanism's first sign on its hosts (a leaking build's heap, a shrunk pool
            # running out); none, and they are the fault's alone
            own = _own_first_sign(change, applied(storefront, changes[:i], change.hosts[0])
                                  if change.hosts else storefront, log, change.epoch + CHANGE_HORIZON_S)
            if own is None or own >= win.end:
                continue
            start = max(win.start, own // 60.0 * 60.0)
            win = ObservedWindow(start, max(win.incident_end, start + 60.0), win.end)
        claimed_until = win.end
        rec = _change_cause(change, changes[:i], storefront)
        rec["origin"] = (origin or {}).get(change.change_id, "pinned")
        rec.update(_observed(change.epoch, None, win, minutes, log))
        first = rec["first_saturated"]
        rec["incident_type"] = INCIDENT_OF_FIRST_SATURATED.get(
            first["event"] if first else "", CHANGE_INCIDENT_DEFAULT)
        # the first abnormal minute may have begun a few seconds before the push reached it
        rec["delay_to_first_symptom_s"] = round(max(0.0, win.start - change.epoch), 1)
        records.append(rec)
    return records


HEAP_SIGNS = ("heap_pressure", "long_gc_pause", "out_of_memory")
# a setting's resource, and what it announces when that resource gives way
SIGNS_OF_SETTING = (("db_pool.", ("db_pool_exhausted",)), ("cpu_", ("cpu_saturated",)),
                    ("worker_threads", ("thread_pool_saturated",)),
                    ("accept_queue", ("thread_pool_saturated",)), ("heap.", HEAP_SIGNS),
                    ("circuit_breaker.", ("circuit_breaker_open",)),
                    ("payment_gateway.", ("gateway_timeouts_started",)))


def _own_first_sign(change: ActiveChange, was: StorefrontConfig,
                    log: list[tuple[float, str, str, str]], until: float) -> float | None:
    """When the resource a change acts on first gave way on one of its hosts (a leaking
    build: its heap; a push that lowered a setting: that setting's resource; ``was``: the
    host's settings before it), or None: a push that raised a limit cannot exhaust it, and
    a flag reaches every host through many paths, with no sign of its own."""
    if change.kind == "deploy":
        signs: tuple[str, ...] = HEAP_SIGNS if change.leak_mb else ()
    else:
        lowered = [path for path, value in change.settings
                   if not isinstance(value, int | float) or value < setting(was, path)]
        signs = tuple(ev for path in lowered for prefix, evs in SIGNS_OF_SETTING
                      if path.startswith(prefix) for ev in evs)
    return next((t for t, comp, ev, _ in log
                 if change.epoch <= t < until and ev in signs and comp in change.hosts), None)


def _change_cause(change: ActiveChange, before: list[ActiveChange],
                  storefront: StorefrontConfig) -> dict[str, Any]:
    """What was changed, where and when (``before``: the changes made until then). A change
    has no end: ``fault_end`` is its time too."""
    at = _iso(change.epoch)
    cause: dict[str, Any] = {"kind": "change", "id": change.change_id, "change_kind": change.kind}
    if change.kind == "deploy":
        old = deployed(storefront, before, change.hosts[0]).version
        cause["settings"] = [{"name": "version", "old": old, "new": change.version}]
        if change.leak_mb:
            cause["code_fault"] = {"type": "memory_leak", "magnitude": change.leak_mb}
    elif change.kind == "feature_flag":
        flag = change.flag or ""
        old_share = flag_shares(before).get(flag, 0.0)
        cause["settings"] = [{"name": flag, "old": change_text(change.kind, old_share),
                              "new": change_text(change.kind, change.share)}]
    else:
        was = applied(storefront, before, change.hosts[0])
        after = with_settings(was, dict(change.settings))
        cause["settings"] = [{"name": path, "old": setting_text(setting(was, path)),
                              "new": setting_text(setting(after, path))} for path, _ in change.settings]
    cause |= {"hosts": list(change.hosts), "at": at}
    return {
        "incident_id": change.change_id,
        "incident_type": CHANGE_INCIDENT_DEFAULT,
        "origin": "pinned",
        "cause": cause,
        "fault_start": at,
        "fault_end": at,
        "observed": True,
    }


LEAD_WINDOW_S = 3600.0  # how far before an incident's symptoms a change or distractor is a lead


def distractor_records(changes: list[ActiveChange], distractors: list[Distractor],
                       incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A record per distractor (``"distractor": true``): what it was, when and where, why it
    is not a cause, and the incident it sits just before, if any."""
    out = []
    for change in changes:
        if change.benign:
            what = {"kind": "change", "id": change.change_id, "change_kind": change.kind,
                    "settings": [{"name": "version", "new": change.version}] if change.version else
                    [{"name": p, "new": setting_text(v)} for p, v in change.settings],
                    "hosts": list(change.hosts), "at": _iso(change.epoch)}
            out.append(_distractor(change.change_id, what, change.epoch, change.benign, incidents))
    for d in distractors:
        what = {"kind": d.kind, "id": d.distractor_id, "hosts": [d.host], "at": _iso(d.start_epoch),
                "end": _iso(d.end_epoch)} | ({"cores": d.cores} if d.cores else {})
        out.append(_distractor(d.distractor_id, what, d.start_epoch, DISTRACTOR_WHY[d.kind], incidents))
    return out


def _distractor(ident: str, what: dict[str, Any], at: float, why: str,
                incidents: list[dict[str, Any]]) -> dict[str, Any]:
    near = [r["incident_id"] for r in incidents if r.get("observed")
            and 0.0 <= _parse_iso(r["symptom_start"]) - at <= LEAD_WINDOW_S]
    return {"incident_id": ident, "incident_type": "distractor", "origin": "distractor",
            "distractor": True, "cause": what, "why_not_a_cause": why, "before_incident": near,
            "fault_start": _iso(at), "fault_end": what.get("end", _iso(at)), "observed": False}


def annotate_leads(records: list[dict[str, Any]], changes: list[ActiveChange],
                   distractors: list[Distractor]) -> None:
    """Each observed incident lists the changes made and the distractors started in the hour
    before its symptoms and during them: what an investigator asking "what changed?" finds."""
    for rec in records:
        if not rec.get("observed"):
            continue
        lo = _parse_iso(rec["symptom_start"]) - LEAD_WINDOW_S
        hi = _parse_iso(rec["symptom_end"])
        rec["changes_in_window"] = [c.change_id for c in changes if lo <= c.epoch <= hi]
        rec["distractors_near"] = [c.change_id for c in changes if c.benign and lo <= c.epoch <= hi] + \
            [d.distractor_id for d in distractors if lo <= d.start_epoch <= hi]


def _not_observed() -> dict[str, Any]:
    """A record's fields when its fault never showed."""
    return {
        "symptom_start": None, "incident_end": None, "symptom_end": None, "duration_min": 0.0,
        "recovery_after_cause_min": None, "peak_p95_ms": 0.0, "peak_error_rate_pct": 0.0,
        "affected_services": [], "affected_endpoints": [], "affected_hosts": [],
        "first_saturated": None, "chain": [], "impact": _impact(Minute()),
    }


def _impact(total: Minute) -> dict[str, Any]:
    return {
        "requests": total.requests,
        "errors": total.errors,
        "slow_errors": total.slow_errors,
        "errors_by_kind": dict(sorted(total.kinds.items())),
        "failed_orders": total.failed_orders,
        "lost_revenue": round(total.lost_revenue, 2),
    }


def write_incidents(path: Path, records: list[dict[str, Any]], commit: bool = True) -> None:
    """``incidents.ndjson`` in _bulk format (ids are the incident ids), atomically, gzip when
    ``path`` ends in ``.gz`` (``commit=False``: left as ``.partial`` for the caller to
    rename)."""
    write_bulk_file(path, ((rec["incident_id"], rec) for rec in records), commit)


def read_incidents(path: Path) -> list[dict[str, Any]]:
    """The records of an ``incidents.ndjson`` (plain or ``.gz``): every second line."""
    lines = read_lines(path)
    return [orjson.loads(doc) for _action, doc in zip(lines, lines, strict=True)]


SPLIT_NAMES = ("normal_data.ndjson", "incident_data.ndjson", "recovery_data.ndjson")
_TS_KEY = b'"@timestamp":"'


def split_windows(records: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(start, end, phase) ISO intervals: phase 1 = incident, 2 = recovery; sorted."""
    out = []
    for rec in records:
        if rec.get("observed"):
            out.append((rec["symptom_start"], rec["incident_end"], 1))
            if rec["symptom_end"] > rec["incident_end"]:
                out.append((rec["incident_end"], rec["symptom_end"], 2))
    return sorted(out)


def _phase(ts: str, windows: list[tuple[str, str, int]], starts: list[str]) -> int:
    i = bisect.bisect_right(starts, ts) - 1
    if i >= 0 and ts < windows[i][1]:
        return windows[i][2]
    return 0


def write_split_files(all_data: Path, records: list[dict[str, Any]], commit: bool = True,
                      gz: bool | None = None) -> list[Path]:
    """Cut ``all_data.ndjson`` (or ``.ndjson.gz``: ``gz``, by default from the name) by
    @timestamp into normal/incident/recovery files of the same format beside it
    (``commit=False``: left as ``.partial`` files for the caller to rename).

    A streaming pass: action and document lines are copied in pairs; timestamps are
    compared as strings (one fixed ISO format, so string order is time order)."""
    windows = split_windows(records)
    starts = [w[0] for w in windows]
    gz = all_data.suffix == ".gz" if gz is None else gz
    paths = [all_data.with_name(n + (".gz" if gz else "")) for n in SPLIT_NAMES]
    opened: list[tuple[Path, Any]] = []
    ok = False
    close_error: OSError | None = None
    phase = 0
    try:
        opened.extend(open_partial(p) for p in paths)
        handles = [fh for _, fh in opened]
        lines = read_lines(all_data, gz)
        for action in lines:
            doc = next(lines)
            i = doc.find(_TS_KEY)
            ts = doc[i + len(_TS_KEY): i + len(_TS_KEY) + 24].decode() if i >= 0 else ""
            phase = _phase(ts, windows, starts)
            handles[phase].write(action + doc)
        ok = True
    except OSError as exc:  # a write error names no file: name the one being written
        if exc.filename is None and opened:
            raise OSError(exc.errno, exc.strerror, str(opened[phase][0])) from None
        raise
    finally:
        for tmp, h in opened:
            try:
                h.close()
            except OSError as exc:  # its last buffer did not fit on the disk
                close_error = close_error or OSError(exc.errno, exc.strerror, str(tmp))
        for (tmp, _), path in zip(opened, paths, strict=False):
            if not ok or close_error is not None:
                tmp.unlink(missing_ok=True)
            elif commit:
                os.replace(tmp, path)
    if close_error is not None:
        raise close_error
    return paths
