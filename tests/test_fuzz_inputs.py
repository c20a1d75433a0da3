"""Property-based fuzz of what a user can type: scenario files and command-line flags.

Every input either runs or exits 2 with exactly one line on stderr, never a traceback.
Most examples stop where the simulation would start (``simulate`` replaced by a stub that
still resolves the window and faults the way a run does), so thousands of inputs take
seconds; a few examples with a tiny window run the real simulation end to end.
"""

from __future__ import annotations

import io
import math
import os
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sim.cli
from sim.config import Scenario
from sim.model.faults import DEFAULT_MAGNITUDE

ROOT = Path(__file__).resolve().parent.parent
FAULT_TYPES = sorted(DEFAULT_MAGNITUDE)
# the same examples on every CI run; FUZZ_RANDOM=1 explores new ones (locally)
SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None,
                    derandomize=os.environ.get("FUZZ_RANDOM") != "1")


class Reached(Exception):
    """The input was accepted: the run would start simulating now."""


def _field_paths(model: type, prefix: str = "") -> list[str]:
    """Every dotted field path of the scenario schema (sections and leaves)."""
    paths = []
    for name, info in model.model_fields.items():
        path = prefix + name
        paths.append(path)
        sub = info.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            paths.extend(_field_paths(sub, path + "."))
    return paths


FIELDS = _field_paths(Scenario)

time_texts = st.one_of(
    st.sampled_from(["today 10:00", "yesterday 23:59", "3 days ago 00:00", "today 24:00",
                     "today 9:75", "2026-11-27T10:00:00Z", "2026-11-27 10:00+05:00",
                     "2026-02-30T00:00", "0001-01-01T00:00", "9999-12-31T23:59", "tomorrow",
                     "", " ", "today", "99999 days ago 10:00", "-1 days ago 10:00", "now"]),
    st.text(max_size=12),
)
odd_numbers = st.one_of(
    st.sampled_from([0, -1, 1, 2, 10**6, 10**12, 10**30, -(10**30), 0.5, 1e-300, 1e300,
                     math.inf, -math.inf, math.nan, True, False]),
    st.integers(-10, 10**9), st.floats(allow_nan=True, allow_infinity=True),
)
values = st.one_of(
    odd_numbers, time_texts, st.none(), st.booleans(),
    st.sampled_from(["", "lots", "1e3", "app-01", "inventory", "2026-11-27", "2026-13-45",
                     "-", "ä", "0x10"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(),
                                                         max_size=2),
)
targets = st.one_of(
    st.none(), st.sampled_from(["app-01", "app-02,app-03", "app-04", "app-99", "app-1", "",
                                "inventory", "inventry", "recommendations", "db-01",
                                "app-01,,app-02", " app-02 ", "inventory,app-01"]),
    st.text(max_size=8),
)
faults = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(FAULT_TYPES), st.sampled_from(["gremlins", "", 3]))},
    optional={"start": time_texts, "duration_minutes": odd_numbers, "magnitude": odd_numbers,
              "ramp_minutes": odd_numbers, "target": targets,
              "incident_type": st.one_of(st.text(max_size=6), odd_numbers),
              "unknown": values},
)


@st.composite
def scenarios(draw: st.DrawFn) -> Any:
    """A scenario mapping: a valid base with a few mutations, or something that is not one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(values, st.lists(values, max_size=3)))
    raw: dict[str, Any] = {"name": "fuzz", "window": draw(st.sampled_from([
        {"start": "today 10:00", "end": "today 10:02"}, {"days": 1}, {"days": 3}, {}]))}
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(FIELDS)).split(".")
        if draw(st.booleans()) and len(path) > 0:  # an unknown key beside a known one
            path[-1] = draw(st.sampled_from([path[-1], path[-1] + "s", "extra", "Window"]))
        node = raw
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        if draw(st.integers(0, 5)) == 0:
            node.pop(path[-1], None)  # a missing section or key
        else:
            node[path[-1]] = draw(values)
    if draw(st.booleans()):
        raw["faults"] = draw(st.one_of(st.lists(faults, max_size=3), values))
    return raw


good_flags = {
    "--days": ["1", "2", "400000", "3652059"],
    "--today": ["2026-11-27", "2024-02-29", "0001-01-01", "9999-12-30", "9999-12-31"],
    "--start": ["today 10:00", "2026-11-27T10:00", "0001-01-01T00:00", "9999-12-31T23:00"],
    "--end": ["today 10:02", "2026-11-27T10:01", "0001-01-01T00:01", "9999-12-31T23:59"],
    "--incidents-per-day": ["0", "1.5"], "--base-tps": ["1", "0.5"],
    "--peak-multiplier": ["1", "3"], "--error-rate-normal": ["0", "5"],
    "--error-rate-incident": ["10", "100"], "--seed": ["1", "-5"], "--workers": ["1", "2"],
    "--engine": ["fast", "simpy"], "--index": ["i"],
}
bad_values = ["", "x", "-1", "0", "1e400", "nan", "inf", "-inf", "99999999999999999999",
              "2026-13-45", "today 25:00", "1.5.2", " ", "--quiet", "10**9", "0x10"]
flag_pairs = st.tuples(st.sampled_from(sorted(good_flags)), st.one_of(
    st.sampled_from(bad_values), st.text(max_size=8)))
switches = st.sampled_from(["--no-files", "--insecure", "--create-mapping-only", "--bogus",
                            "--days", "--engine=turbo"])


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    argv: list[str] = []
    for flag, good in good_flags.items():
        if draw(st.integers(0, 4)) == 0:
            argv += [flag, draw(st.sampled_from(good))]
    for flag, value in draw(st.lists(flag_pairs, max_size=3)):
        argv += [flag, value]
    if draw(st.integers(0, 5)) == 0:
        argv.append(draw(switches))
    if draw(st.integers(0, 5)) == 0:  # a file where the directory should be, and so on
        argv += ["--output-dir", draw(st.sampled_from(["{FILE}", "{FILE}/sub", "{TMP}/a/b", "{TMP}/new"]))]
    return argv


def _run_cli(argv: list[str]) -> tuple[int | str, str]:
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            code: int | str = sim.cli.main(argv)
        except Reached:
            code = "reached"
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


def _assert_runs_or_one_line(code: int | str, err: str, argv: list[str]) -> None:
    event(f"exit {code}")
    assert "Traceback" not in err, (argv, err)
    if code in ("reached", 0):
        return
    lines = err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)


@pytest.fixture
def stop_before_simulating(monkeypatch):
    """``simulate`` stub: what a run does before its first event (window, faults, random
    incidents, the summary's fault times), then stop."""
    from sim.model.random_incidents import draw_random_incidents
    from sim.run.batch import RunResult
    from sim.run.plan import in_window, resolve_faults, resolve_run_window

    def stub(scenario: Scenario, today: Any, output_dir: Any, *args: Any, **kwargs: Any) -> Any:
        window = resolve_run_window(scenario, today)
        pinned = [f for f in resolve_faults(scenario, today) if in_window(f, window)]
        if window.seconds <= 3 * 86400:
            pinned += draw_random_incidents(scenario, window, pinned)
        RunResult(scenario.name, scenario.seed, window, faults=pinned).summary()
        raise Reached

    monkeypatch.setattr(sim.cli, "simulate", stub)


@settings(SETTINGS, max_examples=int(os.environ.get("FUZZ_EXAMPLES", 400)))
@given(raw=scenarios(), flags=argvs())
def test_any_scenario_and_flags_run_or_exit_2_with_one_line(
        raw, flags, tmp_path_factory, stop_before_simulating):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    flags = [f.replace("{FILE}", str(path)).replace("{TMP}", str(tmp)) for f in flags]
    argv = [str(path), "--quiet", "--output-dir", str(tmp / "out"), *flags]
    code, err = _run_cli(argv)
    _assert_runs_or_one_line(code, err, argv)


@settings(SETTINGS, max_examples=int(os.environ.get("FUZZ_EXAMPLES", 150)))
@given(text=st.one_of(st.text(max_size=60), st.sampled_from([
    "traffic: [unclosed\n", "a: b: c\n", "\t- x\n", "--- !!python/object:os.system {}\n",
    "window: &a {days: *a}\n", "faults:\n- {type: memory_leak, start: today 10:00}\n- 7\n",
    "\x00", "\ufeffname: x\n", "name: x\nname: y\n", "storefront: {instances: !!float nan}\n"])))
def test_any_file_text_runs_or_exits_2_with_one_line(text, tmp_path_factory,
                                                     stop_before_simulating):
    tmp = tmp_path_factory.mktemp("text")
    path = tmp / "s.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    argv = [str(path), "--quiet", "--output-dir", str(tmp / "out"), "--start", "today 10:00",
            "--end", "today 10:02"]
    code, err = _run_cli(argv)
    _assert_runs_or_one_line(code, err, argv)


cheap_faults = st.fixed_dictionaries(
    {"type": st.sampled_from(FAULT_TYPES),
     "start": st.sampled_from(["today 09:50", "today 10:00", "today 10:01", "yesterday 10:00",
                               "today 12:00"])},
    optional={"duration_minutes": st.sampled_from([1e-6, 0.5, 1, 600, 1e9]),
              "magnitude": st.sampled_from([0, 0.5, 1, 5]),
              "ramp_minutes": st.sampled_from([0, 0.01, 1, 1e6]),
              "target": st.sampled_from(["app-01", "app-02,app-01", "inventory", "app-77"])},
)


@settings(SETTINGS, max_examples=6)
@given(fault_list=st.lists(cheap_faults, max_size=3),
       knobs=st.fixed_dictionaries({}, optional={
           "storefront": st.fixed_dictionaries({}, optional={
               "instances": st.sampled_from([1, 2, 7]),
               "worker_threads": st.sampled_from([1, 3]),
               "accept_queue": st.sampled_from([0, 1])}),
           "window": st.fixed_dictionaries({}, optional={
               "warmup_minutes": st.sampled_from([0, 0.01, 1])}),
           "background_errors": st.fixed_dictionaries({}, optional={
               "error_rate_normal": st.sampled_from([0, 20])})}),
       engine=st.sampled_from(["fast", "simpy"]))
def test_a_few_real_runs_of_odd_scenarios(fault_list, knobs, engine, tmp_path_factory):
    """Odd but valid values, simulated for real over two minutes at 1 request/s."""
    tmp = tmp_path_factory.mktemp("real")
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "odd", **knobs, "faults": fault_list}))
    out = tmp / "out"
    argv = [str(path), "--quiet", "--output-dir", str(out), "--today", "2026-11-27",
            "--start", "today 10:00", "--end", "today 10:02", "--base-tps", "1",
            "--engine", engine]
    code, err = _run_cli(argv)
    _assert_runs_or_one_line(code, err, argv)
    if code == 0:
        assert (out / "all_data.ndjson").stat().st_size > 0
        assert not list(out.glob("*.partial")) and not list(out.glob(".segments-*"))
    else:
        assert not out.exists()
