"""Live mode: backfill the window up to the wall clock, then keep the same storefront running
in real time, one wall-clock bucket at a time.

Why it looks like this:

* The segments before the one holding "now" are simulated as in a batch run (in parallel,
  fed to the sinks in order). The last segment is built here, in this process, and stepped:
  first in large steps until it reaches the wall clock (the handoff), then one bucket at a
  time. It is one storefront throughout: no new warm-up, no seam at the handoff.
* A bucket is simulated once the wall clock has passed its end, so no document is dated
  after the wall clock; the sinks are flushed after every bucket.
* Faults changed at runtime come from a *fault source* (``ControlFile.poll`` of
  sim.live.control, or a test's function) polled at every bucket boundary. They take effect at
  that boundary (a traffic surge at the first arrival block not yet drawn) and are pinned
  with those times, so ``replay.yaml`` repeats the run as a batch with the same bytes
  (``storefront-sim replay``; see ``sim.run.plan.PinnedPlan``).
* A sink that cannot keep up blocks ``emit`` (back-pressure); the loop then falls behind
  the wall clock and catches up without sleeping once it can. The summary reports the lag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson
import yaml

from sim.config import Scenario
from sim.core.clock import Window
from sim.live.alerts import LiveAlerts
from sim.model.changes import ActiveChange, change_summary
from sim.model.faults import ActiveFault
from sim.outputs.ndjson import NdjsonSink
from sim.outputs.sink import EventSink
from sim.run.batch import RunResult, write_json_atomic
from sim.run.parallel import customers_for, default_workers, run_segments, sink_emitter
from sim.run.plan import (
    PinnedPlan,
    clear_of_faults,
    iso_utc,
    pinned_plans,
    resolve_changes,
    resolve_run_window,
    run_faults,
    run_key,
    split_points,
    with_runtime,
)
from sim.run.segment import SegmentResult, SegmentRun
from sim.telemetry.encoding import incident_doc_id
from sim.telemetry.minutes import (
    BASELINE_S,
    CHANGE_HORIZON_S,
    TRAILING_S,
    Minute,
    minutes_needed,
)
from sim.truth.overlap import split_impact
from sim.truth.records import annotate_leads, build_change_records, build_incident_records, write_split_files

CATCH_UP_STEP_S = 60.0  # before the handoff: simulated seconds per step
LIVE_LEAD_S = 30 * 60.0  # the live segment starts about this long before the wall clock...
MIN_LIVE_LEAD_S = 3600.0  # ...when the segment before it is at least this long
RECORD_MARGIN_S = 600.0  # after a fault's trailing window, before its record is final
LAG_NOTICE_S = 10.0  # say so when the run is this far behind the wall clock


class Clock(Protocol):
    """Wall-clock time; tests pass a fake one whose ``sleep`` only moves its time on."""

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FaultUpdate(NamedTuple):
    """What a fault source returns at a bucket boundary (the shape of sim.live.control's
    ControlUpdate): every runtime fault known so far, whether that changed, a one-line
    error to log (the previous faults then stay), and every runtime change known so far
    (one is made, for good, in the bucket its epoch falls in)."""

    faults: tuple[ActiveFault, ...]
    changed: bool
    error: str | None
    changes: tuple[ActiveChange, ...] = ()


# boundary epoch -> FaultUpdate-like: a function, or an object with ``poll`` (and, to show
# what the run applies, ``write_state(boundary_epoch, other_faults)``) such as ControlFile
FaultSource = Any
STATE_EVERY_S = 1.0  # wall-clock seconds between two writes of the fault source's state


def control_fault_source(path: Path, scenario: Scenario, today: dt.date) -> FaultSource | None:
    """The control file's reader as the live loop's fault source (the only place that
    knows sim.live.control); None when this build has no control file reader."""
    try:
        from sim.live.control import ControlFile  # type: ignore[import-not-found]
    except ImportError:
        return None
    return ControlFile(path, scenario, today)


@dataclass
class LiveOptions:
    speed: float = 1.0  # simulated seconds per wall-clock second
    bucket_s: float = 1.0
    clock: Clock = field(default_factory=WallClock)
    fault_source: FaultSource | None = None
    on_handoff: Callable[[], None] | None = None  # e.g. end the index's bulk-load settings
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    handle_signals: bool = True  # SIGINT/SIGTERM stop at the next bucket


class LiveWindowError(ValueError):
    """The window cannot run live (it ended before the wall clock)."""


@dataclass
class _RuntimeFault:
    source: ActiveFault  # as the fault source last gave it
    pinned: ActiveFault  # as the simulation applies it


def pin_runtime_fault(prev: _RuntimeFault | None, new: ActiveFault | None, floor: float,
                      drawn: float | None = None) -> ActiveFault | None:
    """The fault as the simulation can still apply it at simulated time ``floor``: nothing
    before ``floor`` changes (the past is simulated). A fault not started yet may change in
    every way; a running one may only end (earlier or later, but not before ``floor``); an
    ended one stays as it was. ``new`` None: it disappeared from the source (ends now).
    ``drawn``: a traffic surge cannot touch arrivals drawn up to then, so it is delayed to
    that time (keeping its duration) or ends no earlier."""
    if prev is not None and new == prev.source:
        return prev.pinned  # unchanged: pinned once, never moved again
    limit = floor if drawn is None else max(floor, drawn)
    old = prev.pinned if prev is not None else None
    if old is None or old.start_epoch >= floor:  # new, or not started yet
        if new is None:
            return None
        start = max(new.start_epoch, floor)
        end = max(new.end_epoch, start)
        if start < limit:
            end += limit - start
            start = limit
        return _replace(new, start, end)
    if old.end_epoch <= floor:  # over
        return old
    end = floor if new is None else new.end_epoch
    if new is not None and prev is not None and end == prev.source.end_epoch:
        return old
    return _replace(old, old.start_epoch, max(end, limit))


def _replace(f: ActiveFault, start: float, end: float) -> ActiveFault:
    return ActiveFault(f.fault_id, f.type, start, end, f.ramp_s, f.magnitude, f.target,
                       f.incident_type)


class LiveRun:
    """One live run: ``run()`` backfills, runs live until stopped, and returns the result."""

    def __init__(self, scenario: Scenario, today: dt.date, output_dir: Path | None,
                 extra_sinks: Iterable[EventSink] = (), incident_sinks: Sequence[EventSink] = (),
                 workers: int | None = None, engine: str = "fast",
                 options: LiveOptions | None = None,
                 progress: Callable[[float], None] | None = None,
                 alert_sinks: Sequence[EventSink] = ()) -> None:
        self.scenario = scenario
        self.today = today
        self.output_dir = output_dir
        self.extra_sinks = list(extra_sinks)
        self.incident_sinks = list(incident_sinks)
        self.alert_sinks = list(alert_sinks)
        self.workers = workers or default_workers()
        self.engine = engine
        self.options = options or LiveOptions()
        self.progress = progress
        self._stop = threading.Event()
        self._runtime: dict[str, _RuntimeFault] = {}
        self._known_changes: tuple[ActiveChange, ...] = ()  # as the source last gave them
        self._made: list[tuple[float, ActiveChange]] = []  # (boundary scheduled at, change)
        self._judged: set[str] = set()  # changes whose record is written, or that have none
        self._last_error: str | None = None  # logged once, not at every bucket
        self._state_written = -math.inf
        self.max_lag_s = 0.0
        self._behind = False  # said so; say when caught up
        self.window = resolve_run_window(scenario, today)
        if self.window.end.timestamp() <= self.options.clock.time():
            raise LiveWindowError(
                f"window ends {iso_utc(self.window.end.timestamp())}, before the wall clock: "
                "nothing to run live (drop --live, or give a later --end)")

    def request_stop(self) -> None:
        """Stop at the next bucket boundary (what SIGINT and SIGTERM do)."""
        self._stop.set()

    # ------------------------------------------------------------------ plan
    def _plan(self) -> None:
        scenario, window = self.scenario, self.window
        self.faults, self.origin = run_faults(scenario, self.today, window)
        changes = resolve_changes(scenario, self.today)
        now = self.options.clock.time()
        splits = [p for p in split_points(scenario, window, self.faults, changes) if p <= now]
        # the live segment starts shortly before now, so this process has little to catch
        # up with while the earlier segments run on the workers (clear of any fault)
        earliest = max([window.start.timestamp(), *splits]) + MIN_LIVE_LEAD_S
        if now - LIVE_LEAD_S > earliest:
            split = clear_of_faults(_grid(now - LIVE_LEAD_S, 60.0), self.faults, earliest,
                                    now - LIVE_LEAD_S, changes)
            if split is not None:  # and the backfill is cut as a batch run of it would be
                backfill = Window(window.start, dt.datetime.fromtimestamp(split, dt.UTC))
                splits = [*split_points(scenario, backfill, self.faults, changes), split]
        self.splits = tuple(splits)
        self.changes = changes
        self.plans = pinned_plans(scenario, window, self.faults, PinnedPlan(self.splits),
                                  self.engine, changes)
        self.key = run_key(scenario, window)

    def _faults_before(self, stop_epoch: float) -> list[ActiveFault]:
        return [f for f in with_runtime(list(self.faults), self.runtime_faults())
                if f.start_epoch < stop_epoch]

    def all_changes(self) -> list[ActiveChange]:
        """The scenario's changes and those made at runtime, in time order (as its replay's
        plan has them: ``sim.run.plan.plan_run``)."""
        return sorted([*self.changes, *(c for _, c in self._made)], key=lambda c: c.epoch)

    def runtime_faults(self) -> list[ActiveFault]:
        return [r.pinned for r in self._runtime.values()]

    def pinned_plan(self, stop_epoch: float | None) -> PinnedPlan:
        return PinnedPlan(self.splits, stop_epoch, tuple(self.runtime_faults()), tuple(self._made))

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        t0 = time.perf_counter()
        self._plan()
        result = RunResult(self.scenario.name, self.scenario.seed, self.window,
                           faults=list(self.faults))
        out = self.output_dir
        ndjson = NdjsonSink(out / "all_data.ndjson", in_place=True) if out is not None else None
        sinks: list[EventSink] = [ndjson] if ndjson is not None else []
        sinks.extend(self.extra_sinks)
        self.sinks = sinks
        self._incidents_fh = open(out / "incidents.ndjson", "wb") if out else None  # noqa: SIM115
        self._written: dict[str, dict[str, Any]] = {}
        self.alerts = LiveAlerts(self.scenario, self.key, self.window.start.timestamp(), out,
                                 self.alert_sinks)
        scratch = Path(tempfile.mkdtemp(prefix=".segments-", dir=out)) if out else \
            Path(tempfile.mkdtemp(prefix="storefront-sim-"))
        ok = False
        stop_epoch: float | None = None
        try:
            if out is not None:
                self._write_replay(None)
            # SIGTERM stops at the first bucket after the backfill; SIGINT (a terminal's ^C
            # also reaches the workers) aborts the backfill as in a batch run
            with self._signals(signal.SIGTERM):
                backfill = run_segments(self.scenario, self.plans[:-1], self.key, sinks,
                                        self.workers, scratch, self.progress)[0] \
                    if len(self.plans) > 1 else []
                with self._signals(signal.SIGINT):
                    seg, live_result, stop_epoch = self._run_live_segment(backfill)
            segments = [*backfill, live_result]
            for s in segments:
                for kind, n in s.counts.items():
                    result.counts[kind] = result.counts.get(kind, 0) + n
                result.state_log.extend(s.state_log)
            self._write_due_records(lambda: segments, math.inf, stop_epoch)
            ok = True
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            for sink in [*sinks, *self.incident_sinks, *self.alert_sinks]:
                result.sinks.append(sink.close(ok))
            if self._incidents_fh is not None:
                self._incidents_fh.close()
            self.alerts.close()
            result.faults = self._faults_before(math.inf if stop_epoch is None else stop_epoch)
            result.incidents = sorted(self._written.values(),
                                      key=lambda r: (r["fault_start"], r["incident_id"]))
            result.alerts, result.false_alarms = self.alerts.docs, self.alerts.link(result.incidents)
            result.live = self._live_summary(stop_epoch)
            result.wall_time_s = time.perf_counter() - t0
            if out is not None:
                self._write_replay(stop_epoch)
                result.files += [str(out / "all_data.ndjson"), str(out / "incidents.ndjson"),
                                 str(out / "alerts.ndjson"), str(out / "replay.yaml")]
                if ok and self.scenario.output.split_files:
                    for path in write_split_files(out / "all_data.ndjson", result.incidents):
                        result.files.append(str(path))
                if ok:
                    result.files.append(str(out / "run_summary.json"))
                    write_json_atomic(out / "run_summary.json", result.summary())
        return result

    def _run_live_segment(self, backfill: list[SegmentResult]
                          ) -> tuple[SegmentRun, SegmentResult, float]:
        """Step the last segment up to the wall clock (the handoff), then one bucket at a
        time behind it, until stopped or the window ends; then drain it."""
        opts = self.options
        clock, speed, bucket = opts.clock, opts.speed, opts.bucket_s
        seg = self._build_live_segment()
        self.alerts.backfilled([s.alert_cells for s in backfill])
        hi = self.window.end.timestamp()
        window_start = seg.plan.window.start.timestamp()
        anchor = [0.0, 0.0]  # (simulated, wall) time of the handoff

        def target() -> float:
            """The simulated time the wall clock has reached: the wall clock itself until
            the handoff (the warm-up of a window that starts later runs at once), then
            ``speed`` times as fast from there."""
            if self.handoff is None:
                return max(clock.time(), window_start)
            return anchor[0] + (clock.time() - anchor[1]) * speed

        b = seg.now_epoch()
        self.handoff: float | None = None
        while b < hi and not self._stop.is_set():
            t = target()
            if self.handoff is None:
                if t - b > 2 * bucket:  # still catching up: large steps, no buckets
                    nxt = min(_grid(b + CATCH_UP_STEP_S, bucket), _grid(t, bucket), hi)
                    b = self._advance(seg, nxt if nxt > b else min(b + bucket, hi))
                    continue
                self.handoff = b
                anchor[:] = [b, max(clock.time(), b)]  # a later window: wait for it
                self._go_live()
                t = target()
            nxt = min(_grid(b, bucket) + bucket, hi)
            if nxt > t:
                self._note_lag(None)
                clock.sleep((nxt - t) / speed)
                continue
            self._note_lag(t - nxt)
            self._poll_faults(seg, b)
            self._make_changes(seg, b, nxt)
            b = self._advance(seg, nxt)
            self.alerts.advance(seg.alerts.cells, b)
            _flush(self.sinks)
            self._write_due_records(lambda: [*backfill, self._partial(seg)], b)
        if self.handoff is None:  # stopped (or the window ended) before reaching the clock
            self.handoff = b
        seg.stop(b)
        finished = seg.finish()
        self.alerts.advance(finished.alert_cells, b, final=True)
        return seg, finished, b

    def _build_live_segment(self) -> SegmentRun:
        """The last segment, built here to be stepped; its ground-truth minutes are kept as
        ``_advance`` needs them."""
        plan = self.plans[-1]
        seg = SegmentRun(self.scenario, plan, customers_for(self.scenario),
                         sink_emitter(self.key, plan.index, self.sinks), live=True)
        self.seg = seg
        self._base_faults = list(plan.faults)
        self._base_needed = set(seg.minutes.keep)
        self._keep_needed = set(self._base_needed)
        self._keep_next = int(seg.now_epoch() // 60)
        return seg

    def _note_lag(self, lag: float | None) -> None:
        """Keep the largest lag behind the wall clock (simulated seconds); say once when the
        run falls behind and once when it has caught up (``lag`` None: ahead again)."""
        speed = self.options.speed
        if lag is None:
            if self._behind:
                self.options.log(f"live: caught up; it was {self.max_lag_s:.1f} s behind at most")
                self._behind = False
            return
        self.max_lag_s = max(self.max_lag_s, lag)
        if lag > LAG_NOTICE_S * speed and not self._behind:
            self.options.log(f"live: {lag / speed:.0f} s behind the wall clock (a sink is slow); "
                             "catching up")
            self._behind = True

    def _go_live(self) -> None:
        assert self.handoff is not None
        for sink in [*self.sinks, *self.incident_sinks]:
            sink.send_when_idle = True
        if self.options.on_handoff is not None:
            self.options.on_handoff()
        self.options.log(f"live: handoff at {iso_utc(self.handoff)}; running in real time"
                         + (f" x{self.options.speed:g}" if self.options.speed != 1 else ""))

    def _advance(self, seg: SegmentRun, until: float) -> float:
        """Simulate to ``until`` (returned), keeping the ground-truth minutes a fault applied
        later may still need (the half hour before it), and no more."""
        keep = seg.minutes.keep
        last = int((until + 180.0) // 60)
        if last >= self._keep_next:
            keep.update(range(self._keep_next, last + 1))
            self._keep_next = last + 1
        oldest = int((until - BASELINE_S - 600.0) // 60)
        stale = [k for k in keep if k < oldest and k not in self._keep_needed]
        if stale:
            minutes = seg.minutes.minutes
            for k in stale:
                keep.discard(k)
                minutes.pop(k, None)
        seg.run_until(until)
        return until

    def _poll_faults(self, seg: SegmentRun, boundary: float) -> None:
        source = self.options.fault_source
        if source is None:
            return
        update = getattr(source, "poll", source)(boundary)
        write_state = getattr(source, "write_state", None)
        wall = self.options.clock.time()
        if write_state is not None and wall - self._state_written >= STATE_EVERY_S:
            write_state(boundary, self.faults)  # for `storefront-sim faults`
            self._state_written = wall
        if update.error != self._last_error and update.error:
            self.options.log(f"control: {update.error} "
                             "(ignored; the previous faults and changes stay)")
        self._last_error = update.error
        self._known_changes = tuple(getattr(update, "changes", ()))
        seen = {f.fault_id: f for f in update.faults}
        changed = False
        for fault_id in sorted(set(seen) | set(self._runtime)):
            new = seen.get(fault_id)
            prev = self._runtime.get(fault_id)
            kind = (new or prev.source).type  # type: ignore[union-attr]
            drawn = seg.faults.surge_drawn_until if kind == "traffic_surge" else None
            pinned = pin_runtime_fault(prev, new, boundary, drawn)
            if pinned is None:
                if prev is not None:
                    del self._runtime[fault_id]
                    changed = True
                continue
            if prev is None or pinned != prev.pinned:
                changed = True
                self.options.log(f"fault {fault_id}: {pinned.type} {iso_utc(pinned.start_epoch)} "
                                 f".. {iso_utc(pinned.end_epoch)} (simulated)")
            self._runtime[fault_id] = _RuntimeFault(new if new is not None else prev.source,  # type: ignore[union-attr]
                                                    pinned)
        if changed:
            runtime = self.runtime_faults()
            seg.faults.apply(with_runtime(self._base_faults, runtime))
            self._keep_needed = self._base_needed | minutes_needed(runtime, [c for _, c in self._made])
            seg.minutes.keep |= self._keep_needed
            for f in runtime:
                self.origin[f.fault_id] = "runtime"
            if self.output_dir is not None:
                self._write_replay(None)

    def _make_changes(self, seg: SegmentRun, boundary: float, nxt: float) -> None:
        """Schedule on the running storefront every runtime change due before the next
        boundary, once: from here on it is made (a later edit or removal cannot undo it)."""
        made = {c.change_id for _, c in self._made}
        due = sorted((c for c in self._known_changes
                      if c.change_id not in made and c.epoch < nxt), key=lambda c: c.epoch)
        if not due:
            return
        seg.schedule_changes(tuple(due))
        self._made += [(boundary, c) for c in due]
        self.origin.update({c.change_id: "runtime" for c in due})
        self._keep_needed |= minutes_needed((), due)
        seg.minutes.keep |= self._keep_needed
        for c in due:
            self.options.log(f"change {c.change_id}: {c.kind} {change_summary(c)} at "
                             f"{iso_utc(c.epoch)} (simulated)")
        if self.output_dir is not None:
            self._write_replay(None)

    # ------------------------------------------------------------------ ground truth
    @staticmethod
    def _partial(seg: SegmentRun) -> SegmentResult:
        return SegmentResult(seg.plan.index, {}, seg.state_log(), seg.minutes.minutes)

    def _write_due_records(self, segments_now: Callable[[], list[SegmentResult]],
                           now: float, stop_epoch: float = math.inf) -> None:
        """Write the record of every incident whose recovery window is over (``now`` inf:
        all of them that began before the stop, at the end of the run), once."""
        faults = self._faults_before(stop_epoch)
        due = [f for f in faults if f.fault_id not in self._written
               and f.end_epoch + TRAILING_S + RECORD_MARGIN_S <= now]
        changes = self.all_changes()
        due_changes = [c for c in changes if c.change_id not in self._judged
                       and c.epoch + CHANGE_HORIZON_S + TRAILING_S + RECORD_MARGIN_S <= now]
        if not due and not due_changes:
            return
        segments = segments_now()
        log = [entry for s in segments for entry in s.state_log]
        minutes = _merged([s.minutes for s in segments])
        records = build_incident_records(faults, minutes, log, self.origin) if due else []
        if due_changes:  # a change that showed no symptoms has no record: judged once
            records += build_change_records(changes, faults, minutes, log,
                                            self.scenario.storefront, self.origin)
            self._judged |= {c.change_id for c in due_changes}
        split_impact(records, minutes)
        annotate_leads(records, changes, [])  # a live run draws no distractors
        self.alerts.link(records)
        ids = {f.fault_id for f in due} | {c.change_id for c in due_changes}
        for rec in records:
            if rec["incident_id"] not in ids:
                continue
            self._written[rec["incident_id"]] = rec
            if self._incidents_fh is not None:
                self._incidents_fh.write(orjson.dumps({"index": {"_id": rec["incident_id"]}})
                                         + b"\n" + orjson.dumps(rec) + b"\n")
                self._incidents_fh.flush()
            for sink in self.incident_sinks:
                sink.emit(incident_doc_id(self.key, rec["incident_id"]), rec)
                sink.flush()
            self.options.log(f"incident {rec['incident_id']}: ground truth written")

    # ------------------------------------------------------------------ files, summary
    def _write_replay(self, stop_epoch: float | None) -> None:
        assert self.output_dir is not None
        write_replay(self.output_dir / "replay.yaml", self.scenario, self.today,
                     self.pinned_plan(stop_epoch))

    def _live_summary(self, stop_epoch: float | None) -> dict[str, Any]:
        handoff = getattr(self, "handoff", None)
        return {
            "handoff": iso_utc(handoff) if handoff is not None else None,
            "stopped": iso_utc(stop_epoch) if stop_epoch is not None else None,
            "speed": self.options.speed,
            "bucket_s": self.options.bucket_s,
            "max_lag_s": round(self.max_lag_s / self.options.speed, 2),
            "runtime_faults": [
                {"id": f.fault_id, "type": f.type, "start": iso_utc(f.start_epoch),
                 "end": iso_utc(f.end_epoch), "magnitude": f.magnitude, "target": f.target}
                for f in self.runtime_faults()
            ],
            "runtime_changes": [
                {"id": c.change_id, "kind": c.kind, "at": iso_utc(c.epoch), "hosts": list(c.hosts),
                 "what": change_summary(c)}
                for _, c in self._made
            ],
        }

    @contextlib.contextmanager
    def _signals(self, signum: int) -> Iterator[None]:
        """While the block runs, ``signum`` asks the run to stop at the next bucket."""
        if not self.options.handle_signals or \
                threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            self.options.log(f"live: {signal.Signals(signum).name}: stopping at the next bucket")
            self.request_stop()

        previous = signal.signal(signum, handler)
        try:
            yield
        finally:
            signal.signal(signum, previous)


def _flush(sinks: Iterable[EventSink]) -> None:
    """Everything emitted so far goes on to the file or the server (a bucket's end)."""
    for sink in sinks:
        sink.flush()


def _grid(t: float, bucket: float) -> float:
    """The bucket boundary at or before ``t`` (boundaries are multiples of the bucket)."""
    return math.floor(t / bucket) * bucket


def _merged(parts: Iterable[dict[int, Minute]]) -> dict[int, Minute]:
    """merge_minutes without touching its inputs (the live segment's keep growing)."""
    out: dict[int, Minute] = {}
    for part in parts:
        for key, m in part.items():
            acc = out.get(key)
            if acc is None:
                acc = out[key] = Minute()
            acc.merge(m)
    return out


# ---------------------------------------------------------------------- replay.yaml
def _fault_dict(f: ActiveFault) -> dict[str, Any]:
    return {"id": f.fault_id, "type": f.type, "start": iso_utc(f.start_epoch),
            "end": iso_utc(f.end_epoch), "start_epoch": f.start_epoch, "end_epoch": f.end_epoch,
            "ramp_s": f.ramp_s, "magnitude": f.magnitude, "target": f.target,
            "incident_type": f.incident_type}


def _change_dict(boundary: float, c: ActiveChange) -> dict[str, Any]:
    """A runtime change for replay.yaml: every field, and the boundary it was scheduled at."""
    fields = dataclasses.asdict(c)
    fields["hosts"] = list(c.hosts)
    fields["settings"] = [[path, value] for path, value in c.settings]
    return {"scheduled_at": boundary, "at": iso_utc(c.epoch), **fields}


def _read_change(d: dict[str, Any]) -> tuple[float, ActiveChange]:
    fields = {k: v for k, v in d.items() if k not in ("scheduled_at", "at")}
    fields["hosts"] = tuple(fields["hosts"])
    fields["settings"] = tuple((str(path), value) for path, value in fields["settings"])
    return float(d["scheduled_at"]), ActiveChange(**fields)


def write_replay(path: Path, scenario: Scenario, today: dt.date, pinned: PinnedPlan) -> None:
    """Everything a batch run needs to write the same documents as this live run."""
    data = {
        "scenario": scenario.model_dump(mode="json"),
        "today": today.isoformat(),
        "splits": list(pinned.splits),
        "stop_epoch": pinned.stop_epoch,
        "runtime_faults": [_fault_dict(f) for f in pinned.runtime_faults],
        "runtime_changes": [_change_dict(b, c) for b, c in pinned.runtime_changes],
    }
    tmp = path.with_name(path.name + ".partial")
    text = ("# a live run, pinned: `storefront-sim replay " + path.name + "` writes the same "
            "documents as a batch run\n" + yaml.safe_dump(data, sort_keys=False))
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_replay(path: Path) -> tuple[Scenario, dt.date, PinnedPlan]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    scenario = Scenario.model_validate(data["scenario"])
    faults = tuple(ActiveFault(f["id"], f["type"], float(f["start_epoch"]), float(f["end_epoch"]),
                               float(f["ramp_s"]), float(f["magnitude"]), f["target"],
                               f["incident_type"]) for f in data["runtime_faults"])
    stop = data.get("stop_epoch")
    changes = tuple(_read_change(d) for d in data.get("runtime_changes") or ())
    return (scenario, dt.date.fromisoformat(data["today"]),
            PinnedPlan(tuple(float(s) for s in data["splits"]),
                       None if stop is None else float(stop), faults, changes))


def future_notice(window: Window, now_epoch: float) -> str | None:
    """One line for a batch run whose window reaches past the wall clock."""
    if window.end.timestamp() <= now_epoch:
        return None
    return (f"note: the window ends {iso_utc(window.end.timestamp())}, after the wall clock: "
            "documents will be dated in the future (--live runs up to now, then in real time)")


def live_from_args(args: Any, scenario: Scenario, today: dt.date, output_dir: Path | None,
                   extra_sinks: list[Any], incident_sinks: list[Any],
                   progress: Callable[[float], None] | None, bar: Any,
                   bulk_index: tuple[Any, str] | None,
                   alert_sinks: Sequence[EventSink] = ()) -> RunResult:
    """``--live`` from the command line: the index's bulk-load settings last until the
    handoff, the progress bar covers the backfill, runtime faults come from the control
    file."""
    control = Path(args.control) if args.control else \
        Path(output_dir or scenario.output.dir) / "control.yaml"
    source = control_fault_source(control, scenario, today)
    if source is None:
        print("note: this build has no control file reader (sim.live.control): no runtime faults",
              file=sys.stderr)
    with contextlib.ExitStack() as bulk:
        if bulk_index is not None:
            from sim.outputs.index_setup import bulk_load_settings

            bulk.enter_context(bulk_load_settings(*bulk_index))

        def handoff() -> None:
            if bar is not None:
                bar.close()
            bulk.close()  # Dashboards see live data from here on

        options = LiveOptions(speed=args.speed, bucket_s=args.bucket, fault_source=source,
                              on_handoff=handoff)
        return LiveRun(scenario, today, output_dir, extra_sinks, incident_sinks,
                       args.workers, args.engine, options, progress, alert_sinks).run()
