"""Shopper arrivals: the seed's daily schedule, smooth between bands, with realistic noise.

The rate is ``base_tps * (0.5 + (peak_multiplier - 0.5) * shape(hour))``: at the defaults
(20 TPS, x2.5) that is 10 TPS at night and ~50 TPS at the evening peak. ``shape`` is given at
anchor hours (``sim.config.SHAPE_ANCHORS``, from the seed's bands) and joined by cosine
interpolation, so there is no cliff at the hour. A slow
multiplicative noise (an AR(1) process on 5-minute knots) makes days differ. Arrivals are a
non-homogeneous Poisson process drawn per second in vectorised numpy blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

from sim.config import (
    NIGHT_SHARE,
    NOISE_CORRELATION_S,
    NOISE_KNOT_S,
    SESSION_IDLE_S,
    SHAPE_ANCHORS,
    Scenario,
)
from sim.core.rng import RandomStreams
from sim.model.customers import Customer
from sim.model.endpoints import ENDPOINT_ORDER, ENDPOINTS
from sim.model.faults import FaultSchedule
from sim.model.request import Request
from sim.model.storefront import Storefront

BLOCK_S = 60


def shape(hour: float) -> float:
    hour %= 24.0
    for (h0, s0), (h1, s1) in zip(SHAPE_ANCHORS, SHAPE_ANCHORS[1:], strict=False):
        if h0 <= hour <= h1:
            f = (hour - h0) / (h1 - h0)
            return s0 + (s1 - s0) * (1 - math.cos(math.pi * f)) / 2
    return SHAPE_ANCHORS[-1][1]


class DailySchedule:
    """Expected transactions per second at a UTC time (without noise or faults)."""

    def __init__(self, base_tps: float, peak_multiplier: float, weekend_factor: float = 1.0):
        self.base_tps = base_tps
        self.peak_multiplier = peak_multiplier
        self.weekend_factor = weekend_factor

    def rate(self, epoch_s: float) -> float:
        hour = (epoch_s % 86400.0) / 3600.0
        weekday = (int(epoch_s // 86400) + 3) % 7  # 1970-01-01 was a Thursday (3)
        factor = self.weekend_factor if weekday >= 5 else 1.0
        share = NIGHT_SHARE + (self.peak_multiplier - NIGHT_SHARE) * shape(hour)
        return self.base_tps * share * factor


def arrival_times(
    schedule: DailySchedule,
    origin_epoch_s: float,
    start_s: float,
    end_s: float,
    noise: float,
    gen: np.random.Generator,
    surge: Callable[[float], float] | None = None,
) -> Iterator[np.ndarray]:
    """Yield sorted arrays of arrival times (seconds since origin), one block at a time."""
    knots = int(math.ceil((end_s - start_s) / NOISE_KNOT_S)) + 2
    # AR(1) with a ~30 minute correlation time, stationary sd = noise
    phi = math.exp(-NOISE_KNOT_S / NOISE_CORRELATION_S)
    eps = gen.standard_normal(knots) * noise * math.sqrt(1 - phi * phi)
    level = np.empty(knots)
    level[0] = gen.standard_normal() * noise
    for i in range(1, knots):
        level[i] = phi * level[i - 1] + eps[i]
    knot_t = start_s + np.arange(knots) * NOISE_KNOT_S
    t = start_s
    while t < end_s:
        block_end = min(end_s, t + BLOCK_S)
        seconds = np.arange(t, block_end, 1.0)
        widths = np.minimum(seconds + 1.0, block_end) - seconds
        mid = seconds + widths / 2
        base = np.array([schedule.rate(origin_epoch_s + m) for m in mid])
        rate = base * np.exp(np.interp(mid, knot_t, level))
        if surge is not None:
            rate = rate * np.array([surge(m) for m in mid])
        counts = gen.poisson(rate * widths)
        total = int(counts.sum())
        if total:
            offsets = gen.random(total)
            starts = np.repeat(seconds, counts)
            span = np.repeat(widths, counts)
            yield np.sort(starts + offsets * span)
        t = block_end


def shoppers_arrive(env: Any, scenario: Scenario, streams: RandomStreams, shop: Storefront,
                    customers: list[Customer], origin_s: float, until: float,
                    faults: FaultSchedule, progress: Callable[[float], None] | None,
                    halt: list[float] | None = None) -> Generator[Any, Any, None]:
    """The process of shoppers arriving at ``shop``: arrival times come in 60 s blocks
    (numpy); each shopper's request starts its own process at its arrival time. A shopper
    keeps a session id until idle for 30 minutes.

    ``halt[0]`` (simulated seconds) stops arrivals before ``until``: a live run sets it when
    it is asked to stop, and its batch replay sets it from the start. Arrivals are drawn
    for the whole planned ``until`` either way, so both see the same numbers."""
    traffic = scenario.traffic
    schedule = DailySchedule(traffic.base_tps, traffic.peak_multiplier, traffic.weekend_factor)
    mix = traffic.endpoints.model_dump()
    weights = np.array([mix[name] for name in ENDPOINT_ORDER], dtype=float)
    cumulative = np.cumsum(weights) / weights.sum()
    endpoints = [ENDPOINTS[name] for name in ENDPOINT_ORDER]
    pick = streams.generator("shoppers")
    sessions: dict[int, tuple[float, str]] = {}
    session_ids = streams.stream("sessions")
    surge = faults.surge_at()
    surge_epoch = (lambda t: surge(origin_s + t)) if surge is not None else None
    n_customers = len(customers)
    visit = shop.shoppers.visit
    reported = 0.0
    for block in arrival_times(schedule, origin_s, 0.0, until, traffic.noise,
                               streams.generator("arrivals"), surge_epoch):
        n = len(block)
        kinds = np.searchsorted(cumulative, pick.random(n), side="right").tolist()
        who = pick.integers(0, n_customers, n).tolist()
        for t, kind, idx in zip(block.tolist(), kinds, who, strict=True):
            last = sessions.get(idx)
            if last is None or t - last[0] > SESSION_IDLE_S:
                sid = f"sess-{int(session_ids.random() * 2**52):013x}"
            else:
                sid = last[1]
            sessions[idx] = (t, sid)
            if t > env.now:
                yield env.timeout(t - env.now)
            if halt is not None and t >= halt[0]:
                return
            env.process(visit(Request(endpoints[min(kind, 4)], t, customers[idx], sid)))
        if progress is not None:
            progress(env.now - reported)
            reported = env.now
