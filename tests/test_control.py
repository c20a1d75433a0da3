"""Runtime faults: the control file a live run polls, and the commands that edit it."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sim.cli import main
from sim.config import Scenario, ScenarioError, load_scenario, parse_scenario
from sim.live.control import ControlFile, ControlUpdate, pinned_fault, read_control, state_path
from sim.model.faults import ActiveFault
from sim.run.plan import resolve_faults

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 28)
B0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC).timestamp()  # a bucket boundary
SCENARIO = Scenario(name="demo")


def control(tmp_path: Path, text: str | None = None) -> tuple[Path, ControlFile]:
    path = tmp_path / "control.yaml"
    if text is not None:
        path.write_text(text)
    return path, ControlFile(path, SCENARIO, TODAY)


def one(update) -> ActiveFault:
    assert len(update.faults) == 1, update
    return update.faults[0]


GW = "faults:\n  - {id: gw, type: payment_gateway_slowdown, start: %s, duration_minutes: %s}\n"


def test_now_starts_at_the_boundary_where_the_fault_is_first_read(tmp_path):
    path, ctl = control(tmp_path)
    assert ctl.poll(B0 - 1) == ControlUpdate((), False, None)  # no file yet: no faults
    path.write_text(GW % ("now", 10))
    update = ctl.poll(B0)
    f = one(update)
    assert update.changed and update.error is None
    assert (f.start_epoch, f.end_epoch) == (B0, B0 + 600)
    assert f.fault_id == "demo-live-gw"
    # defaults as for a scenario fault
    assert (f.magnitude, f.target, f.incident_type, f.ramp_s) == (
        130.0, None, "payment_gateway_timeout", 120.0)
    again = ctl.poll(B0 + 1)
    assert not again.changed and again.faults == update.faults


@pytest.mark.parametrize(("start", "offset"), [("now+5m", 300), ("now + 90s", 90), ("now+1h", 3600),
                                               ("NOW+1.5h", 5400)])
def test_now_plus_offset(tmp_path, start, offset):
    _, ctl = control(tmp_path, GW % (start, 10))
    f = one(ctl.poll(B0 + 7))
    assert (f.start_epoch, f.end_epoch) == (B0 + 7 + offset, B0 + 7 + offset + 600)


def test_absolute_and_relative_starts_resolve_as_in_a_scenario(tmp_path):
    _, ctl = control(tmp_path, "faults:\n"
                     "  - {id: later, type: db_slow_queries, start: 'today 12:30'}\n"
                     "  - {id: iso, type: db_slow_queries, start: '2026-11-28T13:00:00Z'}\n"
                     "  - {id: late, type: db_slow_queries, start: 'today 11:55'}\n"
                     "  - {id: past, type: db_slow_queries, start: 'yesterday 12:00'}\n")
    faults = {f.fault_id: (f.start_epoch - B0, f.end_epoch - B0) for f in ctl.poll(B0).faults}
    assert faults == {
        "demo-live-later": (1800, 2400),
        "demo-live-iso": (3600, 4200),
        # the past cannot be simulated again: the rest of it from the boundary on
        "demo-live-late": (0, 300),
        # wholly past: never runs (start == end)
        "demo-live-past": (0, 0),
    }


def test_removing_a_fault_ends_it_at_the_boundary_and_it_never_restarts(tmp_path):
    path, ctl = control(tmp_path, GW % ("now", 10))
    ctl.poll(B0)
    path.write_text("faults: []\n")
    update = ctl.poll(B0 + 120)
    f = one(update)
    assert update.changed and (f.start_epoch, f.end_epoch) == (B0, B0 + 120)
    # the same id again is a new fault with its own id; the ended one keeps its record
    path.write_text(GW % ("now", 10))
    update = ctl.poll(B0 + 300)
    assert [(f.fault_id, f.start_epoch - B0, f.end_epoch - B0) for f in update.faults] == [
        ("demo-live-gw", 0, 120), ("demo-live2-gw", 300, 900)]


def test_removed_before_its_start_it_never_runs(tmp_path):
    path, ctl = control(tmp_path, GW % ("now+5m", 10))
    ctl.poll(B0)
    path.write_text("")
    f = one(ctl.poll(B0 + 60))
    assert f.start_epoch == f.end_epoch == B0 + 300


def test_a_missing_file_means_no_faults_and_deleting_it_ends_them(tmp_path):
    path, ctl = control(tmp_path)
    assert ctl.poll(B0).faults == ()
    path.write_text(GW % ("now", 10))
    ctl.poll(B0 + 1)
    path.unlink()
    update = ctl.poll(B0 + 61)
    assert update.changed and update.error is None and one(update).end_epoch == B0 + 61


def test_shortening_and_lengthening_a_running_fault(tmp_path):
    path, ctl = control(tmp_path, GW % ("now", 10))
    ctl.poll(B0)
    path.write_text(GW % ("now", 3))
    assert one(ctl.poll(B0 + 60)).end_epoch == B0 + 180
    path.write_text(GW % ("now", 20))
    assert one(ctl.poll(B0 + 90)).end_epoch == B0 + 1200
    # shortened to before the boundary: ends at the boundary, not in the simulated past
    path.write_text(GW % ("now", 1))
    update = ctl.poll(B0 + 150)
    assert update.changed and one(update).end_epoch == B0 + 150
    # an ended fault stays ended whatever its entry says afterwards
    path.write_text(GW % ("now", 30))
    update = ctl.poll(B0 + 200)
    assert not update.changed and one(update).end_epoch == B0 + 150


def test_a_scheduled_fault_takes_any_edit_counting_now_from_when_it_was_first_read(tmp_path):
    path, ctl = control(tmp_path, GW % ("now+5m", 10))
    ctl.poll(B0)
    path.write_text(GW.replace("}", ", magnitude: 40}") % ("now+10m", 10))
    f = one(ctl.poll(B0 + 60))
    assert (f.start_epoch, f.end_epoch, f.magnitude) == (B0 + 600, B0 + 1200, 40.0)


def test_an_invalid_edit_keeps_the_previous_state_with_one_line_once(tmp_path):
    path, ctl = control(tmp_path, GW % ("now", 10))
    before = ctl.poll(B0)
    bad_edits = {
        "faults:\n  - {id: gw, type: payment_gateway_slowdown, start: now\n":
            "malformed YAML: line 3",
        "faults:\n  - {id: gw, type: gremlins, start: now}\n": "faults[0].type: unknown value 'gremlins'",
        "faults:\n  - {id: gw, type: memory_leak, start: now-5m}\n": "faults[0].start: cannot parse",
        "faults:\n  - {id: gw, type: memory_leak, start: now, duration_minutes: 0}\n":
            "faults[0].duration_minutes: Input should be greater than 0",
        "faults:\n  - {id: 'a b', type: memory_leak, start: now}\n": "faults[0].id: invalid id 'a b'",
        "faults:\n  - {id: x, type: memory_leak, start: now}\n  - {id: x, type: memory_leak, start: now}\n":
            "faults[1].id: duplicate id 'x' (also faults[0])",
        "fault:\n  - {id: gw, type: memory_leak, start: now}\n": "fault: unknown key",
        # changing what a running fault is, rather than when it ends
        (GW.replace("}", ", magnitude: 5}") % ("now", 10)): "faults[0]: fault 'gw' has started",
    }
    for i, (text, expected) in enumerate(bad_edits.items()):
        path.write_text(text)
        update = ctl.poll(B0 + 10 + i)
        assert update.faults == before.faults and not update.changed
        assert update.error is not None and "\n" not in update.error
        assert update.error.startswith(f"{path}: ") and expected in update.error, update.error
        again = ctl.poll(B0 + 10.5 + i)  # the same bad content: logged once, not every bucket
        assert again.error is None and again.faults == before.faults
    path.write_text(GW % ("now", 5))
    fixed = ctl.poll(B0 + 100)
    assert fixed.changed and fixed.error is None and one(fixed).end_epoch == B0 + 300


def test_an_unreadable_file_keeps_the_previous_state(tmp_path):
    path, ctl = control(tmp_path, GW % ("now", 10))
    before = ctl.poll(B0)
    path.unlink()
    path.mkdir()
    update = ctl.poll(B0 + 1)
    assert update.faults == before.faults and not update.changed
    assert update.error == f"{path}: cannot read: Is a directory"


def test_rewriting_the_same_content_is_no_change(tmp_path):
    path, ctl = control(tmp_path, GW % ("now", 10))
    first = ctl.poll(B0)
    os.utime(path, (1, 1))
    path.write_text(GW % ("now", 10))
    update = ctl.poll(B0 + 1)
    assert not update.changed and update.faults == first.faults


def test_derived_ids_survive_shortening_removal_of_others_and_being_written_out(tmp_path):
    leak = "  - {type: memory_leak, start: now, target: app-02, duration_minutes: %s}\n"
    gw = "  - {type: payment_gateway_slowdown, start: now}\n"
    path, ctl = control(tmp_path, "faults:\n" + gw + leak % 10 + leak % 10)
    first = ctl.poll(B0)
    ids = [f.fault_id for f in first.faults]
    assert len(set(ids)) == 3 and all(i.startswith("demo-live-") for i in ids)
    key = ids[1].removeprefix("demo-live-")
    assert re.fullmatch(r"memory_leak-[0-9a-f]{6}", key) and ids[2] == f"demo-live-{key}-2"
    # shorten the first leak, drop the gateway fault: the leaks keep their ids
    path.write_text("faults:\n" + leak % 4 + leak % 10)
    update = ctl.poll(B0 + 60)
    assert [(f.fault_id, f.end_epoch - B0) for f in update.faults] == [
        (ids[0], 60), (ids[1], 240), (ids[2], 600)]
    # the commands write each entry's id out: the same faults, nothing changes
    path.write_text(f"faults:\n  - {{id: {key}, type: memory_leak, start: now, target: app-02, "
                    f"duration_minutes: 4}}\n  - {{id: {key}-2, type: memory_leak, start: now, "
                    "target: app-02}\n")
    assert not ctl.poll(B0 + 61).changed


def test_runtime_ids_never_collide_with_scenario_or_random_incident_ids(tmp_path):
    scenario = parse_scenario({"name": "demo", "faults": [{"type": "memory_leak", "start": "today 10:00"}],
                               "random_incidents": {"per_day": 3}}, "s.yaml")
    from sim.core.clock import resolve_window
    from sim.model.random_incidents import draw_random_incidents

    window = resolve_window(1, TODAY)
    pinned = resolve_faults(scenario, TODAY)
    others = {f.fault_id for f in pinned + draw_random_incidents(scenario, window, pinned)}
    # ids a user could choose that look like the others' suffixes
    text = "faults:\n" + "".join(f"  - {{id: '{i}', type: memory_leak, start: now}}\n"
                                 for i in ["f1", "r20261128-1", "1", "demo-f1"])
    _, ctl = control(tmp_path, text)
    runtime = {f.fault_id for f in ControlFile(ctl.path, scenario, TODAY).poll(B0).faults}
    assert len(others) == 4 and len(runtime) == 4 and not runtime & others


def test_now_is_refused_in_a_scenario_file(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("faults:\n  - {type: memory_leak, start: now+5m}\n")
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.start: 'now\+5m' is only for a live run"):
        load_scenario(scenario)
    assert main([str(scenario), "--quiet", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(scenario) in err
    assert not (tmp_path / "out").exists()


def test_pinned_fault_replays_the_applied_times_in_a_batch_scenario():
    fault = ActiveFault("demo-live-gw", "payment_gateway_slowdown", B0 + 1, B0 + 421, 120.0, 40.0,
                        None, "payment_gateway_timeout")
    entry = pinned_fault(fault)
    replayed = resolve_faults(parse_scenario({"name": "demo", "faults": [entry]}, "s.yaml"), TODAY)[0]
    assert (replayed.start_epoch, replayed.end_epoch, replayed.magnitude, replayed.ramp_s) == (
        fault.start_epoch, fault.end_epoch, 40.0, 120.0)
    assert pinned_fault(ActiveFault("x", "memory_leak", B0, B0, 0, 1, None, "m")) is None


# ---- the commands ---------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "run_sim.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_inject_faults_clear_end_to_end(tmp_path):
    inject = run_cli("inject", "payment_gateway_slowdown", "--for", "10m", "--start", "now+1m",
                     "--magnitude", "60", cwd=tmp_path)
    assert inject.returncode == 0, inject.stderr
    path = tmp_path / "output" / "control.yaml"  # the default: ./output/control.yaml
    assert "payment_gateway_slowdown-1" in inject.stdout
    ctl = ControlFile(path, SCENARIO, TODAY)
    f = one(ctl.poll(B0))
    assert (f.fault_id, f.start_epoch, f.end_epoch, f.magnitude) == (
        "demo-live-payment_gateway_slowdown-1", B0 + 60, B0 + 660, 60.0)
    other = tmp_path / "elsewhere.yaml"
    assert run_cli("inject", "memory_leak", "--target", "app-02", "--ramp", "90s", "--id", "leak",
                   "--control", str(other), cwd=tmp_path).returncode == 0
    leak = one(ControlFile(other, SCENARIO, TODAY).poll(B0))
    assert (leak.target, leak.ramp_s, leak.end_epoch - leak.start_epoch) == ("app-02", 90.0, 600.0)

    # what the running simulation applied, through its state file
    ctl.write_state(B0 + 120)
    listing = run_cli("faults", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith("payment_gateway_slowdown-1"))
    assert row.split()[:5] == ["payment_gateway_slowdown-1", "active", "payment_gateway_slowdown",
                               "2026-11-28T12:01:00Z", "2026-11-28T12:11:00Z"]
    assert "simulation at 2026-11-28T12:02:00Z" in listing.stdout

    cleared = run_cli("clear", "payment_gateway_slowdown-1", cwd=tmp_path)
    assert cleared.returncode == 0, cleared.stderr
    listing = run_cli("faults", cwd=tmp_path).stdout
    assert "active (clearing)" in listing
    update = ctl.poll(B0 + 180)
    assert update.changed and one(update).end_epoch == B0 + 180
    ctl.write_state(B0 + 181)
    assert "ended (cleared)" in run_cli("faults", cwd=tmp_path).stdout
    # an id the simulation has used is not handed out again
    again = run_cli("inject", "payment_gateway_slowdown", cwd=tmp_path)
    assert "payment_gateway_slowdown-2" in again.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["inject", "gremlins"], "inject TYPE: unknown fault type 'gremlins' (one of: payment_gateway_slowdown,"),
    (["inject", "memory_leak", "--for", "ten minutes"], "inject --for: bad duration 'ten minutes'"),
    (["inject", "memory_leak", "--ramp", "2x"], "inject --ramp: bad duration '2x'"),
    (["inject", "memory_leak", "--start", "teatime"], "inject --start: cannot parse time 'teatime'"),
    (["inject", "memory_leak", "--magnitude", "-1"], "inject --magnitude: Input should be greater"),
    (["inject", "memory_leak", "--id", "no spaces"], "inject --id: invalid id 'no spaces'"),
    (["clear", "nope"], "clear: unknown fault id 'nope' (known: keep, memory_leak-1)"),
    (["inject", "memory_leak", "--id", "keep"], "inject --id: id 'keep' is already in the file"),
    (["inject", "memory_leak", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_command_input_is_one_line_exit_2_and_the_file_untouched(tmp_path, capsys, args, expected):
    out = tmp_path / "output"
    assert main(["inject", "traffic_surge", "--id", "keep"]
                + ["--output-dir", str(out)]) == 0
    assert main(["inject", "memory_leak", "--output-dir", str(out)]) == 0
    before = (out / "control.yaml").read_bytes()
    capsys.readouterr()
    try:
        code = main([*args, "--output-dir", str(out)])
    except SystemExit as exc:  # argparse's own errors, as for the scenario's flags
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert (out / "control.yaml").read_bytes() == before


def test_commands_refuse_to_rewrite_a_file_they_cannot_read(tmp_path, capsys):
    path = tmp_path / "control.yaml"
    path.write_text("faults:\n  - {type: memory_leak, start: now\n  # a hand edit in progress\n")
    before = path.read_bytes()
    assert main(["inject", "memory_leak", "--control", str(path)]) == 2
    assert main(["clear", "x", "--control", str(path)]) == 2
    assert main(["faults", "--control", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(f"{path}: malformed YAML" in line for line in err), err
    assert path.read_bytes() == before


def test_concurrent_writers_never_show_a_partial_file_and_lose_nothing(tmp_path):
    path = tmp_path / "control.yaml"
    writers, per_writer = 4, 8
    failures: list[str] = []

    def write(w: int) -> None:
        for k in range(per_writer):
            code = main(["inject", "traffic_surge", "--id", f"w{w}-{k}", "--control", str(path)])
            if code != 0:
                failures.append(f"w{w}-{k}: exit {code}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    reads, counts = 0, []
    while any(t.is_alive() for t in threads) and reads < 100_000:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        counts.append(len(read_control(path, text)))  # raises on a partial file
        reads += 1
    for t in threads:
        t.join(timeout=60)
    assert not failures
    assert reads > 0 and counts == sorted(counts)  # each reader saw whole files, never fewer entries
    ids = [key for key, _ in read_control(path, path.read_text())]
    assert sorted(ids) == sorted(f"w{w}-{k}" for w in range(writers) for k in range(per_writer))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".control.yaml.lock", "control.yaml"]


def test_faults_lists_pending_entries_without_a_running_simulation(tmp_path, capsys):
    path = tmp_path / "control.yaml"
    assert main(["faults", "--control", str(path)]) == 0
    assert "no runtime faults" in capsys.readouterr().out
    assert main(["inject", "upstream_slowdown", "--start", "now+5m", "--for", "90s",
                 "--target", "recommendations", "--control", str(path)]) == 0
    capsys.readouterr()
    assert main(["faults", "--control", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no running simulation has written control.state.json" in out
    row = next(line for line in out.splitlines() if line.startswith("upstream_slowdown-1"))
    assert row.split() == ["upstream_slowdown-1", "pending", "upstream_slowdown", "now+5m", "+1.5",
                           "min", "110", "recommendations", "control"]
    assert not state_path(path).exists()


def test_a_target_the_running_storefront_lacks_is_an_invalid_edit(tmp_path):
    """Targets are checked against the scenario's fleet, as in a scenario file."""
    path, ctl = control(tmp_path, GW % ("now", 10))
    before = ctl.poll(B0)
    n = SCENARIO.storefront.instances
    path.write_text("faults:\n  - {id: leak, type: memory_leak, start: now, "
                    f"duration_minutes: 5, target: app-{n + 1:02d}}}\n")
    update = ctl.poll(B0 + 1)
    assert update.faults == before.faults and not update.changed
    assert update.error is not None and "faults[0].target" in update.error
    assert f"app-{n:02d}" in update.error and "\n" not in update.error


# ---------------------------------------------------------------------- runtime changes

PUSH = "changes:\n  - {id: pool, kind: config_push, at: %s, settings: {db_pool.max_size: %d}}\n"


def test_a_change_is_made_where_first_read_and_removing_it_does_not_undo_it(tmp_path):
    path, ctl = control(tmp_path, PUSH % ("now", 3))
    update = ctl.poll(B0)
    (change,) = update.changes
    assert update.changed and update.error is None
    assert (change.change_id, change.kind, change.epoch, change.settings) == (
        "demo-live-pool", "config_push", B0, (("db_pool.max_size", 3),))
    assert change.hosts == ("app-01", "app-02", "app-03", "app-04")  # default: every instance
    path.write_text("changes: []\n")
    after = ctl.poll(B0 + 1)
    assert after.changes == update.changes and after.error is None
    (row,) = ctl.state(B0 + 1)["changes"]
    assert (row["id"], row["status"], row["in_file"], row["what"]) == (
        "pool", "made", False, "db_pool.max_size=3")
    assert "cannot be undone" in row["note"]


def test_a_scheduled_change_may_move_or_go_until_it_is_made(tmp_path):
    path, ctl = control(tmp_path, PUSH % ("now+5m", 3))
    assert [c.epoch for c in ctl.poll(B0).changes] == [B0 + 300]
    assert ctl.state(B0)["changes"][0]["status"] == "scheduled"
    path.write_text(PUSH % ("now+10m", 4))  # "now" still counts from when it was first read
    moved = ctl.poll(B0 + 60)
    assert [(c.epoch, c.settings) for c in moved.changes] == [(B0 + 600, (("db_pool.max_size", 4),))]
    path.write_text("changes: []\n")
    gone = ctl.poll(B0 + 120)
    assert gone.changed and gone.changes == () and ctl.state(B0 + 120)["changes"] == []


@pytest.mark.parametrize(("text", "expected"), [
    (PUSH % ("now", 5), "changes[0]: change 'pool' was made at 2026-11-28T12:00:00Z; a change "
                        "cannot be edited once made"),
    (PUSH % ("now-5m", 3), "changes[0].at: cannot parse time 'now-5m'"),
    (PUSH.replace("db_pool.max_size", "db_pool.max_sise") % ("now", 3),
     "changes[0].settings.db_pool.max_sise: unknown storefront setting"),
    ("changes:\n  - {kind: deploy, at: now, version: '2', hosts: [app-05]}\n",
     "changes[0].hosts: unknown instance 'app-05' (valid: app-01, app-02, app-03, app-04)"),
    ("changes:\n  - {kind: feature_flag, at: now, flag: dark_mode}\n",
     "changes[0].flag: unknown feature flag 'dark_mode'"),
    ("changes:\n  - {kind: deploy, at: now}\n", "changes[0].version: required for a deploy"),
    (PUSH % ("now", 3) + "  - {id: pool, kind: feature_flag, at: now, flag: recommended_for_you}\n",
     "changes[1].id: duplicate id 'pool' (also changes[0])"),
])
def test_a_bad_change_edit_keeps_the_previous_state_with_one_line(tmp_path, text, expected):
    path, ctl = control(tmp_path, PUSH % ("now", 3))
    before = ctl.poll(B0)
    path.write_text(text)
    update = ctl.poll(B0 + 1)
    assert update.changes == before.changes and not update.changed
    assert update.error is not None and "\n" not in update.error
    assert update.error.startswith(f"{path}: ") and expected in update.error, update.error


def test_change_command_writes_entries_the_run_reads(tmp_path, capsys):
    path = tmp_path / "control.yaml"
    assert main(["change", "config_push", "--set", "db_pool.max_size=3", "--set",
                 "circuit_breaker.enabled=false", "--hosts", "app-01,app-02", "--at", "now+2m",
                 "--message", "smaller pools", "--control", str(path)]) == 0
    assert main(["change", "deploy", "--version", "2.14.0", "--hosts", "app-03", "--pause", "90s",
                 "--leak-mb", "1.2", "--id", "v214", "--control", str(path)]) == 0
    assert main(["change", "feature_flag", "--flag", "recommended_for_you", "--share", "0.5",
                 "--control", str(path)]) == 0
    assert main(["inject", "memory_leak", "--control", str(path)]) == 0  # faults stay beside them
    assert "change config_push-1 (config_push, at now+2m)" in capsys.readouterr().out
    update = ControlFile(path, SCENARIO, TODAY).poll(B0)
    push, deploy, flag = update.changes
    assert (push.change_id, push.epoch, push.hosts, push.message) == (
        "demo-live-config_push-1", B0 + 120, ("app-01", "app-02"), "smaller pools")
    assert push.settings == (("db_pool.max_size", 3), ("circuit_breaker.enabled", False))
    assert (deploy.change_id, deploy.version, deploy.pause_s, deploy.leak_mb, deploy.epoch) == (
        "demo-live-v214", "2.14.0", 90.0, 1.2, B0)
    assert (flag.flag, flag.share) == ("recommended_for_you", 0.5)
    assert len(update.faults) == 1
    assert main(["faults", "--control", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "config_push-1   pending  config_push   now+2m  app-01,app-02  db_pool.max_size=3, " \
           "circuit_breaker.enabled=False" in listing


@pytest.mark.parametrize(("args", "expected"), [
    (["change", "rollback"], "change KIND: unknown kind 'rollback' (one of: config_push, deploy,"),
    (["change", "config_push", "--set", "db_pool.max_sise=3"],
     "change --set db_pool.max_sise: unknown storefront setting"),
    (["change", "config_push", "--set", "db_pool.max_size=0"],
     "change --set db_pool.max_size: Input should be greater than 0"),
    (["change", "config_push", "--set", "pool"], "change --set: expected PATH=VALUE"),
    (["change", "config_push", "--set", "db_pool.max_size=3", "--version", "2"],
     "change --version: not for a config_push (it takes: --set, --hosts)"),
    (["change", "deploy"], "change --version: required for a deploy"),
    (["change", "deploy", "--version", "2", "--pause", "soon"], "change --pause: bad duration 'soon'"),
    (["change", "deploy", "--version", "2", "--hosts", "app-01,app-5"],
     "change --hosts: unknown instance 'app-5'"),
    (["change", "feature_flag", "--flag", "dark_mode"], "change --flag: unknown feature flag 'dark_mode'"),
    (["change", "feature_flag", "--flag", "recommended_for_you", "--share", "0"],
     "change --share: Input should be greater than 0"),
    (["change", "feature_flag", "--flag", "recommended_for_you", "--at", "teatime"],
     "change --at: cannot parse time 'teatime'"),
    (["change", "feature_flag", "--flag", "recommended_for_you", "--id", "ff"],
     "change --id: id 'ff' is already in the file"),
])
def test_bad_change_command_is_one_line_exit_2_and_the_file_untouched(tmp_path, capsys, args, expected):
    out = tmp_path / "output"
    assert main(["change", "feature_flag", "--flag", "search_personalization", "--id", "ff",
                 "--output-dir", str(out)]) == 0
    before = (out / "control.yaml").read_bytes()
    capsys.readouterr()
    assert main([*args, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert (out / "control.yaml").read_bytes() == before


def test_clearing_a_made_change_says_it_stays_made(tmp_path, capsys):
    path = tmp_path / "control.yaml"
    assert main(["change", "config_push", "--set", "worker_threads=50", "--id", "wt",
                 "--control", str(path)]) == 0
    ctl = ControlFile(path, SCENARIO, TODAY)
    made = ctl.poll(B0).changes
    ctl.write_state(B0 + 1)
    capsys.readouterr()
    assert main(["clear", "wt", "--control", str(path)]) == 0
    assert "a change already made: removing it does not undo it" in capsys.readouterr().out
    assert ctl.poll(B0 + 2).changes == made
