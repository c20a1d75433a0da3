"""Output is identical for any number of worker processes (the split is the scenario's)."""

from __future__ import annotations

import datetime as dt

from sim.config import parse_scenario
from sim.run.batch import simulate


def test_workers_do_not_change_a_byte(tmp_path):
    scenario = parse_scenario({
        "name": "parallel", "traffic": {"base_tps": 3},
        "window": {"start": "yesterday 23:00", "end": "today 01:00", "warmup_minutes": 5},
        "faults": [{"type": "db_slow_queries", "start": "today 00:20", "duration_minutes": 8}],
        "output": {"split_files": True},
    }, "test")
    today = dt.date(2026, 11, 27)
    one = simulate(scenario, today, tmp_path / "one", workers=1)
    two = simulate(scenario, today, tmp_path / "two", workers=2)
    assert len(one.window.segments()) == 2  # the window crosses midnight: two segments
    for name in ("all_data.ndjson", "incidents.ndjson", "incident_data.ndjson"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert one.counts == two.counts and one.total > 15_000
    assert one.incidents == two.incidents and len(one.incidents) == 1
    # no scratch files are left behind
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.startswith(".segments")]
