"""``storefront-sim benchmark``: simulate the drawn cases; telemetry and questions on one side,
answers on the other.

Each case runs as a scenario of its own (``sim.run.batch.simulate``). What an investigator
could see goes to ``cases/case-NNN/`` (documents, logs, alerts, traces) and, with
``--opensearch``, into the case's own index; the run's ground truth becomes
``answers/case-NNN.json`` and nothing else: no incident file, no run summary, no fault or
change label stays beside the telemetry. Cases are independent, so they run in parallel
(``--workers``); each case's bytes depend only on the seed and its index.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

from sim.benchmark.cases import CASE_HOURS, Case, draw_cases
from sim.benchmark.submission import write_schema
from sim.benchmark.vocabulary import ROOT_CAUSE_KINDS, locations, record_kind, record_locations
from sim.console import EXIT_FAILED, OneLineParser, bad_input, one_line, program_name
from sim.outputs.files import OutputError, check_output_dir
from sim.outputs.opensearch import OpenSearchSetupError, connect
from sim.run.batch import RunResult, simulate
from sim.telemetry.logs import LOGS_FILE

CASE_FILES: Final = ("all_data.ndjson", LOGS_FILE, "alerts.ndjson", "otel-v1-apm-span.ndjson",
                     "otel-v1-apm-service-map.ndjson")
INDEX_PREFIX: Final = "storefront-bench"
QUESTIONS: Final = (
    ("incident", "Is there an incident in the window (an abnormal stretch of errors or latency "
                 "that a cause explains)? Answer with a list of incidents, empty for none."),
    ("window", "For each incident: when did its symptoms start and end (start, end; ISO 8601 UTC)?"),
    ("root_cause_kind", "What kind of root cause (one of benchmark.json's root_cause_kinds)?"),
    ("locations", "Where is the root cause: a ranked list of hosts or services "
                  "(benchmark.json's locations), best first?"),
    ("change", "Which change, if any, caused it (the id of its change document, or null)?"),
)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=f"{program_name()} benchmark",
                      description="Generate investigation cases: telemetry and questions under "
                                  "DIR/cases, answers under DIR/answers (docs/benchmark.md).")
    p.add_argument("--cases", type=int, required=True, help="how many cases to draw")
    p.add_argument("--output-dir", required=True, help="a new or empty directory")
    p.add_argument("--seed", type=int, default=42, help="draws the cases (default 42)")
    p.add_argument("--hours", type=float, default=CASE_HOURS,
                   help=f"each case's window (default {CASE_HOURS:g} h)")
    p.add_argument("--workers", type=int, help="cases simulated at once (default: all cores; "
                                               "1 when streaming into a node on this machine)")
    p.add_argument("--opensearch", metavar="URL",
                   help="also stream each case into its own index (credentials from "
                        "OPENSEARCH_USER / OPENSEARCH_PASSWORD)")
    p.add_argument("--index-prefix", default=INDEX_PREFIX,
                   help=f"case indices are PREFIX-SEED-case-NNN (default {INDEX_PREFIX})")
    args = p.parse_args(argv)
    if args.cases < 1 or args.cases > 999:
        return bad_input(f"--cases: {args.cases} is not between 1 and 999")
    if not 0.25 <= args.hours <= 12:
        return bad_input(f"--hours: {args.hours} is not between 0.25 and 12")
    if args.workers is not None and args.workers < 1:
        return bad_input(f"--workers: {args.workers} is not a positive number")
    out = Path(args.output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return bad_input(f"--output-dir: {out} is not an empty directory (nothing was written)")
    try:
        check_output_dir(out)
    except OutputError as exc:
        return bad_input(str(exc))
    if args.opensearch:  # a typo or a stopped cluster: one line now, not after the first case
        try:
            connect(args.opensearch)
        except OpenSearchSetupError as exc:
            return bad_input(f"--opensearch: {exc} (nothing was written)")
    workers = args.workers or (1 if args.opensearch else (os.cpu_count() or 1))
    t0 = time.perf_counter()
    try:
        generated = generate(args.cases, args.seed, out, workers, args.opensearch,
                             args.index_prefix, args.hours)
    except (OutputError, OpenSearchSetupError) as exc:  # a disk, or an index, gave up mid-way
        print(one_line(str(exc)), file=sys.stderr)
        return EXIT_FAILED
    print(mix_table(generated))
    print(f"{len(generated)} cases in {time.perf_counter() - t0:.0f} s: {out / 'cases'} "
          f"(answers apart in {out / 'answers'})")
    return 0


def generate(n: int, seed: int, out: Path, workers: int, url: str | None = None,
             index_prefix: str = INDEX_PREFIX, hours: float = CASE_HOURS) -> list[dict[str, Any]]:
    """Every case's files and answers; returns the answers, in case order."""
    cases = draw_cases(n, seed, hours)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    (out / "answers").mkdir(exist_ok=True)
    write_schema(out / "submission.schema.json", [c.case_id for c in cases], ROOT_CAUSE_KINDS,
                 locations())
    _write_json(out / "benchmark.json", {
        "seed": seed, "cases": [c.case_id for c in cases],
        "root_cause_kinds": list(ROOT_CAUSE_KINDS), "locations": list(locations()),
        "submission_schema": "submission.schema.json"})
    jobs = [(case, seed, out, url, f"{index_prefix}-{seed}-{case.case_id}" if url else None)
            for case in cases]
    if workers == 1:
        answers = [run_case(*job) for job in jobs]
    else:
        # from the forkserver, never a fork of this process: a fork would inherit this
        # process's forkserver (if a run here started one), which is not its child to wait for
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sim.benchmark.generate"])
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            answers = list(pool.map(run_case, *zip(*jobs, strict=True)))
    shutil.rmtree(out / ".work", ignore_errors=True)
    return answers


def run_case(case: Case, seed: int, out: Path, url: str | None, index: str | None) -> dict[str, Any]:
    """Simulate one case; move what an investigator sees into place; write its answers."""
    t0 = time.perf_counter()
    work = out / ".work" / case.case_id
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    scenario = case.to_scenario(seed)
    with contextlib.ExitStack() as stack:
        sinks = _case_sinks(stack, url, index, work) if url and index else {}
        result = simulate(scenario, case.day, work, workers=1, write_summary=False,
                          extra_sinks=sinks.get("documents", ()), alert_sinks=sinks.get("alerts", ()),
                          trace_sinks=sinks.get("traces"))
    _check_streamed(result, case)
    target = out / "cases" / case.case_id
    target.mkdir(parents=True, exist_ok=True)
    files = [name for name in CASE_FILES if (work / name).exists()]
    for name in files:
        os.replace(work / name, target / name)
    _write_json(target / "questions.json", questions(case, files, index))
    answer = answers_of(case, result, seed)
    _write_json(out / "answers" / f"{case.case_id}.json", answer)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{case.case_id} {case.start:%Y-%m-%d %H:%M}..{case.end:%H:%M} "
          f"{result.total:,} documents in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return answer


def _case_sinks(stack: contextlib.ExitStack, url: str, index: str, work: Path) -> dict[str, Any]:
    """The case's own index for its documents and logs, ``INDEX-alerts`` for its alerts; the
    incident records are answers and are never sent."""
    from sim.outputs.opensearch import OpenSearchSink
    from sim.outputs.setup import alert_sinks, enter_bulk_load, prepare_opensearch

    client = prepare_opensearch(url, index, f"{index}-unused", data_stream=False,
                                ca_certs=None, insecure=False)
    client.indices.delete(index=f"{index}-unused", ignore_unavailable=True)
    refused = enter_bulk_load(stack, client, index)
    if refused:
        raise OutputError(refused)
    documents = OpenSearchSink(client, index, dead_letter_path=work / "dead_letter.ndjson")
    logs = OpenSearchSink(client, index, senders=1, name=f"opensearch:{index}:logs",
                          dead_letter_path=work / "dead_letter_logs.ndjson")
    return {"documents": [documents], "traces": {LOGS_FILE: logs},
            "alerts": alert_sinks(client, f"{index}-alerts", work, give_up_after=None)}


def _check_streamed(result: RunResult, case: Case) -> None:
    for s in result.sinks:
        if s.unaccounted or s.dead_lettered:
            raise OutputError(f"{case.case_id}: {s.name} lost documents "
                              f"({s.dead_lettered} dead-lettered, {s.unaccounted} unaccounted)")


def questions(case: Case, files: list[str], index: str | None) -> dict[str, Any]:
    return {"case": case.case_id,
            "window": {"start": _z(case.start.isoformat()), "end": _z(case.end.isoformat())},
            "files": files, "index": index, "alerts_index": f"{index}-alerts" if index else None,
            "questions": [{"id": qid, "ask": ask} for qid, ask in QUESTIONS]}


def answers_of(case: Case, result: RunResult, seed: int) -> dict[str, Any]:
    """The answer key of a case, from the run's ground truth."""
    records = result.incidents
    incidents = []
    for rec in records:
        if rec.get("distractor") or not rec.get("observed"):
            continue
        cause = rec["cause"]
        incidents.append({
            "id": "inc-" + hashlib.blake2b(f"{seed}:{case.case_id}:{rec['incident_id']}".encode(),
                                           digest_size=4).hexdigest(),
            "start": rec["symptom_start"], "end": rec["symptom_end"],
            "root_cause_kind": record_kind(cause),
            "locations": record_locations(cause),
            "change": cause["id"] if cause.get("kind") == "change" else None,
            "record": rec})
    incidents.sort(key=lambda i: i["start"])
    shown = {rec["cause"].get("id") for rec in records if rec.get("observed")} | \
        {rec["incident_id"] for rec in records if rec.get("observed")}
    not_observed = [{"fault": rec["cause"], "start": rec["fault_start"], "end": rec["fault_end"]}
                    for rec in records if not rec.get("distractor") and not rec.get("observed")]
    not_observed += [{"change": c} for c in case.changes if "benign" not in c and c["id"] not in shown]
    distractors = [{"id": rec["cause"]["id"], "kind": rec["cause"].get("change_kind", rec["cause"]["kind"]),
                    "at": rec["fault_start"], "why": rec["why_not_a_cause"]}
                   for rec in records if rec.get("distractor")]
    return {"case": case.case_id,
            "window": {"start": _z(case.start.isoformat()), "end": _z(case.end.isoformat())},
            "incidents": incidents, "not_observed": not_observed, "distractors": distractors,
            "changes": [c["id"] for c in case.changes],
            "alerts": {"raised": sum(1 for a in result.alerts if a["alert"]["state"] == "active"),
                       "false_alarms": len(result.false_alarms)}}


def mix_table(answers: list[dict[str, Any]]) -> str:
    """The case mix: how many cases have 0, 1, 2 incidents; the kinds that showed."""
    by_count = Counter(len(a["incidents"]) for a in answers)
    kinds = Counter(i["root_cause_kind"] for a in answers for i in a["incidents"])
    hidden = sum(len(a["not_observed"]) for a in answers)
    herrings = sum(len(a["distractors"]) for a in answers)
    lines = ["cases by incidents: " + ", ".join(f"{k}: {by_count[k]}" for k in sorted(by_count)),
             "incidents by root cause: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
             f"causes that showed no symptom: {hidden}; red herrings: {herrings}"]
    return "\n".join(lines)


def _z(iso: str) -> str:
    return iso.replace("+00:00", "Z")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)

