"""The benchmark's cases: drawn from the seed, the same bytes for any worker count, and no
answer anywhere an investigator (or a solver) looks.

Generation runs the real simulation, so the generated cases here are short (half an hour)
and few; the drawing itself is checked over hundreds of cases, which costs nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch

from sim.benchmark.cases import draw_case, draw_cases
from sim.benchmark.generate import generate
from sim.benchmark.vocabulary import ROOT_CAUSE_KINDS
from sim.model.faults import INCIDENT_TYPE

SEED = 7
HOURS = 0.5
N = 3
# what an answer calls a cause: none of it may be written where the investigator looks
CAUSE_WORDS = sorted({*INCIDENT_TYPE, *INCIDENT_TYPE.values(), "distractor", "benign",
                      "why_not_a_cause", "not_observed"})


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "two-workers"
    generate(N, SEED, out, workers=2, hours=HOURS)
    return out


def test_the_first_cases_of_a_longer_benchmark_are_the_shorter_ones():
    assert draw_cases(3, SEED) == draw_cases(9, SEED)[:3]
    assert draw_cases(3, SEED) != draw_cases(3, SEED + 1)


def test_the_case_mix_covers_every_cause_and_the_hard_parts():
    cases = draw_cases(300, 1)
    causes = Counter(k for c in cases for k in c.causes)
    assert set(causes) == set(ROOT_CAUSE_KINDS) - {"feature_flag"}  # flags: red herrings only
    counts = Counter(len(c.causes) for c in cases)
    assert counts[0] > 30 and counts[2] > 30  # no-incident cases catch false positives
    overlapping = sum(1 for c in cases if len(c.causes) == 2 and _overlap(c))
    assert overlapping > 15
    # red herrings: benign changes just before a cause, in the same shape as a causal change
    benign = [ch for c in cases for ch in c.changes if "benign" in ch]
    causal = [ch for c in cases for ch in c.changes if "benign" not in ch]
    assert len(benign) > 50 and len(causal) > 50
    shape = re.compile(r"chg-[0-9a-f]{6}")
    assert all(shape.fullmatch(ch["id"]) for ch in benign + causal)
    assert all(ch["at"].endswith(":00Z") for ch in benign + causal)
    for case in cases:  # releases only go forward, whichever deploy is the cause
        deploys = [ch for ch in case.changes if ch["kind"] == "deploy"]
        versions = [tuple(map(int, ch["version"].split("."))) for ch in deploys]
        assert versions == sorted(set(versions)) and all(v > (2, 13, 4) for v in versions)
        assert all(ch["version"] in ch["message"] for ch in deploys)
    messages = {ch["message"] for ch in causal}
    assert messages & {ch["message"] for ch in benign}  # the same pool of messages


def _overlap(case) -> bool:
    starts = sorted([f["start"] for f in case.faults] + [c["at"] for c in case.changes if "benign" not in c])
    if len(starts) < 2 or not case.faults:
        return False
    first = case.faults[0]
    from sim.core.clock import resolve_time_expression
    t0 = resolve_time_expression(first["start"], case.day).timestamp()
    t1 = resolve_time_expression(starts[1], case.day).timestamp()
    return t0 < t1 < t0 + first["duration_minutes"] * 60


def test_cases_are_the_same_bytes_with_any_worker_count(generated, tmp_path):
    one = tmp_path / "one-worker"
    generate(N, SEED, one, workers=1, hours=HOURS)
    assert _files(one) == _files(generated)


def test_nothing_an_investigator_sees_holds_an_answer(generated):
    bench = json.loads((generated / "benchmark.json").read_text())
    assert bench["cases"] == [f"case-{i:03d}" for i in range(1, N + 1)]
    seen_incidents = 0
    for case in bench["cases"]:
        answer = json.loads((generated / "answers" / f"{case}.json").read_text())
        folder = generated / "cases" / case
        text = b"".join(p.read_bytes() for p in sorted(folder.iterdir())).decode()
        assert "answers" not in text
        for word in CAUSE_WORDS:
            assert word not in text, (case, word)
        for incident in answer["incidents"]:
            seen_incidents += 1
            assert incident["id"] not in text
            assert incident["record"]["incident_id"] not in text
        # every change shows as change documents alike: the causal one is not marked
        changes = [orjson.loads(line) for line in (folder / "all_data.ndjson").read_bytes().splitlines()
                   if b'"event_type":"change"' in line]
        assert {d["event"]["id"] if "id" in d.get("event", {}) else d.get("change", {}).get("id")
                for d in changes} <= set(answer["changes"]) | {None}
        assert len({frozenset(_keys(d)) for d in changes}) <= 3  # a shape per kind, not per role
        questions = json.loads((folder / "questions.json").read_text())
        assert questions["window"] == answer["window"]
    assert seen_incidents >= 1


def _keys(doc: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in doc.items():
        if isinstance(v, dict):
            out |= _keys(v, f"{prefix}{k}.")
        else:
            out.add(prefix + k)
    return out


def test_answers_name_the_truth_of_each_case(generated):
    for path in sorted((generated / "answers").iterdir()):
        answer = json.loads(path.read_text())
        case = draw_case(int(answer["case"][-3:]) - 1, SEED, HOURS)
        causal = {c["id"] for c in case.changes if "benign" not in c}
        benign = {c["id"] for c in case.changes if "benign" in c}
        assert {d["id"] for d in answer["distractors"]} >= benign
        for incident in answer["incidents"]:
            assert incident["root_cause_kind"] in ROOT_CAUSE_KINDS
            assert incident["start"] < incident["end"]
            assert answer["window"]["start"] <= incident["start"] <= answer["window"]["end"]
            if incident["change"] is not None:
                assert incident["change"] in causal  # a red herring is never the answer


def test_a_streamed_case_has_its_own_index_with_every_document_and_no_answer(
        opensearch_url, tmp_path):  # noqa: F811
    out = tmp_path / "streamed"
    generate(1, SEED, out, workers=1, url=opensearch_url, index_prefix="test-bench", hours=HOURS)
    index = f"test-bench-{SEED}-case-001"
    client = OpenSearch(opensearch_url, timeout=60)
    try:
        client.indices.refresh(index=f"{index},{index}-alerts")
        folder = out / "cases" / "case-001"
        expected = sum(_documents(folder / name) for name in ("all_data.ndjson", "logs.ndjson"))
        assert client.count(index=index)["count"] == expected
        assert client.count(index=f"{index}-alerts")["count"] == _documents(folder / "alerts.ndjson")
        def hits(word: str) -> int:
            return client.count(index=f"{index}*", body={"query": {"query_string": {
                "query": f'"{word}"', "default_field": "*"}}})["count"]

        assert hits("transaction") > 0 and hits("Card declined by issuer") > 0  # the search does look
        for word in CAUSE_WORDS:
            assert hits(word) == 0, word
        assert json.loads((folder / "questions.json").read_text())["index"] == index
    finally:
        client.indices.delete(index=f"{index}*", ignore_unavailable=True)


def _documents(path: Path) -> int:
    return path.read_bytes().count(b"\n") // 2 if path.exists() else 0


def test_the_generated_answers_as_a_submission_score_full_marks(generated, tmp_path, capsys):
    """Through the commands, as a user runs them: the answers themselves score 1 on every
    metric (0 false positives, no distractor blamed); an empty submission scores 0."""
    from sim.benchmark.score import main as score_main

    submission = {"cases": {}}
    for path in sorted((generated / "answers").iterdir()):
        answer = json.loads(path.read_text())
        submission["cases"][answer["case"]] = {"incidents": [
            {k: i[k] for k in ("start", "end", "root_cause_kind", "locations", "change")}
            for i in answer["incidents"]]}
    (tmp_path / "answers.json").write_text(json.dumps(submission))
    (tmp_path / "empty.json").write_text("{}")
    results = {}
    for name in ("answers", "empty"):
        out = tmp_path / f"{name}-score.json"
        argv = [str(generated / "answers"), str(tmp_path / f"{name}.json"), "--json", str(out)]
        assert score_main(argv) == 0
        results[name] = json.loads(out.read_text())["overall"]
    capsys.readouterr()
    full = results["answers"]
    for metric in ("detection", "onset_60s", "iou", "kind", "change", "change_score"):
        assert full[metric] in (1.0, None), metric
    assert full["ac1"] in (1.0, None) and full["distractor_blamed"] in (0.0, None)
    assert full["false_positive_rate"] in (0.0, None) and full["extra_incidents"] == 0
    assert results["empty"]["detection"] == 0.0


@pytest.mark.parametrize(("argv", "expected"), [
    (["--cases", "0"], "--cases: 0 is not between 1 and 999"),
    (["--cases", "2", "--hours", "0.1"], "--hours: 0.1 is not between 0.25 and 12"),
    (["--cases", "2", "--opensearch", "http://127.0.0.1:9"], "--opensearch: cannot connect"),
])
def test_bad_benchmark_input_is_one_line_and_writes_nothing(argv, expected, tmp_path, capsys):
    from sim.benchmark.generate import main as benchmark_main

    out = tmp_path / "bench"
    assert benchmark_main([*argv, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists()


def test_a_used_output_dir_is_refused_untouched(tmp_path, capsys):
    from sim.benchmark.generate import main as benchmark_main

    (tmp_path / "notes.txt").write_text("mine")
    assert benchmark_main(["--cases", "1", "--output-dir", str(tmp_path)]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
