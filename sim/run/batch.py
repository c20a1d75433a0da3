"""The run lifecycle: plan segments, simulate them, feed the sinks, always close and summarise.

Like desmod's simulate(): whatever happens inside, the ``finally`` closes every sink (a
failed run leaves no complete-looking file behind) and the summary says what was written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
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

import numpy as np

from sim.config import Scenario
from sim.core.clock import Window, resolve_time_expression, resolve_window
from sim.model.faults import ActiveFault, active_fault
from sim.model.random_incidents import draw_random_incidents
from sim.model.traffic import DailySchedule
from sim.outputs.files import OutputError, WriteFailure
from sim.outputs.ndjson import NdjsonSink
from sim.outputs.sink import EventSink, SinkStopped, SinkSummary
from sim.run import workspace
from sim.run.disk import estimate_run_bytes, failure_message
from sim.run.parallel import (
    StreamTarget,
    default_workers,
    in_process,
    merge_summaries,
    run_segments,
)
from sim.run.segment import SegmentPlan, SegmentResult
from sim.telemetry.minutes import BASELINE_S, TRAILING_S, Minute, merge_minutes
from sim.truth.records import SPLIT_NAMES, build_incident_records, write_incidents, write_split_files

DRAIN_S = 180.0


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
                 "start": _iso(f.start_epoch), "end": _iso(f.end_epoch),
                 "magnitude": f.magnitude, "target": f.target}
                for f in self.faults
            ],
            "sinks": [
                {"name": s.name, "generated": s.generated, "indexed": s.indexed,
                 "already_present": s.already_present, "dead_lettered": s.dead_lettered,
                 "unaccounted": s.unaccounted, **s.details}
                for s in self.sinks
            ],
            "files": self.files,
            **({"live": self.live} if self.live else {}),
            "wall_time_s": round(self.wall_time_s, 2),
        }


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


def resolve_run_window(scenario: Scenario, today: dt.date) -> Window:
    w = scenario.window
    return resolve_window(w.days, today, w.start, w.end)


def resolve_faults(scenario: Scenario, today: dt.date) -> list[ActiveFault]:
    """The scenario's pinned faults in absolute time."""
    return [active_fault(f, f"{scenario.name}-f{i + 1}",
                         resolve_time_expression(f.start, today).timestamp())
            for i, f in enumerate(scenario.faults)]


def in_window(fault: ActiveFault, window: Window) -> bool:
    """Whether any of the fault's time lies inside the simulated window."""
    return fault.end_epoch > window.start.timestamp() and fault.start_epoch < window.end.timestamp()


def faults_outside_window(scenario: Scenario, today: dt.date) -> list[str]:
    """A warning per pinned fault that the run ignores because it lies outside the window:
    ``faults[i]: ...`` (the caller adds the file name)."""
    window = resolve_run_window(scenario, today)
    return [f"faults[{i}]: {_iso(f.start_epoch)} .. {_iso(f.end_epoch)} lies outside the window "
            f"{_iso(window.start.timestamp())} .. {_iso(window.end.timestamp())}; it is ignored"
            for i, f in enumerate(resolve_faults(scenario, today)) if not in_window(f, window)]


SPLIT_CLEARANCE_S = 45 * 60.0  # keep splits this far from any fault (and its recovery)
MIN_SEGMENT_S = 3 * 3600.0


def split_points(scenario: Scenario, window: Window, faults: list[ActiveFault]) -> list[float]:
    """Where the window is cut into independently simulated segments (epoch seconds).

    At every UTC midnight (the quietest time), and inside each day where half of that
    day's expected traffic has arrived, so two cores share a day evenly. A split is moved
    away from any fault so that no incident is ever cut; the warm-up of the segment after
    it restores steady state. Depends on the scenario only, never on the worker count.
    """
    t = scenario.traffic
    schedule = DailySchedule(t.base_tps, t.peak_multiplier, t.weekend_factor)
    lo, hi = window.start.timestamp(), window.end.timestamp()
    points = []
    for part in window.segments():
        a, b = part.start.timestamp(), part.end.timestamp()
        if b - a >= 2 * MIN_SEGMENT_S:
            steps = np.arange(a, b, 60.0)
            load = np.cumsum([schedule.rate(x) for x in steps])
            mid = float(steps[int(np.searchsorted(load, load[-1] / 2))])
            mid = _clear_of_faults(mid, faults, a + MIN_SEGMENT_S, b - MIN_SEGMENT_S)
            if mid is not None:
                points.append(mid)
        if b < hi:
            points.append(b)
    return sorted(p for p in points if lo < p < hi)


def _clear_of_faults(t: float, faults: list[ActiveFault], earliest: float,
                     latest: float) -> float | None:
    """The time nearest ``t`` within [earliest, latest] that no fault is near, if any."""
    for shift in range(0, int(latest - earliest) + 1, 300):
        for cand in (t - shift, t + shift):
            if earliest <= cand <= latest and all(
                    cand < f.start_epoch - SPLIT_CLEARANCE_S or cand > f.end_epoch + SPLIT_CLEARANCE_S
                    for f in faults):
                return cand
    return None


def plan_segments(scenario: Scenario, window: Window, faults: list[ActiveFault],
                  engine: str = "fast") -> list[SegmentPlan]:
    return plans_from_splits(scenario, window, split_points(scenario, window, faults), faults,
                             engine)


def plans_from_splits(scenario: Scenario, window: Window, splits: Sequence[float],
                      faults: list[ActiveFault], engine: str = "fast") -> list[SegmentPlan]:
    warmup = scenario.window.warmup_minutes * 60.0
    edges = [window.start, *(dt.datetime.fromtimestamp(p, dt.UTC) for p in splits), window.end]
    plans = []
    for i, (start, end) in enumerate(zip(edges, edges[1:], strict=False)):
        part = Window(start, end)
        lo = part.start.timestamp() - warmup
        hi = part.end.timestamp() + DRAIN_S
        # a segment also gets the faults whose aftermath it may hold, for the ground truth
        active = tuple(f for f in faults
                       if f.start_epoch - BASELINE_S < hi and f.end_epoch + TRAILING_S > lo)
        plans.append(SegmentPlan(i, part, warmup, active, engine))
    return plans


@dataclass(frozen=True)
class PinnedPlan:
    """What a live run decided while it ran, so a batch run can repeat it exactly: its
    splits (those before the wall clock when it started), where it stopped, and the faults
    applied at runtime (they belong to the last segment only, the one that ran live)."""

    splits: tuple[float, ...]
    stop_epoch: float | None = None
    runtime_faults: tuple[ActiveFault, ...] = ()


def pinned_plans(scenario: Scenario, window: Window, faults: list[ActiveFault],
                 pinned: PinnedPlan, engine: str = "fast") -> list[SegmentPlan]:
    """The segments of a live run (its last one is the live segment)."""
    plans = plans_from_splits(scenario, window, pinned.splits, faults, engine)
    last = plans[-1]
    plans[-1] = dataclasses.replace(
        last, faults=tuple(with_runtime(list(last.faults), pinned.runtime_faults)),
        stop_epoch=pinned.stop_epoch)
    return plans


def with_runtime(base: list[ActiveFault], runtime: Sequence[ActiveFault]) -> list[ActiveFault]:
    """The live segment's faults in the order their factors add up (live and replay alike)."""
    return sorted([*base, *runtime], key=lambda f: f.start_epoch)


def run_key(scenario: Scenario, window: Window) -> str:
    """Part of every document id: same scenario, seed and window -> same ids."""
    text = f"{scenario.name}|{scenario.seed}|{window.start.isoformat()}|{window.end.isoformat()}"
    return hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


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
) -> RunResult:
    """Run a whole scenario. Files land in ``output_dir`` (None: no files).

    ``workers`` processes simulate segments in parallel (default: all cores), or the tasks
    of the Dask scheduler at ``dask`` (streaming into ``stream`` themselves); the output is
    the same for any number and either backend. ``run_dir`` (default ``output_dir``) holds
    the run's lock and part files; ``resume`` continues a killed run from them
    (``sim.run.workspace``). ``pinned`` repeats a live run (sim.live.loop) as a batch."""
    t0 = time.perf_counter()
    window = resolve_run_window(scenario, today)
    pinned_faults = [f for f in resolve_faults(scenario, today) if in_window(f, window)]
    drawn = draw_random_incidents(scenario, window, pinned_faults)
    faults = sorted(pinned_faults + drawn, key=lambda f: f.start_epoch)
    if pinned is None:
        plans = plan_segments(scenario, window, faults, engine)
    else:
        plans = pinned_plans(scenario, window, faults, pinned, engine)
        faults = with_runtime(faults, pinned.runtime_faults)
        if pinned.stop_epoch is not None:  # the live run stopped before these began
            faults = [f for f in faults if f.start_epoch < pinned.stop_epoch]
    key = run_key(scenario, window)
    result = RunResult(scenario.name, scenario.seed, window, faults=faults)
    minutes: list[dict[int, Minute]] = []
    sinks: list[EventSink] = list(extra_sinks)
    ndjson: NdjsonSink | None = None
    ext = ".ndjson.gz" if scenario.output.gzip else ".ndjson"
    run_dir = run_dir or output_dir
    parts_dir: Path | None = None
    finished: dict[int, SegmentResult] = {}  # segments a resumed run takes from their records
    task_summaries: list[SinkSummary] = []
    ok = False
    with contextlib.ExitStack() as held:
        try:
            if run_dir is not None:  # before any file is opened: one live run per directory
                held.enter_context(workspace.locked(run_dir))
                ident = workspace.identity(scenario, window, key, plans)
                if resume:
                    parts_dir, finished = workspace.resumed_parts(run_dir, ident, plans)
                else:
                    parts_dir, finished = workspace.fresh_parts(run_dir, ident), {}
            elif resume:
                raise workspace.RunDirError("--resume needs an output directory")
            if output_dir is not None:
                ndjson = NdjsonSink(output_dir / f"all_data{ext}")
                sinks.insert(0, ndjson)
            workers = workers or default_workers()
            if parts_dir is None and dask is None and workers <= 1:
                segments = [in_process(scenario, plan, key, sinks, progress) for plan in plans]
            else:
                if parts_dir is None:
                    parts_dir = Path(tempfile.mkdtemp(prefix="storefront-sim-"))
                segments, task_summaries = run_segments(
                    scenario, plans, key, sinks, workers, parts_dir, progress, finished,
                    dask=dask, stream=stream)
            for seg in segments:
                for kind, n in seg.counts.items():
                    result.counts[kind] = result.counts.get(kind, 0) + n
                result.state_log.extend(seg.state_log)
                minutes.append(seg.minutes)
            origin = {f.fault_id: "random" for f in drawn}
            if pinned is not None:
                origin.update({f.fault_id: "runtime" for f in pinned.runtime_faults})
            result.incidents = build_incident_records(faults, merge_minutes(minutes),
                                                      result.state_log, origin)
            for record in result.incidents:
                for sink in incident_sinks:
                    sink.emit(f"{key}-{record['incident_id']}", record)
            if ndjson is not None and output_dir is not None:
                result.files = _stage_files(scenario, window, output_dir, ndjson,
                                            result.incidents, write_summary)
            ok = True
        except SinkStopped:
            pass  # a sink cannot go on (its summary says why): the run stops here, as failed
        except (OSError, WriteFailure) as exc:  # a write failed: disk full, size limit, read-only
            raise OutputError(_disk_failure_line(scenario, window, output_dir, parts_dir, ndjson,
                                                 exc)) from None
        finally:
            if parts_dir is not None:
                _collect_dead_letters(parts_dir, run_dir or Path("."))
                shutil.rmtree(parts_dir, ignore_errors=True)
            closed = False
            try:
                for sink in [*sinks, *incident_sinks]:
                    # the NDJSON file is renamed into place with the others, below
                    result.sinks.append(sink.summary if ok and sink is ndjson else sink.close(ok))
                if stream is not None:
                    result.sinks.append(merge_summaries("opensearch", task_summaries))
                # a sink that stopped while closing (e.g. out of retries) fails the run too,
                # as one that stopped while it ran: no file of the run is kept
                closed = ok and not any(s.details.get("stopped") for s in result.sinks)
            finally:  # a sink that fails to close fails the run: no file of it is kept
                result.wall_time_s = time.perf_counter() - t0
                if output_dir is not None:
                    _commit_files(output_dir, ndjson, result if closed else None)
    return result


def _staged_names(output_dir: Path) -> list[Path]:
    """Every file a run may stage beside all_data, plain or gzip."""
    return [output_dir / (n + gz) for n in ("incidents.ndjson", *SPLIT_NAMES)
            for gz in ("", ".gz")] + [output_dir / "run_summary.json"]


def _stage_files(scenario: Scenario, window: Window, output_dir: Path, ndjson: NdjsonSink,
                 incidents: list[dict[str, Any]], write_summary: bool) -> list[str]:
    """Write every output file as ``.partial`` (nothing renamed yet: a full disk here leaves
    the previous run's files as they were); the files the run will have."""
    ndjson.finish()
    files = [str(ndjson.path)]
    try:
        gz = ".gz" if scenario.output.gzip else ""
        write_incidents(output_dir / f"incidents.ndjson{gz}", incidents, commit=False)
        files.append(str(output_dir / f"incidents.ndjson{gz}"))
        if scenario.output.split_files:
            files.extend(str(p) for p in write_split_files(ndjson.partial, incidents,
                                                           commit=False, gz=bool(gz)))
    except OSError as exc:
        # all_data is complete: the split files need as much again, and the bytes per
        # window are known exactly
        raise WriteFailure(str(exc.filename or output_dir), exc.strerror or str(exc),
                           ndjson.partial.stat().st_size, window.end.timestamp()) from None
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


def _disk_failure_line(scenario: Scenario, window: Window, output_dir: Path | None,
                       scratch: Path | None, ndjson: NdjsonSink | None,
                       exc: OSError | WriteFailure) -> str:
    """The one line for a failed write: measured before anything is removed. The estimate
    goes by what the failed file holds (bytes and how far in time), else, when nothing of
    it reached the disk, by what the NDJSON file was handed."""
    failure = exc if isinstance(exc, WriteFailure) else \
        WriteFailure(str(exc.filename or output_dir or scratch), exc.strerror or str(exc), 0, None)
    ours = [*(output_dir.glob("*.partial") if output_dir is not None else ()),
            *(scratch.glob("*") if scratch is not None else ())]
    written = sum(p.stat().st_size for p in ours if p.is_file())
    lo, hi = window.start.timestamp(), window.end.timestamp()
    needed = estimate_run_bytes(scenario, lo, hi, failure.written, failure.reached,
                                failure.covers_from)
    if needed is None and ndjson is not None:
        needed = estimate_run_bytes(scenario, lo, hi, *ndjson.progress())
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
