"""A fault must name something that exists; a fault outside the window is warned about.

A typo in a target used to inject nothing: the run exited 0 with no incident and no word.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.config import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--today", "2026-11-27", "--start", "today 10:00", "--end", "today 10:03",
        "--base-tps", "1", "--quiet"]


def _fault(fault_type: str, target: str | None, start: str = "today 10:00") -> str:
    text = f"faults:\n  - type: {fault_type}\n    start: {start}\n"
    return text + (f"    target: '{target}'\n" if target is not None else "")


BAD_TARGETS = {
    "instance_typo": (_fault("memory_leak", "app-2"), "unknown instance 'app-2'",
                      "app-01, app-02, app-03, app-04"),
    "instance_beyond_fleet": ("storefront:\n  instances: 3\n" + _fault("memory_leak", "app-04"),
                              "unknown instance 'app-04'", "app-01, app-02, app-03;"),
    "one_bad_in_list": (_fault("memory_leak", "app-01,app-09"), "unknown instance 'app-09'",
                        "app-01, app-02, app-03, app-04"),
    "empty_target": (_fault("memory_leak", ""), "unknown instance ''", "app-01"),
    "long_fleet_abbreviated": ("storefront:\n  instances: 12\n" + _fault("memory_leak", "app-13"),
                               "unknown instance 'app-13'", "app-01 .. app-12"),
    "upstream_typo": (_fault("upstream_slowdown", "inventry"), "unknown upstream 'inventry'",
                      "inventory, recommendations"),
    "instance_as_upstream": (_fault("upstream_slowdown", "app-01"), "unknown upstream 'app-01'",
                             "inventory, recommendations"),
    "target_on_gateway": (_fault("payment_gateway_slowdown", "inventory"),
                          "payment_gateway_slowdown takes no target", "'inventory'"),
    "target_on_surge": (_fault("traffic_surge", "app-01"), "traffic_surge takes no target", ""),
    "target_on_db": (_fault("db_slow_queries", "db-01"), "db_slow_queries takes no target", ""),
}


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_unknown_target_is_one_line_listing_the_valid_names(case, tmp_path, capsys):
    text, problem, names = BAD_TARGETS[case]
    scenario = tmp_path / "typo.yaml"
    scenario.write_text(text)
    out_dir = tmp_path / "out"
    code = main([str(scenario), "--output-dir", str(out_dir), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {scenario}: faults[0].target: "), lines[0]
    assert problem in lines[0] and names in lines[0], lines[0]
    assert not out_dir.exists()


def test_the_failing_fault_is_named_by_its_index(tmp_path):
    text = _fault("memory_leak", "app-01") + "  - type: upstream_slowdown\n" \
        "    start: today 11:00\n    target: recomendations\n"
    with pytest.raises(ScenarioError, match=r"faults\[1\]\.target: unknown upstream 'recomendations'"):
        parse_scenario(yaml.safe_load(text), "x.yaml")


@pytest.mark.parametrize("fault_type,target", [
    ("memory_leak", "app-04"),
    ("memory_leak", "app-02,app-03"),
    ("memory_leak", "app-01, app-04"),
    ("upstream_slowdown", "recommendations"),
    ("upstream_slowdown", "inventory,recommendations"),
    ("payment_gateway_slowdown", None),
    ("memory_leak", None),
])
def test_existing_targets_are_accepted(fault_type, target):
    scenario = parse_scenario(yaml.safe_load(_fault(fault_type, target)), "ok.yaml")
    assert scenario.faults[0].target == target


def test_every_shipped_scenario_passes_the_checks():
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        load_scenario(path)


def _run(tmp_path, capsys, text, flags):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    out_dir = tmp_path / "out"
    code = main([str(scenario), "--output-dir", str(out_dir), *flags])
    summary = json.loads((out_dir / "run_summary.json").read_text()) if code == 0 else None
    return scenario, code, capsys.readouterr().err, summary


def test_fault_outside_the_window_warns_and_the_run_goes_on(tmp_path, capsys):
    text = _fault("memory_leak", "app-02", start="yesterday 10:00") + \
        "  - type: traffic_surge\n    start: today 09:58\n    duration_minutes: 3\n"
    scenario, code, err, summary = _run(tmp_path, capsys, text, TINY)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {scenario}: faults[0]: 2026-11-26T10:00:00Z .. 2026-11-26T10:10:00Z lies "
        "outside the window 2026-11-27T10:00:00Z .. 2026-11-27T10:03:00Z; it is ignored"]
    # the surge overlaps the window's first minute: simulated, not warned about
    assert [f["type"] for f in summary["faults"]] == ["traffic_surge"]
    assert summary["total_documents"] > 0


def test_window_flags_apply_before_the_window_check(tmp_path, capsys):
    """The fault lies inside the scenario's own window (the day of --today) but outside
    the --start/--end window the flags ask for: the flags decide."""
    text = "window:\n  days: 1\n" + _fault("db_slow_queries", None, start="today 15:00")
    scenario, code, err, summary = _run(tmp_path, capsys, text, TINY)
    assert code == 0
    assert f"warning: {scenario}: faults[0]: 2026-11-27T15:00:00Z" in err
    assert summary["faults"] == []


# found by tests/test_fuzz_inputs.py: each was a traceback
CALENDAR = {
    "yesterday_of_year_1": (_fault("memory_leak", None, start="yesterday 10:00"),
                            ["--today", "0001-01-01"],
                            "faults[0].start: 'yesterday 10:00' lies before the year 1"),
    "day_after_9999": ("name: x\n", ["--today", "9999-12-31"],
                       "window: 1 days ending at 24:00 of 9999-12-31 leave the calendar"),
    "days_beyond_the_calendar": ("name: x\n", ["--today", "2026-11-27", "--days", "99999999999"],
                                 "window: 99999999999 days ending at 24:00 of 2026-11-27"),
    "fault_ending_after_9999": (_fault("db_slow_queries", None) + "    duration_minutes: 1e300\n",
                                ["--today", "2026-11-27"],
                                "faults[0].duration_minutes: the fault would end after the year"),
    "infinite_rate": ("traffic:\n  base_tps: .inf\n", ["--today", "2026-11-27"],
                      "traffic.base_tps: Input should be a finite number"),
}


@pytest.mark.parametrize("case", sorted(CALENDAR))
def test_times_outside_the_calendar_are_one_line(case, tmp_path, capsys):
    text, flags, expected = CALENDAR[case]
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    out_dir = tmp_path / "out"
    assert main([str(scenario), "--output-dir", str(out_dir), "--quiet", *flags]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {scenario}: "), lines
    assert expected in lines[0], lines[0]
    assert not out_dir.exists()
