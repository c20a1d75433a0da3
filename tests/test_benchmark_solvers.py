"""The reference solvers on small real runs (a case assembled from a run's files, as the
benchmark lays it out) and on hand-made evidence: what they find, what they refuse."""

from __future__ import annotations

import datetime as dt
import os
from array import array
from pathlib import Path

import orjson
import pytest

from sim.benchmark import vocabulary
from sim.benchmark.evidence import AnswersRefused, Cell, Change, Evidence, read_case
from sim.benchmark.solve import main as solve_main
from sim.benchmark.solvers import naive, rules
from sim.benchmark.submission import check_submission
from sim.cli import main

TODAY = "2026-12-01"
CASE_FILES = ("all_data.ndjson", "logs.ndjson", "alerts.ndjson")


def _bench(tmp: Path, runs: dict[str, tuple[str, str, str]]) -> Path:
    """A benchmark dir with one case per run (scenario, start, end): cases/ holds only what
    an investigator gets; the run's ground truth goes to answers/, as the generator's does."""
    root = tmp / "bench"
    (root / "answers").mkdir(parents=True)
    for case, (scenario, start, end) in runs.items():
        out = tmp / f"run-{case}"
        code = main([f"scenarios/{scenario}.yaml", "--start", start, "--end", end, "--today", TODAY,
                     "--base-tps", "10", "--trace-sample", "0", "--workers", "1", "--quiet",
                     "--output-dir", str(out)])
        assert code == 0
        case_dir = root / "cases" / case
        case_dir.mkdir(parents=True)
        for name in CASE_FILES:
            if (out / name).exists():
                os.link(out / name, case_dir / name)
        window = orjson.loads((out / "run_summary.json").read_bytes())["window"]
        (case_dir / "questions.json").write_bytes(orjson.dumps({"case": case, "window": window}))
        os.link(out / "incidents.ndjson", root / "answers" / f"{case}.ndjson")
    (root / "benchmark.json").write_bytes(orjson.dumps({"cases": sorted(runs)}))
    return root


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    os.chdir(Path(__file__).resolve().parent.parent)
    return _bench(tmp_path_factory.mktemp("solvers"), {
        "case-001": ("payment_timeout", "today 14:00", "today 15:00"),  # gateway slow at 14:25
        "case-002": ("baseline", "today 09:00", "today 10:00"),  # nothing happens
    })


@pytest.fixture(scope="module")
def submission_files(bench: Path, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for solver in ("naive", "rules"):
        path = out[solver] = tmp_path_factory.mktemp("sub") / f"{solver}.json"
        assert solve_main([str(bench), "--solver", solver, "--output", str(path)]) == 0
    return out


@pytest.fixture(scope="module")
def submissions(submission_files: dict[str, Path]) -> dict[str, dict]:
    return {solver: orjson.loads(path.read_bytes()) for solver, path in submission_files.items()}


def _at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_rules_solver_finds_the_gateway_slowdown_and_names_the_gateway_first(submissions):
    incidents = submissions["rules"]["cases"]["case-001"]["incidents"]
    assert len(incidents) == 1
    found = incidents[0]
    assert abs(_at(found["start"]) - _at(f"{TODAY}T14:25:00Z")) <= 180
    assert _at(found["end"]) - _at(found["start"]) >= 5 * 60  # the ten minutes of the fault
    assert found["root_cause_kind"] == "payment_gateway_slowdown"
    assert found["locations"][0] == "payment-gateway"
    assert found["change"] is None


def test_naive_solver_starts_at_the_first_alert_after_the_fault(submissions):
    incidents = submissions["naive"]["cases"]["case-001"]["incidents"]
    assert len(incidents) == 1
    # the pager needs a breaching minute and the rule's for_minutes: never before the fault
    assert _at(f"{TODAY}T14:26:00Z") <= _at(incidents[0]["start"]) <= _at(f"{TODAY}T14:35:00Z")
    assert incidents[0]["change"] is None


@pytest.mark.parametrize("solver", ["naive", "rules"])
def test_a_quiet_window_has_no_incident(submissions, solver):
    assert submissions[solver]["cases"]["case-002"] == {"incidents": []}


@pytest.mark.parametrize("solver", ["naive", "rules"])
def test_the_submission_answers_every_case_and_validates(submission_files, submissions, solver):
    sub, problems = check_submission(submission_files[solver], ["case-001", "case-002"],
                                     vocabulary.ROOT_CAUSE_KINDS, vocabulary.locations())
    assert problems == []
    assert set(sub["cases"]) == {"case-001", "case-002"}
    for case in submissions[solver]["cases"].values():
        for inc in case["incidents"]:
            assert _at(inc["start"]) < _at(inc["end"])
            assert len(inc["locations"]) <= 5


def test_evidence_counts_every_transaction_once(bench):
    ev = read_case(bench / "cases" / "case-001")
    written = sum(b'"event_type":"transaction"' in line
                  for line in (bench / "cases" / "case-001" / "all_data.ndjson").open("rb"))
    assert sum(c.requests for c in ev.series().values()) == written
    assert sum(c.requests for h in ev.names("host") for c in ev.series("host", h).values()) == written


def test_the_answer_key_is_refused(bench, tmp_path, capsys):
    with pytest.raises(AnswersRefused):
        read_case(bench / "answers")
    # a case that is a link into the answer key is the answer key
    (bench / "answers" / "case-009").mkdir()
    (bench / "answers" / "case-009" / "questions.json").write_bytes(b'{"window": {}}')
    sneaky = tmp_path / "bench2"
    (sneaky / "cases").mkdir(parents=True)
    (sneaky / "cases" / "case-009").symlink_to(bench / "answers" / "case-009")
    (sneaky / "benchmark.json").write_bytes(b'{"cases": ["case-009"]}')
    code = solve_main([str(sneaky), "--output", str(tmp_path / "s.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines() == [err] and "answer key" in err
    assert solve_main([str(bench / "answers"), "--output", str(tmp_path / "s.json")]) == 2
    assert not (tmp_path / "s.json").exists()


def test_a_case_id_outside_cases_is_one_line(tmp_path, capsys):
    (tmp_path / "cases").mkdir()
    (tmp_path / "benchmark.json").write_bytes(b'{"cases": ["../answers"]}')
    assert solve_main([str(tmp_path), "--output", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "benchmark.json" in err


# hand-made evidence: an hour, a pool that runs out from minute 40 to 50 on two hosts


START = 1_795_000_000 // 3600 * 3600


def _pool_exhaustion(changes: list[Change]) -> Evidence:
    ev = Evidence("case-x", START, START + 3600)
    first = START // 60
    for m in range(first, first + 60):
        slow = 40 <= m - first < 50
        cell = Cell(requests=100, errors=10 if slow else 0,
                    latencies=array("f", [3000.0 if slow else 400.0] * 100))
        ev.cells.setdefault(("all", ""), {})[m] = cell
        for host in ("app-01", "app-02"):
            ev.cells.setdefault(("host", host), {})[m] = cell
            ev.host_service[host] = "app-instance"
            ev.samples.setdefault(host, {}).setdefault(
                "db.client.connection.pending_requests", {})[m] = [4.0] * 6 if slow else [0.0] * 6
        ev.host_service["db-01"] = "database"
        ev.samples.setdefault("db-01", {}).setdefault("db.avg_query_ms", {})[m] = [7.0] * 6
    ev.changes = changes
    return ev


def _push(new: str) -> Change:
    return Change("cfg-1", "config_push", "config_change", START + 25 * 60.0, ["app-01", "app-02"],
                  [("db_pool.max_size", "10", new)], "")


def test_a_push_that_shrank_the_exhausted_pool_is_named_the_cause():
    [found] = rules.solve(_pool_exhaustion([_push("3")]))
    assert found["start"] == dt.datetime.fromtimestamp(START + 40 * 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (found["root_cause_kind"], found["change"]) == ("config_push", "cfg-1")
    assert found["locations"][:2] == ["app-01", "app-02"]


def test_a_push_that_grew_the_pool_is_not_blamed():
    [found] = rules.solve(_pool_exhaustion([_push("12")]))
    assert found["change"] is None
    assert found["root_cause_kind"] == "db_slow_queries"
    assert found["locations"][0] == "postgresql"


def test_naive_has_nothing_to_say_without_an_alert():
    assert naive.solve(_pool_exhaustion([])) == []
