"""The run lifecycle: plan segments, simulate them, feed the sinks, always close and summarise.

``simulate`` is a sequence of named steps: plan (``sim.run.plan``), open the workspace (the
directory's lock, fresh or resumed part files), open the NDJSON file, simulate the segments
(here, on worker processes or on Dask), merge their ground truth into incident records,
stage every output file, and, whatever happened, remove the parts, close the sinks and
commit the files. Like desmod's simulate(): the ``finally`` closes every sink (a failed run
leaves no complete-looking file behind) and the summary says what was written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config import Scenario, StorefrontConfig, alert_rules
from sim.core.clock import Window
from sim.model.faults import ActiveFault
from sim.outputs.files import OutputError, WriteFailure
from sim.outputs.ndjson import NdjsonSink
from sim.outputs.sink import EventSink, SinkStopped, SinkSummary
from sim.run import workspace
from sim.run.disk import estimate_run_bytes, failure_message
from sim.run.parallel import (
    StreamTarget,
    default_workers,
    feed_part,
    in_process,
    merge_summaries,
    run_segments,
)
from sim.run.plan import PinnedPlan, RunPlan, iso_utc, plan_run
from sim.run.segment import SegmentResult
from sim.run.traces import TRACE_FILES, TraceFollower, stage_trace_files
from sim.telemetry.alert_series import merge_cells
from sim.telemetry.encoding import incident_doc_id
from sim.telemetry.minutes import merge_minutes
from sim.truth.alerts import alert_doc_id, alert_docs, evaluate_run, link_alerts, write_alerts
from sim.truth.overlap import split_impact
from sim.truth.records import (
    SPLIT_NAMES,
    annotate_leads,
    build_change_records,
    build_incident_records,
    distractor_records,
    write_incidents,
    write_split_files,
)


@dataclass
class RunResult:
    scenario: str
    seed: int
    window: Window
    counts: dict[str, int] = field(default_factory=dict)
    faults: list[ActiveFault] = field(default_factory=list)
    state_log: list[tuple[str, str, str, str]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    sinks: list[SinkSummary] = field(default_factory=list)
    wall_time_s: float = 0.0
    files: list[str] = field(default_factory=list)
    live: dict[str, Any] = field(default_factory=dict)  # a live run's handoff, stop, lag...
    alerts: list[dict[str, Any]] = field(default_factory=list)  # alert documents, in time order
    false_alarms: list[dict[str, Any]] = field(default_factory=list)  # alerts of no incident

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "window": {"start": self.window.start.isoformat().replace("+00:00", "Z"),
                       "end": self.window.end.isoformat().replace("+00:00", "Z")},
            "counts": dict(sorted(self.counts.items())),
            "total_documents": self.total,
            "faults": [
                {"id": f.fault_id, "type": f.type, "incident_type": f.incident_type,
                 "start": iso_utc(f.start_epoch), "end": iso_utc(f.end_epoch),
                 "magnitude": f.magnitude, "target": f.target}
                for f in self.faults
            ],
            "sinks": [
                {"name": s.name, "generated": s.generated, "indexed": s.indexed,
                 "already_present": s.already_present, "dead_lettered": s.dead_lettered,
                 "unaccounted": s.unaccounted, **s.details}
                for s in self.sinks
            ],
            "alerts": alerts_summary(self.alerts, self.false_alarms),
            "files": self.files,
            **({"live": self.live} if self.live else {}),
            "wall_time_s": round(self.wall_time_s, 2),
        }


@dataclass
class _Run:
    """What the steps of one batch run share: its plan, where it writes, and what it has
    opened so far (every exit path closes it)."""

    scenario: Scenario
    plan: RunPlan
    output_dir: Path | None
    run_dir: Path | None  # the lock and the part files
    sinks: list[EventSink]
    incident_sinks: Sequence[EventSink]
    alert_sinks: Sequence[EventSink]
    ndjson: NdjsonSink | None = None
    parts_dir: Path | None = None
    finished: dict[int, SegmentResult] = field(default_factory=dict)  # a resumed run's
    task_summaries: list[SinkSummary] = field(default_factory=list)  # Dask tasks' streams
    trace_sinks: dict[str, EventSink] = field(default_factory=dict)  # trace file -> its sink
    traces_sent: bool = False  # the trace sinks were fed while the segments ran
    ok: bool = False


def simulate(
    scenario: Scenario,
    today: dt.date,
    output_dir: Path | None,
    extra_sinks: Iterable[EventSink] = (),
    progress: Callable[[float], None] | None = None,
    write_summary: bool = True,
    workers: int | None = None,
    incident_sinks: Sequence[EventSink] = (),
    engine: str = "fast",
    pinned: PinnedPlan | None = None,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    dask: str | None = None,
    stream: StreamTarget | None = None,
    trace_sinks: dict[str, EventSink] | None = None,
    alert_sinks: Sequence[EventSink] = (),
) -> RunResult:
    """Run a whole scenario. Files land in ``output_dir`` (None: no files).

    ``workers`` processes simulate segments in parallel (default: all cores), or the tasks
    of the Dask scheduler at ``dask`` (streaming into ``stream`` themselves); the output is
    the same for any number and either backend. ``run_dir`` (default ``output_dir``) holds
    the run's lock and part files; ``resume`` continues a killed run from them
    (``sim.run.workspace``). ``pinned`` repeats a live run (sim.live.loop) as a batch.
    ``trace_sinks`` take the run's trace files once they are staged (by file name)."""
    t0 = time.perf_counter()
    plan = plan_run(scenario, today, engine, pinned)
    result = RunResult(scenario.name, scenario.seed, plan.window, faults=plan.faults)
    run = _Run(scenario, plan, output_dir, run_dir or output_dir, list(extra_sinks),
               incident_sinks, alert_sinks, trace_sinks=dict(trace_sinks or {}))
    with contextlib.ExitStack() as held:
        try:
            _open_workspace(run, held, resume)
            _open_ndjson(run)
            segments = _simulate_segments(run, workers, progress, dask, stream)
            _merge_ground_truth(result, run.plan, segments, run.scenario.storefront)
            _judge_alerts(result, run, segments)
            _emit_incidents(run, result.incidents)
            _emit_alerts(run, result.alerts)
            result.files = _stage_files(run, result, write_summary)
            _stream_trace_files(run, result.files)
            run.ok = True
        except SinkStopped:
            pass  # a sink cannot go on (its summary says why): the run stops here, as failed
        except (OSError, WriteFailure) as exc:  # a write failed: disk full, size limit, read-only
            raise OutputError(_disk_failure_line(run, exc)) from None
        finally:
            _remove_parts(run)
            _close_and_commit(run, result, stream, t0)
    return result


def _open_workspace(run: _Run, held: contextlib.ExitStack, resume: bool) -> None:
    """Lock the run's directory before any file is opened (one live run per directory) and
    take its part directory: a fresh one, or a killed run's finished segments."""
    if run.run_dir is None:
        if resume:
            raise workspace.RunDirError("--resume needs an output directory")
        return
    held.enter_context(workspace.locked(run.run_dir))
    plan = run.plan
    ident = workspace.identity(run.scenario, plan.window, plan.key, plan.segments)
    if resume:
        run.parts_dir, run.finished = workspace.resumed_parts(run.run_dir, ident, plan.segments)
    else:
        run.parts_dir = workspace.fresh_parts(run.run_dir, ident)


def _open_ndjson(run: _Run) -> None:
    """The run's ``all_data`` file, the first sink, when it writes files."""
    if run.output_dir is not None:
        ext = ".ndjson.gz" if run.scenario.output.gzip else ".ndjson"
        run.ndjson = NdjsonSink(run.output_dir / f"all_data{ext}")
        run.sinks.insert(0, run.ndjson)


def _simulate_segments(run: _Run, workers: int | None, progress: Callable[[float], None] | None,
                       dask: str | None, stream: StreamTarget | None) -> list[SegmentResult]:
    """Every segment, into the sinks in order: here, when one process without part files
    will do; else on worker processes or Dask tasks through part files."""
    workers = workers or default_workers()
    scenario, plan = run.scenario, run.plan
    if run.parts_dir is None and dask is None and workers <= 1:
        return [in_process(scenario, p, plan.key, run.sinks, progress) for p in plan.segments]
    if run.parts_dir is None:
        run.parts_dir = Path(tempfile.mkdtemp(prefix="storefront-sim-"))
    # trace parts stream while the segments run (on Dask a retried task rewrites its parts:
    # they are sent once staged instead)
    follower = TraceFollower(plan.segments, run.parts_dir, run.trace_sinks) \
        if run.trace_sinks and dask is None else None
    if follower is not None:
        follower.start()
    ok = False
    try:
        segments, run.task_summaries = run_segments(
            scenario, plan.segments, plan.key, run.sinks, workers, run.parts_dir, progress,
            run.finished, dask=dask, stream=stream)
        ok = True
    finally:
        if follower is not None:
            follower.finish(ok)
            run.traces_sent = ok
    return segments


def _merge_ground_truth(result: RunResult, plan: RunPlan, segments: list[SegmentResult],
                       storefront: StorefrontConfig) -> None:
    """The segments' counts and state logs added up, and an incident record per fault and
    per change that showed symptoms, from their merged ground-truth minutes."""
    for seg in segments:
        for kind, n in seg.counts.items():
            result.counts[kind] = result.counts.get(kind, 0) + n
        result.state_log.extend(seg.state_log)
    minutes = merge_minutes(seg.minutes for seg in segments)
    records = build_incident_records(plan.faults, minutes, result.state_log, plan.origin)
    records += build_change_records(plan.changes, plan.faults, minutes, result.state_log, storefront,
                                    plan.origin)
    split_impact(records, minutes)
    annotate_leads(records, plan.changes, plan.distractors)
    records += distractor_records(plan.changes, plan.distractors, records)
    result.incidents = sorted(records, key=lambda r: r["fault_start"])  # stable: faults keep their order


def _judge_alerts(result: RunResult, run: _Run, segments: list[SegmentResult]) -> None:
    """The rules evaluated over every segment's cells, in time order; each alert linked to
    the incident it belongs to, or kept as a false alarm."""
    stops = [p.stop_epoch for p in run.plan.segments if p.stop_epoch is not None]
    until = min([run.plan.window.end.timestamp(), *stops])
    events = evaluate_run(alert_rules(run.scenario), merge_cells(s.alert_cells for s in segments),
                          run.plan.window.start.timestamp(), until)
    result.alerts = alert_docs(events)
    result.false_alarms = link_alerts(result.incidents, result.alerts)


def alerts_summary(alerts: list[dict[str, Any]], false_alarms: list[dict[str, Any]]) -> dict[str, Any]:
    """How many alerts fired, by severity, and which were false alarms."""
    fired = [a for a in alerts if a["alert"]["state"] == "active"]
    return {"fired": len(fired),
            "critical": sum(a["alert"]["severity"] == "critical" for a in fired),
            "warning": sum(a["alert"]["severity"] == "warning" for a in fired),
            "false_alarms": false_alarms}


def _emit_incidents(run: _Run, incidents: list[dict[str, Any]]) -> None:
    """Every incident record into the incident sinks (e.g. their own index)."""
    for record in incidents:
        for sink in run.incident_sinks:
            sink.emit(incident_doc_id(run.plan.key, record["incident_id"]), record)


def _stream_trace_files(run: _Run, files: list[str]) -> None:
    """The staged trace files into their sinks (each file's ids: a resent one is a 409),
    unless they were fed while the segments ran."""
    if run.traces_sent:
        return
    for name, sink in run.trace_sinks.items():
        staged = [Path(f) for f in files if Path(f).name == name]
        for path in staged:
            feed_part(path.with_name(path.name + ".partial"), [sink])


def _emit_alerts(run: _Run, alerts: list[dict[str, Any]]) -> None:
    """Every alert document into the alert sinks (their own index)."""
    for doc in alerts:
        for sink in run.alert_sinks:
            sink.emit(alert_doc_id(run.plan.key, doc), doc)


def _remove_parts(run: _Run) -> None:
    """The part directory goes on every exit path (its Dask dead letters kept first)."""
    if run.parts_dir is not None:
        _collect_dead_letters(run.parts_dir, run.run_dir or Path("."))
        shutil.rmtree(run.parts_dir, ignore_errors=True)


def _close_and_commit(run: _Run, result: RunResult, stream: StreamTarget | None,
                      t0: float) -> None:
    """Close every sink, then rename the run's files into place, or remove them when the
    run failed: a sink that fails or stops while closing (e.g. out of retries) fails the
    run too, as one that stopped while it ran: no file of the run is kept."""
    closed = False
    try:
        for sink in [*run.sinks, *run.incident_sinks, *run.alert_sinks,
                     *run.trace_sinks.values()]:
            # the NDJSON file is renamed into place with the others, below
            result.sinks.append(run.ndjson.summary if run.ok and sink is run.ndjson
                                else sink.close(run.ok))
        if stream is not None:
            result.sinks.append(merge_summaries("opensearch", run.task_summaries))
        closed = run.ok and not any(s.details.get("stopped") for s in result.sinks)
    finally:
        result.wall_time_s = time.perf_counter() - t0
        if run.output_dir is not None:
            _commit_files(run.output_dir, run.ndjson, result if closed else None)


def _staged_names(output_dir: Path) -> list[Path]:
    """Every file a run may stage beside all_data, plain or gzip."""
    return [output_dir / (n + gz) for n in ("incidents.ndjson", "alerts.ndjson", *SPLIT_NAMES)
            for gz in ("", ".gz")] + [output_dir / "run_summary.json"] + \
        [output_dir / n for n in TRACE_FILES]


def _stage_files(run: _Run, result: RunResult, write_summary: bool) -> list[str]:
    """Write every output file as ``.partial`` (nothing renamed yet: a full disk here leaves
    the previous run's files as they were); the files the run will have."""
    scenario, output_dir, ndjson = run.scenario, run.output_dir, run.ndjson
    incidents = result.incidents
    if output_dir is None or ndjson is None:
        return []
    ndjson.finish()
    files = [str(ndjson.path)]
    try:
        gz = ".gz" if scenario.output.gzip else ""
        write_incidents(output_dir / f"incidents.ndjson{gz}", incidents, commit=False)
        files.append(str(output_dir / f"incidents.ndjson{gz}"))
        if run.parts_dir is not None and scenario.output.traces.enabled:
            files.extend(stage_trace_files(run.plan.segments, run.parts_dir, output_dir))
        write_alerts(output_dir / f"alerts.ndjson{gz}", run.plan.key, result.alerts, commit=False)
        files.append(str(output_dir / f"alerts.ndjson{gz}"))
        if scenario.output.split_files:
            files.extend(str(p) for p in write_split_files(ndjson.partial, incidents,
                                                           commit=False, gz=bool(gz)))
    except OSError as exc:
        # all_data is complete: the split files need as much again, and the bytes per
        # window are known exactly
        raise WriteFailure(str(exc.filename or output_dir), exc.strerror or str(exc),
                           ndjson.partial.stat().st_size, run.plan.window.end.timestamp()) from None
    if write_summary:
        files.append(str(output_dir / "run_summary.json"))
    return files


def _commit_files(output_dir: Path, ndjson: NdjsonSink | None, result: RunResult | None) -> None:
    """Rename the run's files into place together (``result``), or remove them (None)."""
    staged = _staged_names(output_dir)
    error = None
    if result is not None and ndjson is not None:
        summary = output_dir / "run_summary.json"
        if str(summary) in result.files:
            try:
                summary.with_name(summary.name + ".partial").write_text(
                    json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")
            except OSError as exc:
                error = (f"{summary}: {exc.strerror or exc}; removed what this run wrote, "
                         "earlier files are untouched")
        if error is None:
            ndjson.close(True)
            for path in staged:
                if str(path) in result.files:
                    os.replace(path.with_name(path.name + ".partial"), path)
            return
    if ndjson is not None:
        ndjson.close(False)
    for path in staged:
        path.with_name(path.name + ".partial").unlink(missing_ok=True)
    if error is not None:
        raise OutputError(error)


def _disk_failure_line(run: _Run, exc: OSError | WriteFailure) -> str:
    """The one line for a failed write: measured before anything is removed. The estimate
    goes by what the failed file holds (bytes and how far in time), else, when nothing of
    it reached the disk, by what the NDJSON file was handed."""
    output_dir, scratch, ndjson = run.output_dir, run.parts_dir, run.ndjson
    failure = exc if isinstance(exc, WriteFailure) else \
        WriteFailure(str(exc.filename or output_dir or scratch), exc.strerror or str(exc), 0, None)
    ours = [*(output_dir.glob("*.partial") if output_dir is not None else ()),
            *(scratch.glob("*") if scratch is not None else ())]
    written = sum(p.stat().st_size for p in ours if p.is_file())
    lo, hi = run.plan.window.start.timestamp(), run.plan.window.end.timestamp()
    needed = estimate_run_bytes(run.scenario, lo, hi, failure.written, failure.reached,
                                failure.covers_from)
    if needed is None and ndjson is not None:
        needed = estimate_run_bytes(run.scenario, lo, hi, *ndjson.progress())
    return failure_message(failure, max(written, failure.written), needed)


def _collect_dead_letters(parts_dir: Path, into: Path) -> None:
    """Dask workers dead-letter per segment beside the parts: one file in the run's dir."""
    found = sorted(parts_dir.glob("dead_letter-*.ndjson"))
    if found:
        with open(into / "dead_letter.ndjson", "ab") as out:
            for path in found:
                out.write(path.read_bytes())


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def print_summary(result: RunResult, stream: Any = None) -> None:
    stream = stream or sys.stderr
    s = result.summary()
    print(f"scenario {s['scenario']} seed {s['seed']}: {s['window']['start']} .. "
          f"{s['window']['end']}", file=stream)
    for kind, n in s["counts"].items():
        print(f"  {kind:<24}{n:>12,}", file=stream)
    print(f"  {'total':<24}{s['total_documents']:>12,}  in {s['wall_time_s']:.1f} s wall",
          file=stream)
    for sink in s["sinks"]:
        print(f"  sink {sink['name']}: generated {sink['generated']:,} indexed "
              f"{sink['indexed']:,} already present {sink['already_present']:,} "
              f"dead-lettered {sink['dead_lettered']:,} unaccounted {sink['unaccounted']:,}"
              + (f" (not sent {sink.get('not_sent', 0):,}, sent without answer "
                 f"{sink.get('unconfirmed', 0):,})" if sink["unaccounted"] and "not_sent" in sink
                 else ""),
              file=stream)
    live = s.get("live")
    if live:
        print(f"  live: handoff {live['handoff']}, stopped {live['stopped']}, "
              f"at most {live['max_lag_s']:.1f} s behind the wall clock", file=stream)
        for f in live["runtime_faults"]:
            print(f"  runtime fault {f['id']}: {f['type']} {f['start']} .. {f['end']}",
                  file=stream)


def print_incidents(incidents: list[dict[str, Any]], stream: Any = None) -> None:
    """One short block per incident record, after the counts: what a newcomer looks for
    first (what broke, why, when it showed, what gave way first, what it cost)."""
    stream = stream or sys.stderr
    for rec in incidents:
        if not rec.get("distractor"):
            for line in incident_lines(rec):
                print(line, file=stream)
    distractors = [rec for rec in incidents if rec.get("distractor")]
    if distractors:
        print(f"  distractors ({len(distractors)}, leads that are not causes):", file=stream)
        for rec in distractors:
            print(f"    {distractor_line(rec)}", file=stream)


def distractor_line(rec: dict[str, Any]) -> str:
    """``HH:MM KIND ID on HOSTS: what`` of a distractor record, and the incident it precedes."""
    cause = rec["cause"]
    kind = cause.get("change_kind") or cause["kind"]
    hosts = cause.get("hosts") or []
    where = f" on {hosts[0]}" if len(hosts) == 1 else f" on {len(hosts)} hosts" if hosts else ""
    what = ", ".join(f"{s['name']} -> {s['new']}" for s in cause.get("settings", []))
    before = f" (just before {', '.join(rec['before_incident'])})" if rec.get("before_incident") else ""
    return f"{cause['at'][5:16].replace('T', ' ')} {kind} {rec['incident_id']}{where}" + \
        (f": {what}" if what else "") + before


def incident_lines(rec: dict[str, Any]) -> list[str]:
    """An incident record (sim.truth.records) as the summary prints it."""
    lines = [f"  incident {rec['incident_id']}: {rec['incident_type']}",
             f"    {'cause':<17}{_cause_text(rec)}"]
    if not rec.get("observed"):
        return [*lines, f"    {'symptoms':<17}none observed: no minute stood out from normal"]
    lines.append(f"    {'symptoms':<17}{_span(rec['symptom_start'], rec['symptom_end'])} UTC "
                 f"({rec['duration_min']:g} min)")
    first = rec.get("first_saturated")
    if first:
        lines.append(f"    {'first saturated':<17}{first['component']} {first['event']} at "
                     f"{first['at'][11:19]} ({first['detail']})")
    impact = rec["impact"]
    lines.append(f"    {'impact':<17}{impact['errors']:,} failed requests of "
                 f"{impact['requests']:,}, {impact['failed_orders']:,} failed orders "
                 f"({impact['lost_revenue']:,.2f} revenue lost)")
    return lines


def _cause_text(rec: dict[str, Any]) -> str:
    """``fault TYPE magnitude M [on TARGET], START .. END``, or for a cause of another kind
    (e.g. a change) its kind and id."""
    cause = rec.get("cause") or {}
    kind = cause.get("kind", "fault")
    if kind == "fault":
        what = f"fault {cause['fault_type']} magnitude {cause['magnitude']:g}"
        if cause.get("target"):
            what += f" on {cause['target']}"
    else:
        what = f"{kind} {cause.get('id', '?')}"
    start, end = rec.get("fault_start"), rec.get("fault_end")
    return f"{what}, {_span(start, end)} UTC" if start and end else what


def _span(start: str, end: str) -> str:
    """Two ISO times as ``2026-11-27 14:25 .. 14:40`` (the end's date only when it differs)."""
    end_text = end[11:16] if end[:10] == start[:10] else f"{end[:10]} {end[11:16]}"
    return f"{start[:10]} {start[11:16]} .. {end_text}"
