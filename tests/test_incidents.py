"""Random incident drawing and the ground-truth bookkeeping around it."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import orjson
import pytest

from sim.config import parse_scenario
from sim.core.clock import resolve_window
from sim.model.faults import ActiveFault
from sim.model.random_incidents import RECOVERY_ALLOWANCE_MIN, draw_random_incidents
from sim.run.batch import simulate
from sim.run.plan import resolve_faults
from sim.telemetry.minutes import Minute
from sim.truth.records import observe_window, write_split_files

TODAY = dt.date(2026, 11, 27)


def scenario(**random_incidents):
    return parse_scenario({"name": "t", "seed": 7, "random_incidents": random_incidents,
                           "faults": [{"type": "payment_gateway_slowdown",
                                       "start": "today 14:25"}]}, "test")


def test_draws_are_deterministic_per_day_and_independent_of_window_length():
    sc = scenario(per_day=2.5)
    week = draw_random_incidents(sc, resolve_window(7, TODAY), resolve_faults(sc, TODAY))
    three = draw_random_incidents(sc, resolve_window(3, TODAY), resolve_faults(sc, TODAY))
    again = draw_random_incidents(sc, resolve_window(7, TODAY), resolve_faults(sc, TODAY))
    assert week == again
    last3 = [f for f in week if f.start_epoch >= resolve_window(3, TODAY).start.timestamp()]
    assert last3 == three
    per_day: dict[dt.date, int] = {}
    for f in week:
        day = dt.datetime.fromtimestamp(f.start_epoch, dt.UTC).date()
        per_day[day] = per_day.get(day, 0) + 1
    assert set(per_day.values()) <= {2, 3}
    assert len(per_day) == 7


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_draws_keep_their_distance_and_stay_inside_their_day(seed):
    sc = parse_scenario({"seed": seed, "random_incidents": {"per_day": 3, "min_gap_minutes": 90},
                         "faults": [{"type": "db_slow_queries", "start": "yesterday 12:15"}]},
                        "test")
    pinned = resolve_faults(sc, TODAY)
    drawn = draw_random_incidents(sc, resolve_window(7, TODAY), pinned)
    allowance = RECOVERY_ALLOWANCE_MIN * 60
    spans = sorted((f.start_epoch, f.end_epoch + allowance) for f in drawn + pinned)
    for (_, end_a), (start_b, _) in zip(spans, spans[1:], strict=False):
        assert start_b >= end_a + 90 * 60
    for f in drawn:
        start = dt.datetime.fromtimestamp(f.start_epoch, dt.UTC)
        end = dt.datetime.fromtimestamp(f.end_epoch + allowance, dt.UTC)
        assert start.date() == end.date()
        assert f.magnitude > 0


def test_error_rate_incident_scales_drawn_magnitudes():
    window = resolve_window(3, TODAY)
    base = draw_random_incidents(scenario(per_day=2), window, [])
    harsh = draw_random_incidents(scenario(per_day=2, error_rate_incident=65), window, [])
    assert [f.start_epoch for f in base] == [f.start_epoch for f in harsh]
    for a, b in zip(base, harsh, strict=True):
        if a.type != "dependency_error_burst":
            assert b.magnitude == pytest.approx(2 * a.magnitude, rel=1e-2)
        else:
            assert a.magnitude <= b.magnitude <= 1.0


def _minute(requests: int, errors: int, slow_ms: float | None = None) -> Minute:
    m = Minute(requests=requests, errors=errors)
    m.hist[40] = requests  # ~32 ms
    if slow_ms is not None:  # a tenth of the requests take slow_ms
        m.hist[40] -= requests // 10
        m.hist[min(len(m.hist) - 1, int(8 * math.log2(slow_ms)))] += requests // 10
    return m


def test_observed_window_starts_at_first_abnormal_minute_and_ends_after_recovery():
    base = 1_000_000  # epoch minute
    minutes = {base + i: _minute(1000, 15) for i in range(-40, 60)}
    for i in range(3, 9):
        minutes[base + i] = _minute(1000, 300)  # severe: 30 % errors
    for i in range(9, 12):
        minutes[base + i] = _minute(1000, 60)  # abnormal, not severe: recovering
    fault = ActiveFault("x", "payment_gateway_slowdown", base * 60.0, (base + 10) * 60.0, 0, 1,
                        None, "payment_gateway_timeout")
    win = observe_window(fault, minutes)
    assert win is not None
    assert (win.start, win.incident_end, win.end) == ((base + 3) * 60, (base + 9) * 60,
                                                      (base + 12) * 60)
    quiet = {base + i: _minute(1000, 15) for i in range(-40, 60)}
    assert observe_window(fault, quiet) is None


def test_split_files_partition_all_data_by_window(tmp_path: Path):
    src = tmp_path / "all_data.ndjson"
    stamps = ["2026-11-27T14:10:00.000Z", "2026-11-27T14:26:00.000Z",
              "2026-11-27T14:37:00.000Z", "2026-11-27T15:00:00.000Z"]
    with open(src, "wb") as fh:
        for i, ts in enumerate(stamps):
            fh.write(orjson.dumps({"index": {"_id": str(i)}}) + b"\n")
            fh.write(orjson.dumps({"@timestamp": ts, "event_type": "transaction"}) + b"\n")
    rec = {"observed": True, "symptom_start": "2026-11-27T14:25:00.000Z",
           "incident_end": "2026-11-27T14:36:00.000Z", "symptom_end": "2026-11-27T14:40:00.000Z"}
    normal, incident, recovery = write_split_files(src, [rec])
    lines = {p.name: p.read_bytes().splitlines() for p in (normal, incident, recovery)}
    assert len(lines["normal_data.ndjson"]) == 4
    assert len(lines["incident_data.ndjson"]) == 2 and b"14:26" in lines["incident_data.ndjson"][1]
    assert len(lines["recovery_data.ndjson"]) == 2 and b"14:37" in lines["recovery_data.ndjson"][1]
    assert not list(tmp_path.glob("*.partial"))


def test_run_writes_ground_truth_apart_and_is_byte_identical(tmp_path: Path):
    sc = parse_scenario({"name": "gt", "seed": 3, "window": {
        "start": "today 14:22", "end": "today 14:34", "warmup_minutes": 3},
        "faults": [{"type": "payment_gateway_slowdown", "start": "today 14:24",
                    "magnitude": 130, "duration_minutes": 6}],
        "output": {"split_files": True}}, "test")
    outs = []
    for name in ("a", "b"):
        simulate(sc, TODAY, tmp_path / name)
        outs.append(tmp_path / name)
    for f in ("all_data.ndjson", "incidents.ndjson", "normal_data.ndjson",
              "incident_data.ndjson", "recovery_data.ndjson"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    lines = (outs[0] / "incidents.ndjson").read_bytes().splitlines()
    rec = orjson.loads(lines[1])
    assert rec["incident_id"] == "gt-f1" and rec["observed"]
    assert rec["first_saturated"] is not None
    sizes = sum(len((outs[0] / f).read_bytes().splitlines()) for f in
                ("normal_data.ndjson", "incident_data.ndjson", "recovery_data.ndjson"))
    assert sizes == len((outs[0] / "all_data.ndjson").read_bytes().splitlines())
    # the telemetry carries no label
    text = (outs[0] / "all_data.ndjson").read_bytes()
    assert b"gt-f1" not in text and b"incident" not in text


def test_load_bound_causes_are_stronger_at_quiet_hours():
    """A leak fills a heap per checkout and a pool tips over with load: drawn at a quiet
    hour, their magnitude must be larger than at the busy hour their default was tuned at."""
    from sim.model.faults import DEFAULT_MAGNITUDE
    from sim.model.traffic import DailySchedule

    sc = scenario(per_day=3)
    schedule = DailySchedule(sc.traffic.base_tps, sc.traffic.peak_multiplier,
                             sc.traffic.weekend_factor)
    drawn = draw_random_incidents(sc, resolve_window(200, TODAY), resolve_faults(sc, TODAY))
    for fault_type in ("memory_leak", "db_slow_queries"):
        quiet, busy = [], []
        for f in (f for f in drawn if f.type == fault_type):
            rate = schedule.rate(f.start_epoch + 300)
            relative = f.magnitude / DEFAULT_MAGNITUDE[fault_type]
            (quiet if rate < 25 else busy if rate > 40 else []).append(relative)
        assert len(quiet) >= 5 and len(busy) >= 5, fault_type
        assert sum(quiet) / len(quiet) > 1.3 * sum(busy) / len(busy), fault_type
    others = [f.magnitude / DEFAULT_MAGNITUDE[f.type] for f in drawn
              if f.type == "payment_gateway_slowdown"]
    assert 0.8 < sum(others) / len(others) < 1.2  # per-call causes are not scaled
