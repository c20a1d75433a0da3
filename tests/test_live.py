"""Live mode (issue #11): backfill, handoff, runtime faults, stopping, streaming, replay.

Every run here uses a fake clock or a high --speed: nothing sleeps for minutes. The main run
crosses a UTC midnight, so its backfill is a segment of its own (simulated like a batch
segment) and the live segment starts at that split: the handoff is inside the live segment,
a fault is injected at runtime, its recovery ends (its record is written while the run goes
on) and the run is stopped before the window ends.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearch_fixtures import opensearch_node  # noqa: F401

from sim.config import load_scenario
from sim.live.loop import FaultUpdate, LiveOptions, LiveRun, pin_runtime_fault, read_replay
from sim.model.faults import ActiveFault, FaultSchedule
from sim.outputs.sink import SinkSummary
from sim.run.batch import simulate
from sim.telemetry.encoding import EncodedDoc

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 27)


def at(hour: int, minute: int, day: dt.date = TODAY) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC).timestamp()


class FakeClock:
    """Wall-clock time that only moves when the live loop sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def scenario(**overrides: Any) -> Any:
    values = {"window.start": "yesterday 23:00", "window.end": "today 03:00",
              "traffic.base_tps": 3.0, "random_incidents.per_day": 0}
    values.update(overrides)
    return load_scenario(ROOT / "scenarios" / "baseline.yaml", values)


NOW = at(0, 20)  # the wall clock when the live run starts: after the midnight split
INJECT = at(0, 25)
SURGE = at(1, 0)  # arrivals up to 01:01 are drawn by then: the surge starts at 01:01
STOP = at(2, 40)  # after the fault's recovery window (+10 min): its record is final by then


def slowdown(start: float, end: float) -> ActiveFault:
    return ActiveFault("live-1", "payment_gateway_slowdown", start, end, 60.0, 130.0, None,
                       "payment_gateway_timeout")


def documents(path: Path) -> list[tuple[str, dict[str, Any]]]:
    lines = path.read_bytes().splitlines()
    return [(orjson.loads(a)["index"]["_id"], orjson.loads(d))
            for a, d in zip(lines[::2], lines[1::2], strict=True)]


class WallClockCheck:
    """A sink that measures how far documents are dated after the wall clock when emitted."""

    accepts_encoded = True
    remote = False
    send_when_idle = False

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.worst_ahead_s = -math.inf
        self.summary = SinkSummary("wall-clock-check")

    def emit(self, doc_id: str, doc: Any) -> None:
        self._check(doc.body if type(doc) is EncodedDoc else orjson.dumps(doc))

    def emit_raw(self, lines: bytes, count: int) -> None:
        for body in lines.splitlines()[1::2]:  # action line, document line
            self._check(body)

    def _check(self, body: bytes) -> None:
        i = body.index(b'"@timestamp":"') + 14
        ts = dt.datetime.fromisoformat(body[i:i + 24].decode().replace("Z", "+00:00"))
        self.worst_ahead_s = max(self.worst_ahead_s, ts.timestamp() - self.clock.now)
        self.summary.generated += 1
        self.summary.indexed += 1

    def flush(self) -> None:
        pass

    def close(self, ok: bool = True) -> SinkSummary:
        return self.summary


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("live")
    clock = FakeClock(NOW)
    log: list[str] = []
    polls: list[float] = []
    handoffs: list[float] = []
    written_before_stop: list[bytes] = []
    run: LiveRun

    def source(boundary: float) -> FaultUpdate:
        polls.append(boundary)
        if boundary >= STOP:
            run.request_stop()
            written_before_stop.append((out / "incidents.ndjson").read_bytes())
        error = "control.yaml: faults[0].duration: not a duration" \
            if at(0, 22) <= boundary < at(0, 23) else None  # an invalid edit for a minute
        faults: tuple[ActiveFault, ...] = ()
        if boundary >= INJECT:
            faults += (slowdown(INJECT - 30.0, INJECT + 600.0),)
        if boundary >= SURGE:
            faults += (ActiveFault("live-2", "traffic_surge", SURGE, SURGE + 300.0, 30.0, 1.0,
                                   None, "traffic_surge"),)
        return FaultUpdate(faults, boundary in (INJECT, SURGE), error)

    check = WallClockCheck(clock)
    run = LiveRun(scenario(), TODAY, out, [check], workers=2, options=LiveOptions(
        clock=clock, bucket_s=1.0, fault_source=source, handle_signals=False,
        log=log.append, on_handoff=lambda: handoffs.append(clock.time())))
    result = run.run()
    return {"out": out, "result": result, "log": log, "polls": polls, "handoffs": handoffs,
            "run": run, "written_before_stop": written_before_stop, "check": check}


def test_live_run_is_repeated_byte_for_byte_by_its_batch_replay(
        live_run: dict[str, Any], tmp_path: Path) -> None:
    out = live_run["out"]
    scenario_, today, pinned = read_replay(out / "replay.yaml")
    assert pinned.splits == (at(0, 0),)  # the backfill segment ends at midnight
    assert pinned.stop_epoch == STOP + 1.0  # asked to stop at STOP: that bucket still ran
    replay = simulate(scenario_, today, tmp_path, workers=1, pinned=pinned)
    assert (out / "all_data.ndjson").read_bytes() == (tmp_path / "all_data.ndjson").read_bytes()
    live_records = sorted((out / "incidents.ndjson").read_bytes().splitlines())
    assert live_records == sorted((tmp_path / "incidents.ndjson").read_bytes().splitlines())
    assert replay.total == live_run["result"].total
    # the alerts fired and resolved bucket by bucket are those the batch evaluates at once
    assert (out / "alerts.ndjson").read_bytes() == (tmp_path / "alerts.ndjson").read_bytes()
    assert b'"checkout-latency' in (out / "alerts.ndjson").read_bytes()


def test_handoff_is_continuous_without_gap_or_duplicate(live_run: dict[str, Any]) -> None:
    docs = documents(live_run["out"] / "all_data.ndjson")
    ids = [doc_id for doc_id, _ in docs]
    assert len(ids) == len(set(ids))
    handoff = live_run["result"].live["handoff"]
    assert handoff == "2026-11-27T00:20:00Z"
    per_minute: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    slow: Counter[str] = Counter()
    for _, doc in docs:
        if doc["event_type"] == "transaction":
            minute = doc["@timestamp"][:16]
            per_minute[minute] += 1
            errors[minute] += doc["status"] == "error"
            slow[minute] += doc["response_time_ms"] > 2000
    minutes = [dt.datetime.fromtimestamp(at(0, 0) + 60 * i, dt.UTC).strftime("%Y-%m-%dT%H:%M")
               for i in range(10, 25)]  # 00:10 .. 00:24: the handoff, before the fault
    counts = [per_minute[m] for m in minutes]
    mean = sum(counts) / len(counts)
    assert min(counts) > 0  # no gap
    for m in minutes:  # no seam: the handoff minute is like its neighbours (Poisson, 4 sd)
        assert abs(per_minute[m] - mean) < 4 * mean ** 0.5 + 2, (m, counts)
        assert errors[m] <= max(3, 0.1 * per_minute[m]), m
        assert slow[m] <= max(2, 0.05 * per_minute[m]), m
    assert live_run["handoffs"] == [at(0, 20)]  # bulk-load settings end once, at the handoff


def test_no_document_is_dated_after_the_wall_clock(live_run: dict[str, Any]) -> None:
    # a bucket is simulated once the wall clock has passed its end (1 ms: rounding)
    assert live_run["check"].worst_ahead_s <= 0.001
    assert live_run["check"].summary.generated == live_run["result"].total


def test_runtime_fault_produces_its_incident_and_record(live_run: dict[str, Any]) -> None:
    result = live_run["result"]
    fault, surge = result.live["runtime_faults"]
    # it came with a start 30 s in the past: it starts at the boundary it was first seen at
    assert (fault["id"], fault["start"], fault["end"]) == (
        "live-1", "2026-11-27T00:25:00Z", "2026-11-27T00:35:00Z")
    # a surge cannot change arrivals already drawn: it starts with the next arrival block
    assert (surge["id"], surge["start"], surge["end"]) == (
        "live-2", "2026-11-27T01:01:00Z", "2026-11-27T01:06:00Z")
    records = [orjson.loads(line) for line in
               (live_run["out"] / "incidents.ndjson").read_bytes().splitlines()[1::2]]
    (record,) = [r for r in records if r["incident_id"] == "live-1"]
    assert record["origin"] == "runtime" and record["observed"]
    assert "2026-11-27T00:25" <= record["symptom_start"] < "2026-11-27T00:40"
    assert record["impact"]["errors_by_kind"].get("gateway_timeout", 0) > 0
    # written while the run went on, when its recovery window was over
    assert b'"incident_id":"live-1"' in live_run["written_before_stop"][0]
    # ...with the alerts it raised while it ran: paged within three minutes
    assert record["alerts"] and 0 < record["detection_delay_s"] <= 180
    summary = orjson.loads((live_run["out"] / "run_summary.json").read_bytes())
    assert [f["start"] for f in summary["live"]["runtime_faults"]] == [
        "2026-11-27T00:25:00Z", "2026-11-27T01:01:00Z"]


def test_invalid_control_edit_is_one_line_and_keeps_going(live_run: dict[str, Any]) -> None:
    lines = [line for line in live_run["log"] if line.startswith("control:")]
    assert lines == ["control: control.yaml: faults[0].duration: not a duration (ignored; "
                     "the previous faults and changes stay)"]
    polls = live_run["polls"]
    assert polls[0] == at(0, 20) and polls == sorted(set(polls))  # every bucket, in order
    assert live_run["result"].live["stopped"] == "2026-11-27T02:40:01Z"


def test_fault_schedule_applies_runtime_faults_to_captured_factors() -> None:
    now = [0.0]
    batch = FaultSchedule([], lambda: now[0])
    assert batch.multiplier("payment_gateway_slowdown")() == 1.0
    live = FaultSchedule([], lambda: now[0], live=True)
    gateway = live.multiplier("payment_gateway_slowdown")
    leak = live.additive("memory_leak", "app-02")
    assert gateway() == 1.0 and leak() == 0.0
    live.apply([slowdown(10.0, 200.0),
                ActiveFault("m", "memory_leak", 10.0, 200.0, 0.0, 1.5, "app-02", "memory_pressure")])
    now[0] = 150.0  # after the slowdown's 60 s ramp
    assert gateway() == 131.0 and leak() == 1.5
    live.apply([])
    assert gateway() == 1.0 and leak() == 0.0


def test_pinning_runtime_faults_never_changes_the_past() -> None:
    first = pin_runtime_fault(None, slowdown(90.0, 200.0), 100.0)
    assert first is not None and (first.start_epoch, first.end_epoch) == (100.0, 200.0)
    from sim.live.loop import _RuntimeFault

    running = _RuntimeFault(slowdown(90.0, 200.0), first)
    shortened = pin_runtime_fault(running, slowdown(90.0, 120.0), 150.0)
    assert shortened is not None and shortened.end_epoch == 150.0  # ends now, not in the past
    removed = pin_runtime_fault(running, None, 150.0)
    assert removed is not None and removed.end_epoch == 150.0
    over = _RuntimeFault(slowdown(90.0, 120.0), slowdown(100.0, 120.0))
    assert pin_runtime_fault(over, slowdown(90.0, 500.0), 150.0) == over.pinned
    scheduled = _RuntimeFault(slowdown(300.0, 400.0), slowdown(300.0, 400.0))
    assert pin_runtime_fault(scheduled, None, 150.0) is None  # never started: gone
    moved = pin_runtime_fault(scheduled, slowdown(250.0, 260.0), 150.0)
    assert moved is not None and (moved.start_epoch, moved.end_epoch) == (250.0, 260.0)
    surge = ActiveFault("s", "traffic_surge", 100.0, 400.0, 0.0, 1.0, None, "traffic_surge")
    delayed = pin_runtime_fault(None, surge, 100.0, drawn=160.0)  # arrivals drawn to 160
    assert delayed is not None and (delayed.start_epoch, delayed.end_epoch) == (160.0, 460.0)
    # seen again unchanged while more arrivals were drawn: pinned once, never moved
    assert pin_runtime_fault(_RuntimeFault(surge, delayed), surge, 130.0, drawn=220.0) == delayed


def _live_cli(out: Path, *extra: str, end: bool = True) -> subprocess.Popen[str]:
    """A live run from half an hour ago (to four hours from now, or ``end`` False: until
    stopped), 20 times as fast as the wall clock after the handoff."""
    now = time.time()
    start = dt.datetime.fromtimestamp(now - 1800, dt.UTC).strftime("%Y-%m-%dT%H:%M:00")
    until = dt.datetime.fromtimestamp(now + 4 * 3600, dt.UTC).strftime("%Y-%m-%dT%H:%M:00")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_sim.py"), str(ROOT / "scenarios" / "baseline.yaml"),
         "--start", start, *(("--end", until) if end else ()), "--base-tps", "2",
         "--incidents-per-day", "0",
         "--live", "--speed", "20", "--output-dir", str(out), "--quiet", "--workers", "1",
         *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)


def _wait_for_line(proc: subprocess.Popen[str], needle: str, limit: int = 200) -> list[str]:
    seen = []
    assert proc.stderr is not None
    for _ in range(limit):
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"no {needle!r} in {seen}")


def test_sigterm_stops_at_the_next_bucket_with_a_clean_summary(tmp_path: Path) -> None:
    proc = _live_cli(tmp_path)
    try:
        _wait_for_line(proc, "live: handoff at")
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = orjson.loads((tmp_path / "run_summary.json").read_bytes())
    assert summary["live"]["stopped"] is not None
    assert all(s["unaccounted"] == 0 for s in summary["sinks"])
    docs = documents(tmp_path / "all_data.ndjson")
    assert len(docs) == summary["total_documents"] > 0
    last = max(doc["@timestamp"] for _, doc in docs)
    assert last <= summary["live"]["stopped"]  # nothing after the stop
    # on the real clock too, the replay command writes the same bytes as a batch run
    replay = subprocess.run(
        [sys.executable, str(ROOT / "run_sim.py"), "replay", str(tmp_path / "replay.yaml"),
         "--output-dir", str(tmp_path / "replay"), "--workers", "1"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert replay.returncode == 0, replay.stderr
    assert (tmp_path / "replay" / "all_data.ndjson").read_bytes() == \
        (tmp_path / "all_data.ndjson").read_bytes()


def test_live_with_start_alone_runs_from_there_until_stopped(tmp_path: Path) -> None:
    """--live --start T without --end: backfill from T, then live until SIGTERM; the window
    ends where a live run of whole days ends (24:00 UTC of --today)."""
    today = dt.datetime.now(dt.UTC).date()
    proc = _live_cli(tmp_path, "--today", today.isoformat(), end=False)
    try:
        _wait_for_line(proc, "live: handoff at")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = orjson.loads((tmp_path / "run_summary.json").read_bytes())
    start = proc.args[proc.args.index("--start") + 1]  # type: ignore[union-attr]
    assert summary["window"]["start"] == start + "Z"
    assert summary["window"]["end"] == f"{today + dt.timedelta(days=1)}T00:00:00Z"
    assert summary["live"]["stopped"] is not None and summary["total_documents"] > 0
    first = min(doc["@timestamp"] for _, doc in documents(tmp_path / "all_data.ndjson"))
    assert start <= first < summary["live"]["handoff"]  # the backfill began at --start


def test_speed_without_live_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_sim.py"), str(ROOT / "scenarios" / "baseline.yaml"),
         "--speed", "10", "--output-dir", str(tmp_path / "o")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--live" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_batch_window_past_the_wall_clock_prints_the_future_notice(tmp_path: Path) -> None:
    now = time.time()
    start = dt.datetime.fromtimestamp(now + 3600, dt.UTC).strftime("%Y-%m-%dT%H:%M:00")
    end = dt.datetime.fromtimestamp(now + 3900, dt.UTC).strftime("%Y-%m-%dT%H:%M:00")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_sim.py"), str(ROOT / "scenarios" / "baseline.yaml"),
         "--start", start, "--end", end, "--base-tps", "1", "--output-dir", str(tmp_path),
         "--quiet", "--workers", "1"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "dated in the future" in line]
    assert len(notes) == 1 and "--live" in notes[0]


def test_node_restart_during_a_live_run_loses_nothing(opensearch_node: Any, tmp_path: Path  # noqa: F811
                                                      ) -> None:
    if not opensearch_node.own_node:
        pytest.skip("needs the project's own node to restart it")
    from sim.outputs.index_setup import ensure_index, load_mapping
    from sim.outputs.mapping import MAPPING_PATH
    from sim.outputs.opensearch import OpenSearchSink, connect

    client = connect(opensearch_node.url)
    index = f"live-restart-{os.getpid()}"
    ensure_index(client, index, load_mapping(MAPPING_PATH))
    sink = OpenSearchSink(client, index, dead_letter_path=tmp_path / "dead.ndjson",
                          queue_docs=2000, backoff_cap=2.0)
    now = time.time()
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    sc = scenario(**{"window.start": dt.datetime.fromtimestamp(now - 1200, dt.UTC).isoformat(),
                     "window.end": dt.datetime.fromtimestamp(now + 6 * 3600, dt.UTC).isoformat(),
                     "traffic.base_tps": 2.0})
    handoff = threading.Event()
    log: list[str] = []
    run = LiveRun(sc, today, tmp_path, [sink], workers=1, options=LiveOptions(
        speed=20.0, handle_signals=False, log=log.append, on_handoff=handoff.set))
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(result=run.run()), daemon=True)
    runner.start()
    try:
        assert handoff.wait(300)
        time.sleep(3)
        opensearch_node.script("stop", timeout=300)
        time.sleep(5)  # the run goes on against a missing node: it falls behind
        opensearch_node.script("start", timeout=600)
        for _ in range(120):  # it catches up
            if any(line.startswith("live: caught up") for line in log):
                break
            time.sleep(1)
    finally:
        run.request_stop()
        runner.join(900)
    result = outcome["result"]
    (os_summary,) = [s for s in result.sinks if s.name == "opensearch"]
    assert os_summary.unaccounted == 0 and os_summary.dead_lettered == 0
    client.indices.refresh(index=index)
    docs = documents(tmp_path / "all_data.ndjson")
    assert client.count(index=index)["count"] == len(docs) == os_summary.generated
    assert result.live["max_lag_s"] > 1.0  # it waited for the node...
    assert any(line.startswith("live: caught up") for line in log)  # ...then caught up
    client.indices.delete(index=index)


def test_live_segment_starts_shortly_before_the_wall_clock() -> None:
    """A morning's backfill runs on the workers; this process catches up half an hour."""
    sc = scenario(**{"window.start": "today 00:00", "window.end": "today 23:59"})
    run = LiveRun(sc, TODAY, None, options=LiveOptions(clock=FakeClock(at(14, 25))))
    run._plan()
    assert run.splits[-1] == at(13, 55)
    assert run.plans[-1].window.start.timestamp() == at(13, 55)
    assert len(run.plans) == 3  # the morning is cut where half its traffic has come: 2 cores
    assert all(p.stop_epoch is None for p in run.plans)


def test_live_cli_streams_with_live_index_settings_and_stops_clean(
        opensearch_node: Any, tmp_path: Path) -> None:  # noqa: F811
    """The command line's wiring: bulk-load settings end at the handoff, documents arrive
    while the run goes on, SIGTERM leaves every document indexed."""
    from sim.outputs.opensearch import connect

    client = connect(opensearch_node.url)
    index = f"live-cli-{os.getpid()}"
    proc = _live_cli(tmp_path, "--opensearch", opensearch_node.url, "--index", index)
    try:
        _wait_for_line(proc, "live: handoff at")
        settings = client.indices.get_settings(index=index, flat_settings=True)
        assert settings[index]["settings"].get("index.refresh_interval") != "-1"
        for _ in range(60):  # live documents become searchable while it runs
            if client.count(index=index)["count"] > 0:
                break
            time.sleep(1)
        assert client.count(index=index)["count"] > 0
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = orjson.loads((tmp_path / "run_summary.json").read_bytes())
    (os_sink,) = [s for s in summary["sinks"] if s["name"] == "opensearch"]
    assert os_sink["unaccounted"] == 0
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == os_sink["generated"] == \
        summary["total_documents"]
    client.indices.delete(index=index)


def test_window_starting_later_waits_for_it_after_a_fast_warm_up(tmp_path: Path) -> None:
    """No document is dated after the wall clock, also when the window starts later."""
    clock = FakeClock(at(0, 0))
    sleeps: list[tuple[float, float]] = []
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        sleeps.append((clock.now, seconds))
        real_sleep(seconds)

    clock.sleep = sleep  # type: ignore[method-assign]
    sc = scenario(**{"window.start": "today 00:30", "window.end": "today 00:35"})
    run = LiveRun(sc, TODAY, tmp_path, options=LiveOptions(clock=clock, handle_signals=False,
                                                           log=lambda _: None))
    result = run.run()
    assert result.live["handoff"] == "2026-11-27T00:30:00Z"
    assert sleeps[0] == (at(0, 0), at(0, 30) - at(0, 0) + 1.0)  # one sleep to the first bucket
    docs = documents(tmp_path / "all_data.ndjson")
    assert docs and max(d["@timestamp"] for _, d in docs) <= "2026-11-27T00:35:00.000Z"


def test_a_fault_source_object_is_polled_and_shown_what_runs(tmp_path: Path) -> None:
    """ControlFile's shape: ``poll`` every bucket, ``write_state`` at most once a second."""
    clock = FakeClock(at(0, 30))

    class Source:
        def __init__(self) -> None:
            self.polls: list[float] = []
            self.states: list[tuple[float, list[str]]] = []

        def poll(self, boundary: float) -> FaultUpdate:
            self.polls.append(boundary)
            return FaultUpdate((), False, None)

        def write_state(self, boundary: float, others: list[ActiveFault]) -> None:
            self.states.append((boundary, [f.fault_id for f in others]))

    source = Source()
    sc = scenario(**{"window.start": "today 00:20", "window.end": "today 00:31"})
    LiveRun(sc, TODAY, tmp_path, options=LiveOptions(
        clock=clock, bucket_s=0.5, fault_source=source, handle_signals=False,
        log=lambda _: None)).run()
    assert source.polls == [at(0, 30) + 0.5 * i for i in range(120)]
    assert [b for b, _ in source.states] == [at(0, 30) + i for i in range(60)]


def test_changes_in_the_control_file_reach_the_running_storefront_and_replay(tmp_path: Path) -> None:
    """A config push and a deploy written into the control file while the run goes on are
    made at the next boundary, a bad edit is one log line, removing a made change does not
    undo it, its record is written live, and the batch replay writes the same bytes."""
    from sim.live.control import ControlFile

    out = tmp_path / "live"
    out.mkdir()
    control = out / "control.yaml"
    sc = scenario(**{"window.start": "today 00:20", "window.end": "today 00:50",
                     "traffic.base_tps": 6.0})
    ctl = ControlFile(control, sc, TODAY)
    edits = {
        at(0, 32): "changes:\n  - {id: tiny, kind: config_push, at: now, "
                   "settings: {db_pool.max_size: 1, cpu_ms_scale: 4}}\n"
                   "  - {id: v2, kind: deploy, at: now+1m, version: 2.14.0, hosts: [app-03]}\n",
        at(0, 36): "changes:\n  - {id: tiny, kind: config_push, at: now, settings: {db_pool.max_size: 9}}\n",
        at(0, 40): "changes: []\n",
    }

    class Source:
        def poll(self, boundary: float) -> Any:
            if boundary in edits:
                control.write_text(edits[boundary])
            return ctl.poll(boundary)

        def write_state(self, boundary: float, others: list[ActiveFault]) -> None:
            ctl.write_state(boundary, others)

    log: list[str] = []
    result = LiveRun(sc, TODAY, out, options=LiveOptions(
        clock=FakeClock(at(0, 30)), fault_source=Source(), handle_signals=False,
        log=log.append)).run()
    assert [line.split(": ", 2)[2] for line in log if line.startswith("control:")] == [
        "changes[0]: change 'tiny' was made at 2026-11-27T00:32:00Z; a change cannot be edited "
        "once made (add a new change to alter or revert it) (ignored; the previous faults and "
        "changes stay)"]
    assert [c["id"] for c in result.live["runtime_changes"]] == ["baseline-live-tiny", "baseline-live-v2"]
    docs = [d for _, d in documents(out / "all_data.ndjson")]
    pool = {d["@timestamp"][11:19]: d["db"]["client"]["connection"]["max"] for d in docs
            if d["event_type"] == "infrastructure_metric" and d["host"]["name"] == "app-01"}
    assert (pool["00:31:50"], pool["00:32:00"], pool["00:32:10"], pool["00:49:50"]) == (10, 10, 1, 1)
    version = {d["@timestamp"][11:19]: d["service"]["version"] for d in docs
               if d["event_type"] == "infrastructure_metric" and d["host"]["name"] == "app-03"}
    assert version["00:32:50"] == "2.13.4" and version["00:49:50"] == "2.14.0"
    changes = [d for d in docs if d["event_type"] == "change"]
    assert [(d["@timestamp"][11:19], d.get("host", {}).get("name")) for d in changes][:4] == [
        ("00:32:00", f"app-0{i}") for i in range(1, 5)]
    assert changes[-1]["change"]["id"] == "baseline-live-v2" and "rollout complete" in changes[-1]["message"]
    records = [orjson.loads(line) for line in (out / "incidents.ndjson").read_bytes().splitlines()[1::2]]
    (record,) = [r for r in records if r["incident_id"] == "baseline-live-tiny"]
    assert record["origin"] == "runtime" and record["cause"]["kind"] == "change"
    state = orjson.loads((out / "control.state.json").read_bytes())
    assert [(c["id"], c["status"], c["in_file"]) for c in state["changes"]] == [
        ("tiny", "made", False), ("v2", "made", False)]

    replay_dir = tmp_path / "replay"
    scenario_, today, pinned = read_replay(out / "replay.yaml")
    # each scheduled at the boundary its time falls in: now, and a minute later
    assert [(b, c.change_id) for b, c in pinned.runtime_changes] == [
        (at(0, 32), "baseline-live-tiny"), (at(0, 33), "baseline-live-v2")]
    simulate(scenario_, today, replay_dir, workers=1, pinned=pinned)
    assert (out / "all_data.ndjson").read_bytes() == (replay_dir / "all_data.ndjson").read_bytes()
    assert sorted((out / "incidents.ndjson").read_bytes().splitlines()) == \
        sorted((replay_dir / "incidents.ndjson").read_bytes().splitlines())


def test_change_command_reaches_a_running_cli_live_run(tmp_path: Path) -> None:
    """The wiring end to end: `storefront-sim change` writes the control file, the running
    `--live` process makes the change at its next boundary, `faults` lists it as made, and
    `replay` writes the same bytes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = _live_cli(tmp_path)
    try:
        _wait_for_line(proc, "live: handoff at")
        made = subprocess.run(
            [sys.executable, str(ROOT / "run_sim.py"), "change", "config_push", "--set",
             "db_pool.max_size=2", "--hosts", "app-02", "--id", "pool", "--output-dir", str(tmp_path)],
            capture_output=True, text=True, env=env, timeout=60)
        assert made.returncode == 0, made.stderr
        _wait_for_line(proc, "change baseline-live-pool: config_push db_pool.max_size=2 at ")
        listing = ""
        for _ in range(50):  # the state file is rewritten about once a second
            listing = subprocess.run([sys.executable, str(ROOT / "run_sim.py"), "faults",
                                      "--output-dir", str(tmp_path)],
                                     capture_output=True, text=True, env=env, timeout=60).stdout
            rows = [line.split()[:3] for line in listing.splitlines() if line.startswith("pool ")]
            if rows == [["pool", "made", "config_push"]]:
                break
            time.sleep(0.2)
        assert rows == [["pool", "made", "config_push"]], listing
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    docs = [d for _, d in documents(tmp_path / "all_data.ndjson")]
    (change,) = [d for d in docs if d["event_type"] == "change"]
    assert change["host"]["name"] == "app-02" and change["change"]["id"] == "baseline-live-pool"
    after = [d["db"]["client"]["connection"]["max"] for d in docs
             if d["event_type"] == "infrastructure_metric" and d["host"]["name"] == "app-02"
             and d["@timestamp"] > change["@timestamp"]]
    assert after and set(after) == {2}
    replay = subprocess.run(
        [sys.executable, str(ROOT / "run_sim.py"), "replay", str(tmp_path / "replay.yaml"),
         "--output-dir", str(tmp_path / "replay"), "--workers", "1"],
        capture_output=True, text=True, env=env)
    assert replay.returncode == 0, replay.stderr
    assert (tmp_path / "replay" / "all_data.ndjson").read_bytes() == \
        (tmp_path / "all_data.ndjson").read_bytes()
