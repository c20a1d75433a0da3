"""``storefront-sim solve CASES_DIR --solver naive|rules --output SUBMISSION.json``.

Answers every case of a benchmark with a reference solver, from ``cases/`` alone: the
scores they get are the floor an investigation (human or agent) should beat.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from sim.benchmark.evidence import AnswersRefused, read_case, refuse_answers
from sim.benchmark.solvers import SOLVERS
from sim.console import EXIT_FAILED, OneLineParser, bad_input, program_name


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=f"{program_name()} solve",
                      description="Answer a benchmark's cases with a reference solver.")
    p.add_argument("cases_dir", metavar="CASES_DIR",
                   help="the benchmark's output dir (with cases/ and benchmark.json)")
    p.add_argument("--solver", choices=sorted(SOLVERS), default="rules")
    p.add_argument("--output", "-o", required=True, metavar="SUBMISSION.json")
    args = p.parse_args(argv)
    root = Path(args.cases_dir)
    try:
        refuse_answers(root)
        cases = case_dirs(root)
    except AnswersRefused as exc:
        return bad_input(str(exc))
    except ValueError as exc:
        return bad_input(str(exc))
    answers: dict[str, dict[str, list[dict]]] = {}
    for name, case_dir in cases:
        try:
            evidence = read_case(case_dir)
        except AnswersRefused as exc:
            return bad_input(str(exc))
        except (OSError, KeyError, ValueError) as exc:
            print(f"error: {case_dir}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        answers[name] = {"incidents": SOLVERS[args.solver](evidence)}
        found = answers[name]["incidents"]
        print(f"{name}: {len(found)} incident(s)"
              + "".join(f"; {i['start']} .. {i['end']} {i.get('root_cause_kind')}" for i in found))
    out = Path(args.output)
    out.write_bytes(orjson.dumps({"cases": answers}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
                    + b"\n")
    print(f"wrote {out}")
    return 0


def case_dirs(root: Path) -> list[tuple[str, Path]]:
    """The cases to answer: those ``benchmark.json`` lists, else every ``cases/*/`` with
    questions (a benchmark assembled by hand)."""
    listing = root / "benchmark.json"
    cases_root = root / "cases"
    if listing.exists():
        try:
            names = orjson.loads(listing.read_bytes())["cases"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{listing}: cases: not a list of case ids ({exc})") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{listing}: cases: not a list of case ids")
    elif cases_root.is_dir():
        names = sorted(d.name for d in cases_root.iterdir() if (d / "questions.json").exists())
    else:
        raise ValueError(f"{root}: no benchmark.json and no cases/ directory")
    out = []
    for name in names:
        case_dir = cases_root / name
        if "/" in name or name in ("", ".", "..") or not (case_dir / "questions.json").exists():
            raise ValueError(f"{listing}: cases: {name!r} has no cases/{name}/questions.json")
        refuse_answers(case_dir)  # a case linked into the answer key is the answer key
        out.append((name, case_dir))
    return out
