"""Arrivals follow the seed's daily schedule, smoothly, within stated tolerances."""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import pytest

from sim.config import parse_scenario
from sim.model.traffic import DailySchedule, arrival_times, shape
from sim.run.batch import simulate

DAY0 = dt.datetime(2026, 11, 25, tzinfo=dt.UTC).timestamp()  # a Wednesday


def hourly_expected(schedule, day0):
    return np.array([
        sum(schedule.rate(day0 + h * 3600 + s) for s in range(0, 3600, 10)) * 10
        for h in range(24)
    ])


def hourly_counts(times):
    return np.bincount((np.asarray(times) // 3600).astype(int), minlength=24)[:24]


def test_seed_schedule_bands_at_defaults():
    s = DailySchedule(20, 2.5)
    tps = {h: s.rate(DAY0 + h * 3600) for h in range(24)}
    assert all(9 <= tps[h] <= 13 for h in range(0, 6))  # night ~10 TPS
    assert 25 <= tps[9] <= 40 and 25 <= tps[11] <= 40  # business hours
    assert 35 <= tps[13] <= 50  # lunch peak
    assert 30 <= tps[15] <= 45  # afternoon
    assert 40 <= s.rate(DAY0 + 18.5 * 3600) <= 60  # evening peak
    assert 10 <= tps[22] <= 22  # evening decline
    assert max(tps.values()) == tps[18] or max(tps.values()) == tps[19]


def test_rate_has_no_cliffs():
    s = DailySchedule(20, 2.5)
    minute_rates = np.array([s.rate(DAY0 + m * 60) for m in range(24 * 60 + 1)])
    assert np.max(np.abs(np.diff(minute_rates))) < 0.5  # < 0.5 TPS change per minute
    assert shape(0.0) == pytest.approx(shape(24.0))


def test_hourly_arrivals_follow_schedule_without_noise():
    s = DailySchedule(20, 2.5)
    gen = np.random.default_rng(7)
    times = np.concatenate(list(arrival_times(s, DAY0, 0, 86400, 0.0, gen)))
    counts, expected = hourly_counts(times), hourly_expected(s, DAY0)
    assert np.all(np.abs(counts / expected - 1) < 0.03)  # Poisson alone: < 3% per hour


def test_hourly_arrivals_with_noise_stay_within_15_percent():
    s = DailySchedule(20, 2.5)
    gen = np.random.default_rng(11)
    times = np.concatenate(list(arrival_times(s, DAY0, 0, 86400, 0.08, gen)))
    counts, expected = hourly_counts(times), hourly_expected(s, DAY0)
    ratio = counts / expected
    assert np.all(np.abs(ratio - 1) < 0.15)
    assert np.std(ratio) > 0.01  # the noise is really there


def test_weekend_factor_scales_saturdays():
    s = DailySchedule(20, 2.5, weekend_factor=0.6)
    saturday = DAY0 + 3 * 86400
    assert s.rate(saturday + 12 * 3600) == pytest.approx(0.6 * s.rate(DAY0 + 12 * 3600))


def test_simulated_transactions_per_hour_follow_schedule(tmp_path):
    """End to end: transaction documents per hour vs the schedule (base 4 TPS, 4 hours)."""
    scenario = parse_scenario({
        "name": "hourly", "traffic": {"base_tps": 4, "noise": 0.0},
        "window": {"start": "today 10:00", "end": "today 14:00"},
    }, "test")
    simulate(scenario, dt.date(2026, 11, 25), tmp_path)
    per_hour = np.zeros(24)
    with open(tmp_path / "all_data.ndjson", "rb") as fh:
        for i, line in enumerate(fh):
            if i % 2:
                doc = orjson.loads(line)
                if doc["event_type"] == "transaction":
                    per_hour[int(doc["@timestamp"][11:13])] += 1
    expected = hourly_expected(DailySchedule(4, 2.5), DAY0)
    for hour in range(10, 14):
        assert per_hour[hour] == pytest.approx(expected[hour], rel=0.05)
    assert per_hour[:10].sum() == 0 and per_hour[14:].sum() == 0  # warm-up is not written
