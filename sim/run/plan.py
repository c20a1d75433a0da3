"""What a run simulates, decided before any file is touched: its window, its faults (pinned
and drawn), where the window is cut into segments, and the key of its document ids.

Everything here depends on the scenario and ``today`` only, never on the worker count or
the backend: that is what makes the output the same for any of them. A live run plans the
same way and pins what it decided (``PinnedPlan``) so a batch run can repeat it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.config import Scenario
from sim.core.clock import Window, resolve_time_expression, resolve_window
from sim.model.changes import ActiveChange, active_change
from sim.model.distractors import Distractor, draw_distractors
from sim.model.faults import ActiveFault, active_fault
from sim.model.random_incidents import draw_random_incidents
from sim.model.traffic import DailySchedule
from sim.run.segment import SegmentPlan, drain_s
from sim.telemetry.minutes import BASELINE_S, TRAILING_S

SPLIT_CLEARANCE_S = 45 * 60.0  # keep splits this far from any fault (and its recovery)
MIN_SEGMENT_S = 3 * 3600.0


def iso_utc(epoch_s: float) -> str:
    """An epoch time as the summary and the messages show it (``...Z``)."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- window and faults

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
    return [f"faults[{i}]: {iso_utc(f.start_epoch)} .. {iso_utc(f.end_epoch)} lies outside the "
            f"window {iso_utc(window.start.timestamp())} .. {iso_utc(window.end.timestamp())}; "
            "it is ignored"
            for i, f in enumerate(resolve_faults(scenario, today)) if not in_window(f, window)]


def run_faults(scenario: Scenario, today: dt.date, window: Window
               ) -> tuple[list[ActiveFault], dict[str, str]]:
    """The faults a run applies, in start order (the pinned ones inside the window and the
    random incidents drawn around them), and the origin of those not pinned."""
    pinned = [f for f in resolve_faults(scenario, today) if in_window(f, window)]
    drawn = draw_random_incidents(scenario, window, pinned)
    return sorted(pinned + drawn, key=lambda f: f.start_epoch), {f.fault_id: "random" for f in drawn}


def resolve_changes(scenario: Scenario, today: dt.date) -> list[ActiveChange]:
    """The scenario's changes in absolute time, in time order (a stable sort: two at the
    same time apply in the order written)."""
    changes = [active_change(c, f"{scenario.name}-c{i + 1}",
                             resolve_time_expression(c.at, today).timestamp(),
                             scenario.storefront)
               for i, c in enumerate(scenario.changes)]
    return sorted(changes, key=lambda c: c.epoch)


def with_runtime(base: list[ActiveFault], runtime: Sequence[ActiveFault]) -> list[ActiveFault]:
    """The live segment's faults in the order their factors add up (live and replay alike)."""
    return sorted([*base, *runtime], key=lambda f: f.start_epoch)


# ---------------------------------------------------------------- segments

def split_points(scenario: Scenario, window: Window, faults: list[ActiveFault],
                 changes: Sequence[ActiveChange] = (),
                 distractors: Sequence[Distractor] = ()) -> list[float]:
    """Where the window is cut into independently simulated segments (epoch seconds).

    At every UTC midnight (the quietest time), and inside each day where half of that
    day's expected traffic has arrived, so two cores share a day evenly. A split is moved
    away from any fault so that no incident is ever cut; the warm-up of the segment after
    it restores steady state; and away from any change, so that none falls in a warm-up
    (a segment starts with the changes made before it already applied). Depends on the
    scenario only, never on the worker count.
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
            mid = clear_of_faults(mid, faults, a + MIN_SEGMENT_S, b - MIN_SEGMENT_S,
                                  [*changes, *distractors])
            if mid is not None:
                points.append(mid)
        if b < hi:
            points.append(b)
    return sorted(p for p in points if lo < p < hi)


def clear_of_faults(t: float, faults: list[ActiveFault], earliest: float,
                    latest: float, changes: Sequence[ActiveChange | Distractor] = ()) -> float | None:
    """The time nearest ``t`` within [earliest, latest] that no fault, change or distractor
    is near, if any."""
    spans = [(f.start_epoch, f.end_epoch) for f in faults] + [c.span for c in changes]
    for shift in range(0, int(latest - earliest) + 1, 300):
        for cand in (t - shift, t + shift):
            if earliest <= cand <= latest and all(
                    cand < a - SPLIT_CLEARANCE_S or cand > b + SPLIT_CLEARANCE_S for a, b in spans):
                return cand
    return None


def plan_segments(scenario: Scenario, window: Window, faults: list[ActiveFault],
                  engine: str = "fast", changes: Sequence[ActiveChange] = (),
                  distractors: Sequence[Distractor] = ()) -> list[SegmentPlan]:
    splits = split_points(scenario, window, faults, changes, distractors)
    return plans_from_splits(scenario, window, splits, faults, engine, changes, distractors)


def plans_from_splits(scenario: Scenario, window: Window, splits: Sequence[float],
                      faults: list[ActiveFault], engine: str = "fast",
                      changes: Sequence[ActiveChange] = (),
                      distractors: Sequence[Distractor] = ()) -> list[SegmentPlan]:
    warmup = scenario.window.warmup_minutes * 60.0
    drain = drain_s(scenario)
    edges = [window.start, *(dt.datetime.fromtimestamp(p, dt.UTC) for p in splits), window.end]
    plans = []
    for i, (start, end) in enumerate(zip(edges, edges[1:], strict=False)):
        part = Window(start, end)
        lo = part.start.timestamp() - warmup
        hi = part.end.timestamp() + drain
        # a segment also gets the faults whose aftermath it may hold, for the ground truth
        active = tuple(f for f in faults
                       if f.start_epoch - BASELINE_S < hi and f.end_epoch + TRAILING_S > lo)
        # and every change made before it ends: those before its start are already applied
        made = tuple(c for c in changes if c.epoch < hi)
        benign = tuple(d for d in distractors if d.start_epoch < hi and d.end_epoch > lo)
        plans.append(SegmentPlan(i, part, warmup, active, engine, changes=made, distractors=benign))
    return plans


@dataclass(frozen=True)
class PinnedPlan:
    """What a live run decided while it ran, so a batch run can repeat it exactly: its
    splits (those before the wall clock when it started), where it stopped, and the faults
    applied at runtime (they belong to the last segment only, the one that ran live)."""

    splits: tuple[float, ...]
    stop_epoch: float | None = None
    runtime_faults: tuple[ActiveFault, ...] = ()
    # changes made at runtime, each with the boundary at which the live loop scheduled it
    runtime_changes: tuple[tuple[float, ActiveChange], ...] = ()


def pinned_plans(scenario: Scenario, window: Window, faults: list[ActiveFault],
                 pinned: PinnedPlan, engine: str = "fast",
                 changes: Sequence[ActiveChange] = ()) -> list[SegmentPlan]:
    """The segments of a live run (its last one is the live segment)."""
    plans = plans_from_splits(scenario, window, pinned.splits, faults, engine, changes)
    last = plans[-1]
    plans[-1] = dataclasses.replace(
        last, faults=tuple(with_runtime(list(last.faults), pinned.runtime_faults)),
        stop_epoch=pinned.stop_epoch, runtime_changes=pinned.runtime_changes)
    return plans


def run_key(scenario: Scenario, window: Window) -> str:
    """Part of every document id: same scenario, seed and window -> same ids."""
    text = f"{scenario.name}|{scenario.seed}|{window.start.isoformat()}|{window.end.isoformat()}"
    return hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


# ---------------------------------------------------------------- a batch run's plan

@dataclass(frozen=True)
class RunPlan:
    """A batch run's plan: what it simulates and the ground truth it reports."""

    window: Window
    key: str  # run_key
    faults: list[ActiveFault]  # every fault applied, in start order
    origin: dict[str, str]  # fault id -> "random" or "runtime" (absent: pinned)
    segments: list[SegmentPlan]
    changes: list[ActiveChange] = dataclasses.field(default_factory=list)  # in time order
    distractors: list[Distractor] = dataclasses.field(default_factory=list)  # benign anomalies


def plan_run(scenario: Scenario, today: dt.date, engine: str = "fast",
             pinned: PinnedPlan | None = None) -> RunPlan:
    """The run's plan; ``pinned`` repeats a live run (its splits, stop and runtime faults)."""
    window = resolve_run_window(scenario, today)
    faults, origin = run_faults(scenario, today, window)
    changes = resolve_changes(scenario, today)
    key = run_key(scenario, window)
    if pinned is None:
        # distractors are drawn for batch runs only: a live run (and its replay) has none yet
        benign, distractors = draw_distractors(scenario, window, faults, today)
        changes = sorted([*changes, *benign], key=lambda c: c.epoch)
        return RunPlan(window, key, faults, origin,
                       plan_segments(scenario, window, faults, engine, changes, distractors),
                       changes, distractors)
    segments = pinned_plans(scenario, window, faults, pinned, engine, changes)
    faults = with_runtime(faults, pinned.runtime_faults)
    if pinned.stop_epoch is not None:  # the live run stopped before these began
        faults = [f for f in faults if f.start_epoch < pinned.stop_epoch]
    origin.update({f.fault_id: "runtime" for f in pinned.runtime_faults})
    origin.update({c.change_id: "runtime" for _, c in pinned.runtime_changes})
    # the live run's records cover its scenario's changes and those made at runtime
    changes = sorted([*changes, *(c for _, c in pinned.runtime_changes)], key=lambda c: c.epoch)
    return RunPlan(window, key, faults, origin, segments, changes)
