"""The run lifecycle: plan segments, simulate them, feed the sinks, always close and summarise.

Like desmod's simulate(): whatever happens inside, the ``finally`` closes every sink (a
failed run leaves no complete-looking file behind) and the summary says what was written.
"""

from __future__ import annotations

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

from sim.clock import Window, resolve_time_expression, resolve_window
from sim.config import Scenario
from sim.faults import DEFAULT_MAGNITUDE, DEFAULT_TARGET, INCIDENT_TYPE, ActiveFault
from sim.groundtruth import (
    BASELINE_S,
    TRAILING_S,
    Minute,
    build_incident_records,
    merge_minutes,
    write_incidents,
    write_split_files,
)
from sim.incidents import draw_random_incidents
from sim.parallel import default_workers, run_segments
from sim.segment import SegmentPlan
from sim.sinks.base import EventSink, SinkSummary
from sim.sinks.ndjson import NdjsonSink
from sim.traffic import DailySchedule

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
            "wall_time_s": round(self.wall_time_s, 2),
        }


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


def resolve_run_window(scenario: Scenario, today: dt.date) -> Window:
    w = scenario.window
    return resolve_window(w.days, today, w.start, w.end)


def resolve_faults(scenario: Scenario, today: dt.date) -> list[ActiveFault]:
    """The scenario's pinned faults in absolute time."""
    faults = []
    for i, f in enumerate(scenario.faults):
        start = resolve_time_expression(f.start, today).timestamp()
        faults.append(ActiveFault(
            fault_id=f"{scenario.name}-f{i + 1}",
            type=f.type,
            start_epoch=start,
            end_epoch=start + f.duration_minutes * 60.0,
            ramp_s=f.ramp_minutes * 60.0,
            magnitude=DEFAULT_MAGNITUDE[f.type] if f.magnitude is None else f.magnitude,
            target=f.target if f.target is not None else DEFAULT_TARGET[f.type],
            incident_type=f.incident_type or INCIDENT_TYPE[f.type],
        ))
    return faults


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
    warmup = scenario.window.warmup_minutes * 60.0
    edges = [window.start, *(dt.datetime.fromtimestamp(p, dt.UTC)
                             for p in split_points(scenario, window, faults)), window.end]
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
) -> RunResult:
    """Run a whole scenario. Files land in ``output_dir`` (None: no files).

    ``workers`` processes simulate segments in parallel (default: all cores); the output
    is the same for any number."""
    t0 = time.perf_counter()
    window = resolve_run_window(scenario, today)
    lo, hi = window.start.timestamp(), window.end.timestamp()
    pinned = [f for f in resolve_faults(scenario, today) if f.end_epoch > lo and f.start_epoch < hi]
    drawn = draw_random_incidents(scenario, window, pinned)
    faults = sorted(pinned + drawn, key=lambda f: f.start_epoch)
    plans = plan_segments(scenario, window, faults, engine)
    result = RunResult(scenario.name, scenario.seed, window, faults=faults)
    minutes: list[dict[int, Minute]] = []
    sinks: list[EventSink] = []
    ndjson: NdjsonSink | None = None
    ext = ".ndjson.gz" if scenario.output.gzip else ".ndjson"
    if output_dir is not None:
        ndjson = NdjsonSink(output_dir / f"all_data{ext}")
        sinks.append(ndjson)
    sinks.extend(extra_sinks)
    scratch = Path(tempfile.mkdtemp(prefix=".segments-", dir=output_dir)) if output_dir else \
        Path(tempfile.mkdtemp(prefix="storefront-sim-"))
    ok = False
    try:
        segments = run_segments(scenario, plans, run_key(scenario, window), sinks,
                                workers or default_workers(), scratch, progress)
        for seg in segments:
            for kind, n in seg.counts.items():
                result.counts[kind] = result.counts.get(kind, 0) + n
            result.state_log.extend(seg.state_log)
            minutes.append(seg.minutes)
        origin = {f.fault_id: "random" for f in drawn}
        result.incidents = build_incident_records(faults, merge_minutes(minutes),
                                                  result.state_log, origin)
        key = run_key(scenario, window)
        for record in result.incidents:
            for sink in incident_sinks:
                sink.emit(f"{key}-{record['incident_id']}", record)
        ok = True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for sink in [*sinks, *incident_sinks]:
            result.sinks.append(sink.close(ok))
        result.wall_time_s = time.perf_counter() - t0
        if ok and ndjson is not None and output_dir is not None:
            result.files.append(str(ndjson.path))
            write_incidents(output_dir / f"incidents{ext}", result.incidents)
            result.files.append(str(output_dir / f"incidents{ext}"))
            if scenario.output.split_files:
                for path in write_split_files(ndjson.path, result.incidents):
                    result.files.append(str(path))
            if write_summary:
                result.files.append(str(output_dir / "run_summary.json"))
                write_json_atomic(output_dir / "run_summary.json", result.summary())
    return result


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
              f"dead-lettered {sink['dead_lettered']:,} unaccounted {sink['unaccounted']:,}",
              file=stream)
