"""Random incidents: root causes drawn per simulated UTC day from the scenario's seed.

Each day draws from its own named stream keyed by the date, so a day's incidents do not
depend on how long the window is, how it is split, or how many processes simulate it.
``per_day`` = 2.5 means two incidents and a third with probability one half. Types follow
the seed's catalogue weights (payment gateway timeouts most common). An incident keeps
``min_gap_minutes`` clear of every other one and of the pinned faults, and its fault plus
a recovery allowance ends before midnight, so no segment split cuts one.

``error_rate_incident`` (percent) asks for harsher or milder incidents: drawn magnitudes
are scaled by ``error_rate_incident / 32.5`` (32.5 % is the middle of the seed's 25-40 %
incident envelope that the default magnitudes aim at). It only changes the cause's
strength; the error rate itself still emerges from the model.

Pool exhaustion and a heap filling up depend on load (connections held x requests per
second; MB leaked x checkouts per second), so those two causes are scaled by how much
traffic the schedule has at the incident's start compared with the hour their demo
scenario was tuned at: a 07:00 leak leaks more per checkout than an 18:30 one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from sim.config import (
    LOAD_SAMPLE_AFTER_S,
    RANDOM_MAGNITUDE_SIGMA,
    RANDOM_RAMP_S,
    RECOMMENDATIONS_SHARE,
    UPSTREAMS,
    Scenario,
    instance_name,
)
from sim.core.clock import Window
from sim.core.rng import RandomStreams
from sim.model.faults import DEFAULT_MAGNITUDE, DEFAULT_TARGET, INCIDENT_TYPE, ActiveFault
from sim.model.traffic import DailySchedule

# fault type -> relative frequency (the seed calls payment gateway timeouts most common)
TYPE_WEIGHTS: dict[str, float] = {
    "payment_gateway_slowdown": 0.32,
    "db_slow_queries": 0.2,
    "upstream_slowdown": 0.2,
    "dependency_error_burst": 0.14,
    "memory_leak": 0.14,
}
DURATION_MIN = (5.0, 15.0)  # the seed's incident duration
MEMORY_LEAK_MINUTES = (12.0, 20.0)  # a leak needs time to fill the heap
RECOVERY_ALLOWANCE_MIN = 25.0  # after the fault ends, before the next may start
EARLIEST_HOUR = 6.0  # incidents happen under real traffic
LATEST_END_HOUR = 23.5
REFERENCE_ERROR_PCT = 32.5
# load-bound causes: the UTC hour their default magnitude was tuned at (the demo scenarios)
# and how strongly the cause scales with the traffic ratio (a leak fills the heap in
# proportion to checkouts; a pool tips over into exhaustion well before that)
LOAD_REFERENCE: dict[str, tuple[float, float]] = {
    "db_slow_queries": (12.25, 0.5), "memory_leak": (18.5, 1.0)}
LOAD_FACTOR_RANGE = (0.7, 4.0)
MAX_TRIES = 200


def incident_stream(seed: int, day: dt.date) -> np.random.Generator:
    """The dedicated stream for one day's random incidents."""
    return RandomStreams(seed, 0).generator(f"random-incidents:{day.isoformat()}")


# Recommendations sit on home and product pages (over half the traffic) behind a 2 s
# timeout: the inventory default would time out nearly every one of those calls.
TARGET_MAGNITUDE: dict[tuple[str, str], float] = {
    ("upstream_slowdown", "recommendations"): 30.0,
}


def _magnitude(fault_type: str, factor: float, target: str | None = None) -> float:
    base = TARGET_MAGNITUDE.get((fault_type, target or ""), DEFAULT_MAGNITUDE[fault_type])
    value = base * factor
    if fault_type == "dependency_error_burst":
        value = min(1.0, value)  # a share of calls
    return round(value, 3)


def draw_random_incidents(
    scenario: Scenario, window: Window, pinned: list[ActiveFault]
) -> list[ActiveFault]:
    """Random incidents for every UTC day the window touches, inside the window only."""
    cfg = scenario.random_incidents
    if cfg.per_day <= 0:
        return []
    scale = (cfg.error_rate_incident / REFERENCE_ERROR_PCT) if cfg.error_rate_incident else 1.0
    gap = cfg.min_gap_minutes * 60.0
    busy = [(f.start_epoch, f.end_epoch + RECOVERY_ALLOWANCE_MIN * 60.0) for f in pinned]
    traffic = scenario.traffic
    schedule = DailySchedule(traffic.base_tps, traffic.peak_multiplier, traffic.weekend_factor)
    types = list(TYPE_WEIGHTS)
    weights = np.array([TYPE_WEIGHTS[t] for t in types])
    weights /= weights.sum()
    out: list[ActiveFault] = []
    lo_all, hi_all = window.start.timestamp(), window.end.timestamp()
    for part in window.segments():
        day = part.start.date()
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        gen = incident_stream(scenario.seed, day)
        n = int(cfg.per_day) + int(gen.random() < cfg.per_day - int(cfg.per_day))
        for k in range(n):
            fault_type = types[int(gen.choice(len(types), p=weights))]
            span = MEMORY_LEAK_MINUTES if fault_type == "memory_leak" else DURATION_MIN
            duration = float(gen.uniform(*span)) * 60.0
            jitter = float(np.exp(gen.normal(0.0, RANDOM_MAGNITUDE_SIGMA)))
            target = DEFAULT_TARGET[fault_type]
            if fault_type == "upstream_slowdown":
                target = UPSTREAMS[int(gen.random() < RECOMMENDATIONS_SHARE)]
            elif fault_type == "memory_leak":
                target = instance_name(int(gen.integers(0, scenario.storefront.instances)))
            lo = max(midnight + EARLIEST_HOUR * 3600.0, lo_all)
            hi = min(midnight + LATEST_END_HOUR * 3600.0, hi_all) - duration - \
                RECOVERY_ALLOWANCE_MIN * 60.0
            for _ in range(MAX_TRIES):
                if hi <= lo:
                    break
                start = float(round(gen.uniform(lo, hi) / 60.0) * 60.0)
                end = start + duration
                clear = all(start >= b_end + gap or end + RECOVERY_ALLOWANCE_MIN * 60.0 + gap <= b_start
                            for b_start, b_end in busy)
                if clear:
                    load = 1.0
                    if fault_type in LOAD_REFERENCE:
                        hour, exponent = LOAD_REFERENCE[fault_type]
                        ratio = schedule.rate(midnight + hour * 3600.0) / \
                            schedule.rate(start + LOAD_SAMPLE_AFTER_S)
                        load = min(max(ratio ** exponent, LOAD_FACTOR_RANGE[0]), LOAD_FACTOR_RANGE[1])
                    busy.append((start, end + RECOVERY_ALLOWANCE_MIN * 60.0))
                    out.append(ActiveFault(
                        fault_id=f"{scenario.name}-r{day.strftime('%Y%m%d')}-{k + 1}",
                        type=fault_type, start_epoch=start, end_epoch=end, ramp_s=RANDOM_RAMP_S,
                        magnitude=_magnitude(fault_type, jitter * scale * load, target),
                        target=target, incident_type=INCIDENT_TYPE[fault_type],
                    ))
                    break
    return sorted(out, key=lambda f: f.start_epoch)
