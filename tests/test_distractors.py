"""Distractors (issue #20): benign changes and anomalies drawn per day from the seed, acting
through the model, recorded in the ground truth as leads that are not causes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from conftest import unmapped_record_fields

from sim.config import parse_scenario
from sim.core.clock import Window
from sim.model.distractors import NEAR_BEFORE_S, draw_distractors
from sim.model.faults import ActiveFault

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def _scenario(per_day: float, seed: int = 42, **extra):
    return parse_scenario({"name": "d", "seed": seed, "distractors": {"per_day": per_day}, **extra}, "t")


def _window(days: int, first: dt.datetime = DAY) -> Window:
    return Window(first, first + dt.timedelta(days=days))


def test_a_days_distractors_do_not_depend_on_the_window():
    """Day 3's draws are the same whether the window holds it alone, a week around it, or
    only its afternoon (what falls outside the window still advances the day's stream)."""
    scenario = _scenario(4)
    third = DAY + dt.timedelta(days=2)
    alone = draw_distractors(scenario, _window(1, third), [])
    noon = third + dt.timedelta(hours=12)
    afternoon = draw_distractors(scenario, Window(noon, noon + dt.timedelta(hours=12)), [])
    assert afternoon[0] == [c for c in alone[0] if c.epoch >= noon.timestamp()]
    assert afternoon[1] == [d for d in alone[1] if d.end_epoch > noon.timestamp()]
    week = draw_distractors(scenario, _window(7), [])
    lo, hi = third.timestamp(), third.timestamp() + 86400
    assert alone[0] == [c for c in week[0] if lo <= c.epoch < hi]
    assert alone[1] == [d for d in week[1] if lo <= d.start_epoch < hi]
    assert alone[0] or alone[1]
    assert draw_distractors(_scenario(0), _window(7), []) == ([], [])


def test_some_distractors_come_just_before_an_incident_and_every_kind_shows_up():
    """Over a month with one incident a day at 15:00, a good share of the changes and cache
    flushes land within NEAR_BEFORE_S before it (the lead an investigator finds first);
    batch jobs stay in the quiet hours; all four kinds occur."""
    days = 30
    faults = [ActiveFault(f"f{i}", "payment_gateway_slowdown", DAY.timestamp() + i * 86400 + 15 * 3600,
                          DAY.timestamp() + i * 86400 + 15 * 3600 + 600, 0, 1, None, "x")
              for i in range(days)]
    changes, anomalies = draw_distractors(_scenario(3), _window(days), faults)
    starts = [f.start_epoch for f in faults]

    def near(t: float) -> bool:
        return any(NEAR_BEFORE_S[0] - 60 <= s - t <= NEAR_BEFORE_S[1] + 60 for s in starts)

    daytime = [c.epoch for c in changes] + [d.start_epoch for d in anomalies if d.kind == "cache_flush"]
    share = sum(map(near, daytime)) / len(daytime)
    assert 0.2 < share < 0.6
    kinds = {c.kind for c in changes} | {d.kind for d in anomalies}
    assert kinds == {"config_push", "deploy", "batch_job", "cache_flush"}
    for job in (d for d in anomalies if d.kind == "batch_job"):
        hour = (job.start_epoch % 86400) / 3600
        assert 1.0 <= hour <= 5.0 and job.end_epoch > job.start_epoch
    assert all(c.benign for c in changes)


def _run(tmp_path: Path, name: str, text: str, start: dt.datetime, end: dt.datetime
         ) -> tuple[list[dict], list[dict]]:
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(text)
    out = tmp_path / name
    fmt = "%Y-%m-%d %H:%M"
    subprocess.run([sys.executable, str(ROOT / "run_sim.py"), str(scenario), "--today", "2026-11-27",
                    "--start", start.strftime(fmt), "--end", end.strftime(fmt), "--output-dir",
                    str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(x) for x in (out / "incidents.ndjson").read_text().splitlines()[1::2]]
    docs = [json.loads(x) for x in (out / "all_data.ndjson").read_text().splitlines()[1::2]]
    return docs, records


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch - epoch % 60, dt.UTC)


def _night_draws():
    """What NIGHT draws for the test day, to pick a window that holds one of them."""
    scenario = parse_scenario({"name": "night", "seed": 11, "traffic": {"base_tps": 4},
                               "distractors": {"per_day": 8}}, "t")
    return draw_distractors(scenario, _window(1, dt.datetime(2026, 11, 27, tzinfo=dt.UTC)), [])


NIGHT = "name: night\nseed: 11\ntraffic: {base_tps: 4}\ndistractors: {per_day: 8}\n"


def test_a_batch_job_heats_its_host_and_is_recorded_as_a_lead_not_a_cause(tmp_path):
    """The day's first batch job: its host runs hotter than the others while it runs, by
    about the cores it holds; its record says what it was and why it is not a cause, and no
    incident is recorded."""
    _, anomalies = _night_draws()
    job = next(d for d in anomalies if d.kind == "batch_job")
    docs, records = _run(tmp_path, "job", NIGHT, _utc(job.start_epoch) - dt.timedelta(minutes=3),
                         _utc(job.end_epoch) + dt.timedelta(minutes=3))
    assert records and all(r["distractor"] and r["why_not_a_cause"] for r in records)
    assert unmapped_record_fields(records) == set()
    (rec,) = [r for r in records if r["incident_id"] == job.distractor_id]
    assert rec["cause"]["hosts"] == [job.host] and rec["cause"]["cores"] == job.cores
    metrics = [d for d in docs if d["event_type"] == "infrastructure_metric"
               and d["service"]["type"] == "app-instance"
               and rec["cause"]["at"] < d["@timestamp"] <= rec["cause"]["end"]]

    def cpu(hosts: set[str]) -> float:
        values = [d["host"]["cpu"]["usage"] for d in metrics if d["host"]["name"] in hosts]
        return sum(values) / len(values)

    others = {d["host"]["name"] for d in metrics} - {job.host}
    assert cpu({job.host}) > cpu(others) + 0.8 * job.cores / 8


def test_a_benign_push_is_written_like_any_change_and_never_blamed(tmp_path):
    """The day's first benign config push: a change document per host, a distractor record,
    and no incident record naming it as a cause."""
    changes, _ = _night_draws()
    push = next(c for c in changes if c.kind == "config_push")
    docs, records = _run(tmp_path, "push", NIGHT, _utc(push.epoch) - dt.timedelta(minutes=1),
                         _utc(push.epoch) + dt.timedelta(minutes=3))
    written = [d for d in docs if d["event_type"] == "change" and d["change"]["id"] == push.change_id]
    assert sorted(d["host"]["name"] for d in written) == list(push.hosts)
    (path, value), = push.settings
    assert {(s["name"], s["new"]) for d in written for s in d["change"]["settings"]} == {(path, str(value))}
    mine = [r for r in records if r["incident_id"] == push.change_id]
    assert len(mine) == 1 and mine[0]["distractor"] and mine[0]["origin"] == "distractor"
    assert not any(r.get("cause", {}).get("id") == push.change_id for r in records if not r.get("distractor"))
