"""When the output directory's disk fills up: how much the run needed there, in one line.

A write that failed mid-run (``sim.outputs.files.WriteFailure``) names the file; the run
removes what it wrote and reports the bytes written so far scaled by the share of the
window's traffic (the daily schedule) that those bytes cover.
"""

from __future__ import annotations

from sim.config import Scenario
from sim.model.traffic import DailySchedule
from sim.outputs.files import WriteFailure


def traffic_load(scenario: Scenario, start: float, end: float) -> float:
    """Expected arrivals between two epoch times by the daily schedule (per-minute sum)."""
    t = scenario.traffic
    schedule = DailySchedule(t.base_tps, t.peak_multiplier, t.weekend_factor)
    total, x = 0.0, start
    while x < end:
        step = min(60.0, end - x)
        total += schedule.rate(x + step / 2) * step
        x += step
    return total


def estimate_run_bytes(scenario: Scenario, window_start: float, window_end: float,
                       written: int, reached: float | None,
                       covers_from: float | None = None) -> int | None:
    """Bytes the run's files need in the output directory, extrapolated from ``written``
    bytes of documents from ``covers_from`` (default: the window start) up to ``reached``:
    by the window's expected traffic over the traffic they cover, and once more for the
    split files (which copy every document). None when there is nothing to go by."""
    covers_from = window_start if covers_from is None else covers_from
    if reached is None or written <= 0 or reached <= covers_from:
        return None
    done = traffic_load(scenario, covers_from, min(reached, window_end))
    if done <= 0:
        return None
    all_data = written * traffic_load(scenario, window_start, window_end) / done
    return int(all_data * (2 if scenario.output.split_files else 1))


def size_text(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def failure_message(failure: WriteFailure, written: int, needed: int | None) -> str:
    """The one line: the file, the cause, what the run wrote and what it still needed."""
    line = f"{failure.path}: {failure.reason} after writing {size_text(written)}"
    if needed is not None and needed > written:
        line += (f"; the run needed about {size_text(needed - written)} more there "
                 f"(about {size_text(needed)} in all)")
    return line + "; removed what this run wrote, earlier files are untouched"
