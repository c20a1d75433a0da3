"""One model, two engines: every demo scenario writes the same bytes on SimPy's own
Environment and on the fast engine (sim/core/engine.py).

An hour around each scenario's incident, so crashes, interrupts, breaker timers, pool
timeouts and retries all happen; the two engines run side by side (one core each).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOURS = {
    "bad_config_push": ("today 12:30", "today 13:30"),
    "baseline": ("today 18:00", "today 19:00"),
    "circuit_breaker": ("today 16:00", "today 17:00"),
    "db_pool_exhaustion": ("yesterday 12:05", "yesterday 13:05"),
    "demo_week": ("today 14:15", "today 15:15"),
    "memory_leak": ("2 days ago 18:25", "2 days ago 19:25"),
    "payment_timeout": ("today 14:15", "today 15:15"),
    "traffic_surge": ("today 18:50", "today 19:50"),
    "upstream_degradation": ("today 10:30", "today 11:30"),
}


def test_every_demo_scenario_has_an_hour_here():
    assert {p.stem for p in (ROOT / "scenarios").glob("*.yaml")} == set(HOURS)


@pytest.mark.parametrize("name", sorted(HOURS))
def test_both_engines_write_the_same_bytes(tmp_path, name):
    start, end = HOURS[name]
    runs = {}
    for engine in ("fast", "simpy"):
        out = tmp_path / engine
        runs[engine] = (out, subprocess.Popen(
            [sys.executable, str(ROOT / "run_sim.py"), str(ROOT / "scenarios" / f"{name}.yaml"),
             "--today", "2026-11-27", "--start", start, "--end", end, "--workers", "1",
             "--engine", engine, "--output-dir", str(out), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    digests = {}
    for engine, (out, proc) in runs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        data = (out / "all_data.ndjson").read_bytes()
        assert data.count(b'"event_type":"transaction"') > 50_000
        digests[engine] = hashlib.sha256(data + (out / "incidents.ndjson").read_bytes()).hexdigest()
    assert digests["fast"] == digests["simpy"]
