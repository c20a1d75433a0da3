"""Writes ``OUTPUT_DIR/report/``: index.html, its PNG figures and data.json, all or nothing.

The page comes from a Jinja2 template with autoescaping on (incident records and error
types are data, never markup). It references only files beside it, so it opens from the
file system with no network. The report is built in ``report.partial/`` and renamed when
complete: an interrupted report never looks finished.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import orjson

from sim.report.output_dir import RunDir, epoch_s
from sim.report.series import Series

ZOOM_S = 30 * 60.0  # an incident's figure: from 30 minutes before it to 30 after


def _iso(ts: str | None) -> str:
    return ts.replace("T", " ").replace(".000Z", "").replace("Z", "") if ts else ""


def _clock(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    s = int(round(abs(seconds)))
    return f"{sign}{s // 60}:{s % 60:02d}"


def cause_text(key: str, value: Any) -> str:
    """A cause parameter as a reader wants it: a change's settings as "name old -> new", its
    hosts and a build's bug in words, never a raw list of dicts."""
    if key == "settings" and isinstance(value, list):
        return "; ".join(f"{x.get('name')} {x.get('old')} -> {x.get('new')}" if isinstance(x, dict)
                         else str(x) for x in value)
    if isinstance(value, list):
        return ", ".join(str(x) for x in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _change_rows(s: Series) -> list[dict[str, Any]]:
    """The run's changes for the page's table (from its change documents)."""
    return [{"at": _iso(c["at"]), "end": _iso(c["end"]) if c["end"] != c["at"] else "",
             "id": c["id"], "kind": c["kind"].replace("_", " "),
             "hosts": ", ".join(c["hosts"]) or "fleet", "settings": c["settings"],
             "message": c["message"]} for c in s.changes]


def incident_range(s: Series, rec: dict[str, Any]) -> tuple[int, int]:
    """Minute indices [lo, hi) of an incident's figure: cause and symptoms, ±30 minutes."""
    times = [epoch_s(rec[k]) for k in ("fault_start", "fault_end", "symptom_start", "symptom_end")
             if rec.get(k)]
    lo, hi = s.index(min(times) - ZOOM_S), s.index(max(times) + ZOOM_S) + 1
    return lo, max(lo + 1, min(hi, len(s.epochs)))


def _incident_context(n: int, rec: dict[str, Any], s: Series, lo: int, hi: int) -> dict[str, Any]:
    fault_start = epoch_s(rec["fault_start"])
    cause = rec.get("cause") if isinstance(rec.get("cause"), dict) else {}
    observed = bool(rec.get("observed") and rec.get("symptom_start"))
    hits_window = 0
    if observed:
        a, b = s.index(epoch_s(rec["symptom_start"])), s.index(epoch_s(rec["symptom_end"]))
        hits_window = int(s.perf_hits[a:b].sum())
    steps = [{"at": _iso(e["at"]), "after": _clock(epoch_s(e["at"]) - fault_start),
              "component": e.get("component", ""), "event": e.get("event", ""),
              "detail": e.get("detail", "")} for e in rec.get("saturation_order") or []]
    impact = {"requests": 0, "errors": 0, "slow_errors": 0, "failed_orders": 0,
              "lost_revenue": 0.0, **(rec.get("impact") or {})}
    first = rec.get("saturation_order", [None])[0] if rec.get("saturation_order") else None
    if observed:
        name = cause.get("fault_type") or cause.get("id", "?")
        summary = (f"Cause {name} from {_iso(rec['fault_start'])} to "
                   f"{_iso(rec['fault_end'])}; symptoms {_iso(rec['symptom_start'])} to "
                   f"{_iso(rec['symptom_end'])}"
                   + (f"; first to saturate: {first['component']} {first['event']} at "
                      f"{_clock(epoch_s(first['at']) - fault_start)} after the cause" if first
                      else "")
                   + f"; {impact['errors']:,} failed requests, {impact['failed_orders']:,} "
                     f"failed orders, {impact['lost_revenue']:,.2f} lost revenue.")
    else:
        summary = f"Cause {cause.get('fault_type', '?')}: no symptoms observed."
    return {
        "number": n, "anchor": f"incident-{n}", "id": rec["incident_id"],
        "type": rec["incident_type"], "origin": rec.get("origin", ""), "observed": observed,
        "summary": summary, "image": f"incident-{n}.png", "cause": cause,
        "cause_params": [(k, cause_text(k, v)) for k, v in cause.items()
                         if k != "fault_type" and v is not None],
        "fault_start": _iso(rec["fault_start"]), "fault_end": _iso(rec["fault_end"]),
        "symptom_start": _iso(rec.get("symptom_start")), "incident_end": _iso(rec.get("incident_end")),
        "symptom_end": _iso(rec.get("symptom_end")),
        "incident_phase_min": rec.get("incident_phase_min"),
        "recovery_after_cause_min": rec.get("recovery_after_cause_min"),
        "peak_p95_ms": rec.get("peak_p95_ms") or 0.0,
        "peak_error_rate_pct": rec.get("peak_error_rate_pct") or 0.0,
        "affected_endpoints": rec.get("affected_endpoints") or [],
        "affected_hosts": rec.get("affected_hosts") or [],
        "steps": steps,
        "chain": [{"at": _iso(e.get("at")), "component": e.get("component", ""),
                   "event": e.get("event", ""), "detail": e.get("detail", "")}
                  for e in rec.get("chain") or []],
        "impact": impact,
        "errors_by_kind": sorted((impact.get("errors_by_kind") or {}).items(),
                                 key=lambda kv: (-kv[1], kv[0])),
        "hits_window": hits_window, "hits_view": int(s.perf_hits[lo:hi].sum()),
        "detection": _detection(rec),
        "alerts": [_alert_row(a) for a in rec.get("alerts") or []],
    }


def _detection(rec: dict[str, Any]) -> str:
    """The incident's detection delay as the page says it."""
    if "detection_delay_s" not in rec:
        return "not evaluated (a run from before alerts)"
    delay = rec["detection_delay_s"]
    if delay is None:
        return "no alert fired"
    first = rec["alerts"][0]
    return f"{_clock(delay)} after the cause began ({first['rule_id']}, {first['severity']})"


def _alert_row(a: dict[str, Any]) -> dict[str, Any]:
    return {"fired": _iso(a.get("fired")), "resolved": _iso(a.get("resolved")) or "still active",
            "rule": a.get("rule_id", ""), "severity": a.get("severity", ""), "on": a.get("on") or ""}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


_shared: dict[str, Any] = {}


def _init_worker(s: Series, incidents: list[dict[str, Any]], numbers: dict[str, int],
                 false_alarms: list[dict[str, Any]]) -> None:
    _shared.update(s=s, incidents=incidents, numbers=numbers, false_alarms=false_alarms)


def _draw_task(task: tuple[str, int, int, dict[str, Any] | None]) -> None:
    from sim.report.figures import draw  # matplotlib: only where figures are drawn

    path, lo, hi, focus = task
    draw(Path(path), _shared["s"], lo, hi, _shared["incidents"], _shared["numbers"], focus,
         _shared["false_alarms"])


def draw_all(tasks: list[tuple[str, int, int, dict[str, Any] | None]], s: Series,
             incidents: list[dict[str, Any]], numbers: dict[str, int], workers: int,
             false_alarms: list[dict[str, Any]] | None = None) -> None:
    """Every figure (about a second each): this process draws every ``workers``-th one while
    ``workers - 1`` worker processes draw the rest (one process fewer holding matplotlib)."""
    _init_worker(s, incidents, numbers, false_alarms or [])
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            _draw_task(task)
        return
    mine = tasks[::workers]
    theirs = [t for i, t in enumerate(tasks) if i % workers]
    ctx = multiprocessing.get_context("forkserver")
    # a fresh worker every few figures: matplotlib keeps caches that grow with each one
    with ctx.Pool(min(workers - 1, len(theirs)), _init_worker,
                  (s, incidents, numbers, false_alarms or []),
                  maxtasksperchild=4) as pool:
        pending = pool.map_async(_draw_task, theirs, chunksize=1)
        for task in mine:
            _draw_task(task)
        pending.get()


def write_report(run: RunDir, s: Series, docs: dict[str, int], workers: int = 1) -> Path:
    """Figures, data.json and index.html into ``run.path/report``; returns index.html."""
    final = run.path / "report"
    tmp = run.path / "report.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        incidents = run.incidents or []
        numbers = {rec["incident_id"]: n for n, rec in enumerate(incidents, 1)}
        tasks: list[tuple[str, int, int, dict[str, Any] | None]] = [
            (str(tmp / "overview.png"), 0, len(s.epochs), None)]
        contexts = []
        for n, rec in enumerate(incidents, 1):
            lo, hi = incident_range(s, rec)
            tasks.append((str(tmp / f"incident-{n}.png"), lo, hi, rec))
            contexts.append(_incident_context(n, rec, s, lo, hi))
        alerts = (run.summary or {}).get("alerts") or {}
        false_alarms = alerts.get("false_alarms") or []
        draw_all(tasks, s, incidents, numbers, workers, false_alarms)
        (tmp / "data.json").write_bytes(orjson.dumps(s.to_json()))
        window = (run.summary or {}).get("window") or {}
        first = dt.datetime.fromtimestamp(int(s.epochs[0]), dt.UTC).isoformat()
        last = dt.datetime.fromtimestamp(int(s.epochs[-1]) + 60, dt.UTC).isoformat()
        transactions = int(s.requests.sum())
        html = _environment().get_template("report.html.j2").render(
            run={
                "scenario": (run.summary or {}).get("scenario", run.path.name),
                "seed": (run.summary or {}).get("seed", "?"),
                "start": _iso(window.get("start") or first.replace("+00:00", "Z")),
                "end": _iso(window.get("end") or last.replace("+00:00", "Z")),
                "docs": docs,
                "transactions": transactions,
                "error_pct": 100.0 * int(s.failed.sum()) / transactions if transactions else 0.0,
                "perf_hits": int(np.sum(s.perf_hits)),
            },
            warnings=run.warnings,
            overview="overview.png",
            changes=_change_rows(s),
            incidents=contexts,
            incidents_missing=run.incidents is None,
            alerts={"fired": alerts.get("fired"), "critical": alerts.get("critical", 0),
                    "warning": alerts.get("warning", 0),
                    "false_alarms": [_alert_row(a) for a in false_alarms]},
        )
        (tmp / "index.html").write_text(html, encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / "index.html"
