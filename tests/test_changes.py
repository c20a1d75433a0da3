"""Changes (issue #20's first slice, config pushes): validated like faults, applied by the
model (live where the component can, by a restart where it cannot), written as change
documents, and deterministic across engines and segment splits."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main
from sim.config import load_scenario
from sim.run.plan import plan_run

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--today", "2026-11-27", "--start", "today 10:00", "--end", "today 10:03",
        "--base-tps", "1", "--quiet"]


def _push(at: str = "today 10:01", hosts: str | None = None,
          settings: str = "{db_pool.max_size: 4}", kind: str = "config_push") -> str:
    text = f"changes:\n  - kind: {kind}\n    at: {at}\n    settings: {settings}\n"
    return text + (f"    hosts: {hosts}\n" if hosts is not None else "")


BAD_CHANGES = {
    "unknown_kind": (_push(kind="rollback"), "changes[0].kind", "unknown value 'rollback'"),
    "settings_in_a_deploy": (_push(kind="deploy") + "    version: '2.14.0'\n", "changes[0].settings",
                             "not a field of a deploy"),
    "deploy_without_version": ("changes:\n  - {kind: deploy, at: today 10:01}\n",
                               "changes[0].version", "required for a deploy"),
    "deploy_unknown_host": ("changes:\n  - {kind: deploy, at: today 10:01, version: '2', hosts: [app-9]}\n",
                            "changes[0].hosts", "unknown instance 'app-9'"),
    "deploy_code_fault": ("changes:\n  - {kind: deploy, at: today 10:01, version: '2', "
                          "fault: {type: traffic_surge}}\n", "changes[0].fault.type",
                          "unknown value 'traffic_surge'"),
    "unknown_flag": ("changes:\n  - {kind: feature_flag, at: today 10:01, flag: dark_mode}\n",
                     "changes[0].flag", "unknown feature flag 'dark_mode' (valid: recommended_for_you"),
    "flag_with_hosts": ("changes:\n  - {kind: feature_flag, at: today 10:01, flag: recommended_for_you, "
                        "hosts: [app-01]}\n", "changes[0].hosts", "not a field of a feature_flag"),
    "flag_share": ("changes:\n  - {kind: feature_flag, at: today 10:01, flag: recommended_for_you, "
                   "share: 1.5}\n", "changes[0].share", "less than or equal to 1"),
    "version_by_push": (_push(settings="{version: '2.14.0'}"), "changes[0].settings.version",
                        "change it with a deploy"),
    "unknown_setting": (_push(settings="{db_pool.max_sise: 4}"),
                        "changes[0].settings.db_pool.max_sise", "unknown storefront setting"),
    "group_not_setting": (_push(settings="{db_pool: 4}"), "changes[0].settings.db_pool",
                          "a group of settings"),
    "shared_setting": (_push(settings="{db_server.max_active: 4}"),
                       "changes[0].settings.db_server.max_active", "not held by an app instance"),
    "refused_value": (_push(settings="{db_pool.max_size: 0}"), "changes[0].settings.db_pool.max_size",
                      "greater than 0"),
    "wrong_type": (_push(settings="{circuit_breaker.enabled: maybe}"),
                   "changes[0].settings.circuit_breaker.enabled", "valid boolean"),
    "unknown_host": (_push(hosts="[app-01, app-07]"), "changes[0].hosts",
                     "unknown instance 'app-07' (valid: app-01, app-02, app-03, app-04)"),
    "bad_time": (_push(at="today 25:00"), "changes[0].at", ""),
    "now_in_scenario": (_push(at="now+5m"), "changes[0].at", "only for a live run"),
    "no_settings": (_push(settings="{}"), "changes[0].settings", ""),
}


@pytest.mark.parametrize("case", sorted(BAD_CHANGES))
def test_a_bad_change_is_one_line_naming_the_field(case, tmp_path, capsys):
    text, field, problem = BAD_CHANGES[case]
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(text)
    out_dir = tmp_path / "out"
    code = main([str(scenario), "--output-dir", str(out_dir), *TINY])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {scenario}: {field}: "), lines[0]
    assert problem in lines[0], lines[0]
    assert not out_dir.exists()


def _run(tmp_path: Path, name: str, text: str, start: str, end: str, *flags: str) -> list[dict]:
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(text)
    out = tmp_path / name
    subprocess.run([sys.executable, str(ROOT / "run_sim.py"), str(scenario), "--today", "2026-11-27",
                    "--start", start, "--end", end, "--output-dir", str(out), "--quiet", *flags],
                   check=True, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in (out / "all_data.ndjson").read_text().splitlines()[1::2]]


def test_a_push_applies_live_or_by_a_restart_and_both_engines_agree(tmp_path):
    """db_pool.max_size resizes live on app-01; heap.max_mb on app-02 takes a restart (the
    instance reports itself stopped for a while); one change document per host reached."""
    text = ("traffic: {base_tps: 4}\n" + _push("today 10:02", "[app-01]", "{db_pool.max_size: 4}")
            + "  - kind: config_push\n    at: today 10:02\n    hosts: [app-02]\n"
              "    settings: {heap.max_mb: 3072}\n")
    runs = {engine: (tmp_path / engine, _run(tmp_path, engine, text, "today 10:00", "today 10:06",
                                              "--workers", "1", "--engine", engine))
            for engine in ("fast", "simpy")}
    assert (tmp_path / "fast" / "all_data.ndjson").read_bytes() == \
        (tmp_path / "simpy" / "all_data.ndjson").read_bytes()
    docs = runs["fast"][1]
    changes = [d for d in docs if d["event_type"] == "change"]
    assert [(d["host"]["name"], d["change"]["settings"]) for d in changes] == [
        ("app-01", [{"name": "db_pool.max_size", "old": "10", "new": "4"}]),
        ("app-02", [{"name": "heap.max_mb", "old": "2048.0", "new": "3072.0"}])]
    assert changes[0]["message"].endswith("(applied live)")
    assert changes[1]["message"].endswith("(restarting to apply)")
    metrics = [d for d in docs if d.get("service", {}).get("type") == "app-instance"]

    def seen(host: str, after: bool, pick) -> set:
        return {pick(d) for d in metrics if d["host"]["name"] == host
                and (d["@timestamp"] > "2026-11-27T10:02:00") == after}

    pool = lambda d: d["db"]["client"]["connection"]["max"]  # noqa: E731
    heap = lambda d: d["jvm"]["memory"]["limit"]  # noqa: E731
    state = lambda d: d["service"]["state"]  # noqa: E731
    assert seen("app-01", False, pool) == {10} and seen("app-01", True, pool) == {4}
    assert seen("app-01", True, state) == {"running"}
    assert seen("app-02", False, heap) == {2048 * 1024 * 1024}
    assert seen("app-02", True, heap) == {2048 * 1024 * 1024, 3072 * 1024 * 1024}
    assert "stopped" in seen("app-02", True, state)


def test_a_push_before_a_split_holds_in_the_later_segment(tmp_path):
    """A segment starts from a fresh warm-up: a push made before it is applied from its start,
    so one worker or two write the same bytes and the later segment runs with it."""
    text = "traffic: {base_tps: 1}\n" + _push("today 01:00", None, "{worker_threads: 33}")
    one = _run(tmp_path, "w1", text, "today 00:00", "today 07:00", "--workers", "1")
    _run(tmp_path, "w2", text, "today 00:00", "today 07:00", "--workers", "2")
    assert (tmp_path / "w1" / "all_data.ndjson").read_bytes() == \
        (tmp_path / "w2" / "all_data.ndjson").read_bytes()
    plan = plan_run(load_scenario(tmp_path / "w1.yaml"), dt.date(2026, 11, 27))
    assert len(plan.segments) == 2 and plan.segments[1].changes[0].epoch < \
        plan.segments[1].window.start.timestamp()
    threads = [(d["@timestamp"], d["thread_pool"]["max"]) for d in one
               if d.get("service", {}).get("type") == "app-instance"]
    assert {m for t, m in threads if t <= "2026-11-27T01:00:00"} == {40}
    assert {m for t, m in threads if t > "2026-11-27T01:00:00"} == {33}
    assert sum(d["event_type"] == "change" for d in one) == 4


def test_the_bad_push_hurts_at_the_lunch_peak_and_not_at_night(tmp_path):
    """The demo's push (the DB pools shrunk to three connections) made before a quiet night
    half hour leaves the pools enough; made at 11:00 as in the demo, it leaves the late
    morning enough too, and the pools run out only when the lunch peak arrives (HikariCP's
    connection timeouts). The ground truth agrees: the demo's push has one incident record,
    caused by the change, whose symptoms (the waits for a connection first) start after the
    push and run through the lunch exhaustion; the night push has none."""
    demo = (ROOT / "scenarios" / "bad_config_push.yaml").read_text()
    assert 'at: "today 11:00"' in demo

    def pool_timeouts(at: str, start: str, end: str) -> tuple[list[str], list[dict]]:
        text = demo.replace('at: "today 11:00"', f'at: "{at}"')
        name = at[-5:].replace(":", "")
        docs = _run(tmp_path, name, text, start, end, "--workers", "1")
        assert sum(d["event_type"] == "change" for d in docs) == 4
        lines = (tmp_path / name / "incidents.ndjson").read_text().splitlines()
        return [d["@timestamp"] for d in docs if d["event_type"] == "error" and
                d["error"]["type"] == "java.sql.SQLTransientConnectionException"
                ], [json.loads(line) for line in lines[1::2]]

    assert pool_timeouts("today 02:00", "today 02:00", "today 02:30") == ([], [])
    timeouts, records = pool_timeouts("today 11:00", "today 10:55", "today 12:45")
    morning = [t for t in timeouts if t < "2026-11-27T12:15"]
    lunch = [t for t in timeouts if t >= "2026-11-27T12:25"]
    assert len(morning) < 30 < 500 < len(lunch)
    (rec,) = records
    push = dt.datetime(2026, 11, 27, 11, 0, tzinfo=dt.UTC).timestamp()
    assert rec["incident_id"] == "cfg-2291" and rec["observed"]
    assert rec["cause"] == {"kind": "change", "id": "cfg-2291", "change_kind": "config_push",
                            "settings": [{"name": "db_pool.max_size", "old": "10", "new": "3"}],
                            "hosts": ["app-01", "app-02", "app-03", "app-04"],
                            "at": "2026-11-27T11:00:00.000Z"}
    assert rec["incident_type"] == "db_connection_pool_exhaustion"
    start = dt.datetime.fromisoformat(rec["symptom_start"]).timestamp()
    assert rec["delay_to_first_symptom_s"] == start - push >= 300  # slower first, not at once
    assert rec["symptom_end"] >= "2026-11-27T12:40"  # one incident, through the lunch exhaustion
    assert rec["impact"]["errors_by_kind"]["db_pool_timeout"] > 500
