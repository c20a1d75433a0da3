"""Bad input: one line on stderr naming file, field and problem; exit 2; no file touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "malformed_yaml": ("traffic: [unclosed\n", [], "malformed YAML"),
    "unknown_key": ("traffic:\n  base_tsp: 20\n", [], "traffic.base_tsp: unknown key"),
    "wrong_type": ("traffic:\n  base_tps: lots\n", [], "traffic.base_tps"),
    "zero_capacity": ("storefront:\n  db_pool:\n    max_size: 0\n", [],
                      "storefront.db_pool.max_size: Input should be greater than 0"),
    "negative_capacity": ("storefront:\n  worker_threads: -5\n", [],
                          "storefront.worker_threads: Input should be greater than 0"),
    "unknown_fault": ("faults:\n  - type: gremlins\n    start: today 10:00\n", [],
                      "faults[0].type: unknown value 'gremlins'"),
    "bad_fault_time": ("faults:\n  - type: memory_leak\n    start: teatime\n", [],
                       "faults[0].start: cannot parse time 'teatime'"),
    "bad_today": ("name: x\n", ["--today", "2026-13-45"], "--today: invalid date '2026-13-45'"),
    "bad_flag_value": ("name: x\n", ["--base-tps", "-3"],
                       "--base-tps (traffic.base_tps): Input should be greater than 0"),
    "start_without_end": ("name: x\n", ["--start", "today 10:00"], "--start/--end"),
    "live_end_without_start": ("name: x\n", ["--live", "--end", "today 10:00"], "--start/--end"),
    "end_before_start": ("name: x\n", ["--start", "today 10:00", "--end", "today 09:00"],
                         "window: end must be after start"),
    "not_a_mapping": ("- just\n- a list\n", [], "(top level): expected a mapping"),
    "anomaly_on_unknown_host": (
        "distractors:\n  anomalies:\n    - {id: job-1, kind: batch_job, at: 'today 10:00', host: app-09}\n",
        [], "distractors.anomalies[0].host: unknown instance 'app-09'"),
    "anomaly_bad_time": (
        "distractors:\n  anomalies:\n    - {id: job-1, kind: cache_flush, at: teatime}\n",
        [], "distractors.anomalies[0].at: cannot parse time 'teatime'"),
    "benign_without_why": (
        "changes:\n  - {kind: config_push, at: 'today 10:00', settings: {accept_queue: 80}, benign: ''}\n",
        [], "changes[0].benign"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_line(case, tmp_path, capsys):
    text, flags, expected = CASES[case]
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(text)
    out_dir = tmp_path / "out"
    code = main([str(scenario), "--output-dir", str(out_dir), "--quiet", "--today", "2026-11-27",
                 *flags] if "--today" not in flags else
                [str(scenario), "--output-dir", str(out_dir), "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(scenario) in lines[0] and expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists()


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main([str(missing), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {missing}: file not found"


def test_bad_input_does_not_clobber_existing_output(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "all_data.ndjson").write_text("previous run\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("traffic:\n  base_tps: 0\n")
    assert main([str(bad), "--output-dir", str(out_dir), "--quiet"]) == 2
    assert (out_dir / "all_data.ndjson").read_text() == "previous run\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["all_data.ndjson"]


def test_real_process_exit_code_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("window:\n  days: 0\n")
    proc = subprocess.run([sys.executable, str(ROOT / "run_sim.py"), str(bad), "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {bad}: window.days: Input should be greater than 0")
    assert not (tmp_path / "output").exists()


def test_readme_scenario_example_shows_the_real_defaults():
    """The README's annotated scenario is what users copy: its values must be the defaults."""
    import re

    import yaml

    from sim.config import Scenario

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Scenario files", 1)[1]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    defaults = Scenario.model_validate({"name": "x"}).model_dump(mode="json")

    def walk(shown, default, path):
        for key, value in shown.items():
            assert key in default, f"{path}{key} is not a scenario field"
            if isinstance(value, dict):
                walk(value, default[key], f"{path}{key}.")
            else:
                assert value == default[key], f"README shows {path}{key}: {value}, default is {default[key]}"

    walk({k: v for k, v in example.items() if k not in ("name", "seed", "faults", "changes")}, defaults, "")
    # the faults and changes are examples, not defaults: they must be valid as shown
    from sim.config import check_changes, parse_scenario

    check_changes(parse_scenario(example, "README.md"), "README.md")
