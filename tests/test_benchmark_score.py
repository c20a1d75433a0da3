"""The benchmark's scorer and its submission check, on small hand-made answers: full marks
for the truth, nothing for silence, less than nothing for blaming a distractor, chance for
guesses; a bad submission is one line naming the file and the field, exit 2."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.benchmark import vocabulary
from sim.benchmark.score import ac_chance, main, read_answers, score
from sim.benchmark.submission import check_submission, schema, write_schema

T0 = dt.datetime(2026, 6, 3, 10, 0, tzinfo=dt.UTC)
WINDOW = {"start": "2026-06-03T10:00:00Z", "end": "2026-06-03T12:00:00Z"}
KINDS = list(vocabulary.ROOT_CAUSE_KINDS)
PLACES = list(vocabulary.locations())
PERFECT = ("detection", "onset_60s", "iou", "kind", "ac1", "ac3", "avg5", "change", "change_score")


def at(minutes: float) -> str:
    """The time ``minutes`` after 10:00 on the test day, as a submission writes it."""
    return (T0 + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def incident(start: float, end: float, kind: str, places: list[str], change: str | None = None,
             ident: str = "inc-1") -> dict[str, Any]:
    return {"id": ident, "start": at(start), "end": at(end), "root_cause_kind": kind,
            "locations": places, "change": change, "record": {"cause": {}}}


def answer(case: str, incidents: list[dict[str, Any]], distractors: tuple[str, ...] = (),
           changes: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"case": case, "window": WINDOW, "incidents": incidents,
            "distractors": [{"id": d, "kind": "deploy", "at": at(5), "why": "benign"} for d in distractors],
            "changes": [*changes, *distractors], "alerts": {"raised": 0, "false_alarms": 0}}


ANSWERS = [
    answer("case-001", [incident(40, 60, "db_slow_queries", ["postgresql"])]),
    answer("case-002", [], distractors=("chg-bbb",)),
    answer("case-003", [incident(20, 45, "deploy", ["app-02"], change="chg-aaa")],
           distractors=("chg-ddd",), changes=("chg-aaa",)),
    answer("case-004", [incident(20, 50, "db_slow_queries", ["postgresql"], ident="inc-a"),
                        incident(10, 30, "payment_gateway_slowdown", ["payment-gateway"], ident="inc-b")]),
    answer("case-005", [incident(60, 90, "traffic_surge", [])]),
    answer("case-006", []),
]


def as_submission(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The answers written as a solver would: only the submission's fields."""
    keys = ("start", "end", "root_cause_kind", "locations", "change")
    return {"cases": {a["case"]: {"incidents": [{k: inc[k] for k in keys} for inc in a["incidents"]]}
                      for a in answers}}


@pytest.fixture
def answers_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "answers"
    directory.mkdir()
    for a in ANSWERS:
        (directory / f"{a['case']}.json").write_text(json.dumps(a))
    return directory


def one_case(case: str, incidents: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cases": {case: {"incidents": incidents}}}


def test_the_answers_as_a_submission_score_full_marks(answers_dir: Path) -> None:
    result = score(read_answers(answers_dir), as_submission(ANSWERS))
    overall = result["overall"]
    assert {m: overall[m] for m in PERFECT} == dict.fromkeys(PERFECT, 1.0)
    assert overall["false_positive_rate"] == overall["distractor_blamed"] == overall["extra_incidents"] == 0
    assert (overall["n_cases"], overall["n_incident_cases"], overall["n_no_incident_cases"],
            overall["n_incidents"], overall["n_localizable"]) == (6, 4, 2, 5, 4)
    assert result["cases"]["case-005"]["ac1"] is None  # a surge has no place to name


@pytest.mark.parametrize("empty", [{}, {"cases": {}}])
def test_an_empty_submission_scores_nothing_without_an_error(answers_dir: Path, tmp_path: Path,
                                                             empty: dict[str, Any], capsys) -> None:
    result = score(read_answers(answers_dir), empty)
    overall = result["overall"]
    assert all(overall[m] == 0 for m in (*PERFECT, "false_positive_rate", "distractor_blamed",
                                         "extra_incidents")), overall
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(empty))
    assert main([str(answers_dir), str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_blaming_a_distractor_scores_below_naming_nothing(answers_dir: Path) -> None:
    answers = read_answers(answers_dir)
    window = {"start": at(20), "end": at(45), "root_cause_kind": "deploy", "locations": ["app-02"]}

    def change_score(**change: Any) -> float:
        result = score(answers, one_case("case-003", [{**window, **change}]))
        return result["cases"]["case-003"]["change_score"]

    nothing, null, blamed, right = change_score(), change_score(change=None), \
        change_score(change="chg-ddd"), change_score(change="chg-aaa")
    assert blamed < nothing == null == 0 < right == 1
    assert score(answers, one_case("case-003", [{**window, "change": "chg-ddd"}])
                 )["overall"]["distractor_blamed"] == pytest.approx(1 / 5)


@pytest.mark.parametrize(("shift_s", "hit"), [(61, 0.0), (59, 1.0), (-61, 0.0), (-59, 1.0)])
def test_the_onset_is_right_within_60_seconds(answers_dir: Path, shift_s: int, hit: float) -> None:
    sub = one_case("case-001", [{"start": at(40 + shift_s / 60), "end": at(60)}])
    assert score(read_answers(answers_dir), sub)["cases"]["case-001"]["onset_60s"] == hit


def test_a_half_overlapping_window_has_an_iou_of_one_third(answers_dir: Path) -> None:
    sub = one_case("case-001", [{"start": at(50), "end": at(70)}])  # truth 40..60
    assert score(read_answers(answers_dir), sub)["cases"]["case-001"]["iou"] == pytest.approx(1 / 3)


def test_matching_pairs_overlapping_incidents_for_the_largest_total_iou(answers_dir: Path) -> None:
    """Truth a = 20..50 (db), b = 10..30 (gateway). Taken in order, or best pair first (the
    10..40 window fits b best), the kinds would land on the wrong incidents."""
    sub = one_case("case-004", [
        {"start": at(10), "end": at(40), "root_cause_kind": "db_slow_queries"},
        {"start": at(5), "end": at(25), "root_cause_kind": "payment_gateway_slowdown"},
    ])
    case = score(read_answers(answers_dir), sub)["cases"]["case-004"]
    assert case["kind"] == 1.0
    assert case["iou"] == pytest.approx((1 / 2 + 15 / 25) / 2)
    swapped = one_case("case-004", [{"start": at(10), "end": at(30)}, {"start": at(20), "end": at(50)}])
    assert score(read_answers(answers_dir), swapped)["cases"]["case-004"]["iou"] == 1.0


def test_an_extra_incident_and_a_false_positive_are_counted(answers_dir: Path) -> None:
    sub = {"cases": {"case-006": {"incidents": [{"start": at(1), "end": at(2)}]},
                     "case-001": {"incidents": [{"start": at(40), "end": at(60)},
                                                {"start": at(100), "end": at(110)}]}}}
    overall = score(read_answers(answers_dir), sub)["overall"]
    assert overall["false_positive_rate"] == 0.5  # case-006 yes, case-002 unanswered: no
    assert overall["extra_incidents"] == 2


def test_ac_chance_is_the_share_of_random_rankings_that_hit() -> None:
    names = list(range(8))
    for k, truth in itertools.product((1, 3, 5), ({0}, {0, 5})):
        rankings = list(itertools.permutations(names, k))
        share = sum(bool(truth & set(r)) for r in rankings) / len(rankings)
        assert ac_chance(k, len(truth), len(names)) == pytest.approx(share)


def random_answers(rng: np.random.Generator, n: int) -> dict[str, dict[str, Any]]:
    answers = {}
    for i in range(n):
        incidents = []
        if rng.random() < 0.5:
            start = float(rng.uniform(0, 100))
            places = list(rng.choice(PLACES, size=int(rng.integers(1, 3)), replace=False))
            incidents.append(incident(start, start + float(rng.uniform(5, 20)), str(rng.choice(KINDS)),
                                      [str(p) for p in places]))
        answers[f"case-{i:03d}"] = answer(f"case-{i:03d}", incidents)
    return answers


def test_random_submissions_score_near_the_reported_chance_levels() -> None:
    rng = np.random.default_rng(23)
    answers = random_answers(rng, 400)

    def window() -> dict[str, str]:
        a, b = sorted(rng.uniform(0, 120, size=2))
        return {"start": at(a), "end": at(b)}

    coin = {"cases": {c: {"incidents": [window()] if rng.random() < 0.5 else []} for c in answers}}
    windows = {"cases": {c: {"incidents": [window() for _ in a["incidents"]]} for c, a in answers.items()}}
    guesses = {"cases": {c: {"incidents": [
        {"start": inc["start"], "end": inc["end"], "root_cause_kind": str(rng.choice(KINDS)),
         "locations": [str(p) for p in rng.permutation(PLACES)]} for inc in a["incidents"]]}
        for c, a in answers.items()}}
    chance = score(answers, coin)["chance"]
    assert chance["kind"] == pytest.approx(1 / len(KINDS))
    assert score(answers, coin)["overall"]["detection"] == pytest.approx(chance["detection"], abs=0.06)
    assert score(answers, windows)["overall"]["iou"] == pytest.approx(chance["iou"], abs=0.03)
    guessed = score(answers, guesses)["overall"]
    for metric in ("kind", "ac1", "ac3"):
        assert guessed[metric] == pytest.approx(chance[metric], abs=0.06), metric


def write_sub(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sub.json"
    path.write_text(text)
    return path


OK = {"start": at(40), "end": at(60)}
BAD = {
    "not_json": ("{", "not JSON"),
    "not_an_object": ("[]", "not a JSON object"),
    "extra_key": (json.dumps({"cases": {}, "team": "x"}), ": team: unknown key"),
    "extra_incident_key": (json.dumps(one_case("case-001", [{**OK, "severity": 3}])),
                           "cases.case-001.incidents[0].severity: unknown key"),
    "unknown_case": (json.dumps(one_case("case-999", [])), "cases.case-999: unknown case id"),
    "cases_not_object": (json.dumps({"cases": []}), ": cases: not an object"),
    "case_not_object": (json.dumps({"cases": {"case-001": []}}), "cases.case-001: not an object"),
    "incidents_missing": (json.dumps({"cases": {"case-001": {}}}), "cases.case-001.incidents: missing"),
    "incidents_not_list": (json.dumps({"cases": {"case-001": {"incidents": {}}}}),
                           "cases.case-001.incidents: not a list"),
    "start_missing": (json.dumps(one_case("case-001", [{"end": at(60)}])),
                      "cases.case-001.incidents[0].start: missing"),
    "start_a_number": (json.dumps(one_case("case-001", [{**OK, "start": 1780480800}])),
                       "cases.case-001.incidents[0].start: not an ISO 8601 UTC time"),
    "start_not_utc_z": (json.dumps(one_case("case-001", [{**OK, "start": "2026-06-03T10:40:00+02:00"}])),
                        "cases.case-001.incidents[0].start: not an ISO 8601 UTC time"),
    "end_no_such_day": (json.dumps(one_case("case-001", [{**OK, "end": "2026-02-30T10:40:00Z"}])),
                        "cases.case-001.incidents[0].end: not an ISO 8601 UTC time"),
    "start_after_end": (json.dumps(one_case("case-001", [{"start": at(60), "end": at(40)}])),
                        "cases.case-001.incidents[0].start: after its end"),
    "unknown_kind": (json.dumps(one_case("case-001", [{**OK, "root_cause_kind": "gremlins"}])),
                     "cases.case-001.incidents[0].root_cause_kind: unknown root-cause kind 'gremlins'"),
    "unknown_location": (json.dumps(one_case("case-001", [{**OK, "locations": ["postgresql", "mars"]}])),
                         "cases.case-001.incidents[0].locations[1]: unknown location 'mars'"),
    "locations_a_string": (json.dumps(one_case("case-001", [{**OK, "locations": "postgresql"}])),
                           "cases.case-001.incidents[0].locations: not a list of strings"),
    "location_a_number": (json.dumps(one_case("case-001", [{**OK, "locations": [3]}])),
                          "cases.case-001.incidents[0].locations[0]: not a string"),
    "duplicate_location": (json.dumps(one_case("case-001", [{**OK, "locations": ["app-01", "app-01"]}])),
                           "cases.case-001.incidents[0].locations[1]: duplicate of locations[0]"),
    "duplicate_case": ('{"cases": {"case-001": {"incidents": []}, "case-001": {"incidents": []}}}',
                       "cases.case-001: duplicate key"),
    "change_a_number": (json.dumps(one_case("case-001", [{**OK, "change": 5}])),
                        "cases.case-001.incidents[0].change: not a change id"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_submission_is_one_line_naming_file_and_field(answers_dir: Path, tmp_path: Path,
                                                            name: str, capsys) -> None:
    text, expected = BAD[name]
    path = write_sub(tmp_path, text)
    out = tmp_path / "scores.json"
    assert main([str(answers_dir), str(path), "--json", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}: ") and expected in lines[0], lines[0]
    assert captured.out == "" and not out.exists()


def test_every_problem_is_its_own_line(answers_dir: Path, tmp_path: Path, capsys) -> None:
    path = write_sub(tmp_path, json.dumps({"cases": {"case-001": {"incidents": [
        {"start": "soon", "end": at(60), "locations": ["mars"]}]}, "case-999": {"incidents": []}}}))
    assert main([str(answers_dir), str(path)]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 3


@pytest.mark.parametrize("make", ["missing", "empty", "bad_json", "bad_answer"])
def test_an_unreadable_answers_dir_is_one_line(tmp_path: Path, make: str, capsys) -> None:
    directory = tmp_path / "answers"
    if make != "missing":
        directory.mkdir()
    if make == "bad_json":
        (directory / "case-001.json").write_text("{")
    if make == "bad_answer":
        (directory / "case-001.json").write_text(json.dumps({**ANSWERS[0], "incidents": {}}))
    assert main([str(directory), str(write_sub(tmp_path, "{}"))]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and str(directory) in lines[0], lines


def test_main_prints_the_table_and_writes_the_json_asked_for(answers_dir: Path, tmp_path: Path,
                                                             capsys) -> None:
    sub = one_case("case-001", [{**OK, "root_cause_kind": "db_slow_queries"}])
    path = write_sub(tmp_path, json.dumps(sub))
    before = set(tmp_path.rglob("*"))
    assert main([str(answers_dir), str(path)]) == 0
    table = capsys.readouterr().out
    assert set(tmp_path.rglob("*")) == before  # no --json: nothing written
    assert [line.split()[0] for line in table.splitlines() if line.startswith("case-")] == \
        [a["case"] for a in ANSWERS]
    out = tmp_path / "scores.json"
    assert main([str(answers_dir), str(path), "--json", str(out)]) == 0
    assert capsys.readouterr().out == table
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(score(read_answers(answers_dir), json.loads(path.read_text()))))
    assert written["cases"]["case-001"]["kind"] == 1.0 and written["overall"]["kind"] == 0.2


def test_the_benchmarks_own_lists_decide_what_may_be_named(answers_dir: Path, tmp_path: Path, capsys) -> None:
    (answers_dir.parent / "benchmark.json").write_text(json.dumps(
        {"cases": [a["case"] for a in ANSWERS], "root_cause_kinds": KINDS, "locations": [*PLACES, "app-05"]}))
    path = write_sub(tmp_path, json.dumps(one_case("case-001", [{**OK, "locations": ["app-05"]}])))
    assert main([str(answers_dir), str(path)]) == 0


# what JSON Schema can see: the schema and the check must agree on each
SCHEMA_EXAMPLES = [
    {}, {"cases": {}}, as_submission(ANSWERS),
    one_case("case-001", [{**OK, "root_cause_kind": None, "change": None, "locations": []}]),
    *(json.loads(text) for name, (text, _) in BAD.items()
      if name not in ("not_json", "duplicate_case", "end_no_such_day", "start_after_end")),
]


def test_the_schema_file_is_the_schema(tmp_path: Path) -> None:
    write_schema(tmp_path / "submission.schema.json", ["case-001"])
    assert json.loads((tmp_path / "submission.schema.json").read_text()) == schema(["case-001"])


@pytest.mark.parametrize("example", SCHEMA_EXAMPLES)
def test_the_schema_and_the_check_agree(tmp_path: Path, example: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    cases = [a["case"] for a in ANSWERS]
    validator = jsonschema.Draft202012Validator(schema(cases, KINDS, PLACES))
    validator.check_schema(validator.schema)
    _, problems = check_submission(write_sub(tmp_path, json.dumps(example)), cases, KINDS, PLACES)
    assert validator.is_valid(example) == (not problems), problems
