"""``storefront-sim score ANSWERS_DIR SUBMISSION [--json OUT]``: how well a submission answers
the benchmark's cases, metric by metric, next to what guessing would score.

Per case the submitted incidents are paired one-to-one with the true ones so that the total
interval IoU is largest (OpenRCA pairs its root causes by trying the permutations, too); each
true incident is then judged on its partner: onset, window, kind, location (RCAEval's AC@k),
causing change. The metrics and their chance levels: docs/benchmark.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from sim.benchmark import vocabulary
from sim.benchmark.submission import check_submission, parse_time
from sim.console import EXIT_BAD_INPUT, OneLineParser, bad_input, one_line, program_name

ONSET_TOLERANCE_S: Final = 60.0  # OpenRCA: the occurrence time is right within 1 minute
TOP_K: Final = 5  # RCAEval scores the first five of a ranking
INCIDENT_METRICS: Final = ("onset_60s", "iou", "kind", "ac1", "ac3", "avg5", "change",
                           "distractor_blamed", "change_score")
METRICS: Final = ("detection", "false_positive_rate", *INCIDENT_METRICS, "extra_incidents")
_IOU_GRID: Final = 256  # points per axis of the chance-IoU integral (error well under 1%)

Answer = dict[str, Any]


class AnswersError(ValueError):
    """The answers dir cannot be scored against; the message is one line naming the file."""


# --- the answers -------------------------------------------------------------------------

def _times(obj: Any, where: str) -> tuple[float, float]:
    if not isinstance(obj, dict):
        raise AnswersError(f"{where}: not an object")
    start, end = parse_time(obj.get("start")), parse_time(obj.get("end"))
    if start is None or end is None or start > end:
        raise AnswersError(f"{where}: start/end not two ISO 8601 UTC times in order")
    return start.timestamp(), end.timestamp()


def _check_answer(doc: Any, name: str) -> Answer:
    if not isinstance(doc, dict) or not isinstance(doc.get("case"), str):
        raise AnswersError(f"{name}: not a case's answer (an object with a \"case\" id)")
    _times(doc.get("window"), f"{name}: window")
    incidents = doc.get("incidents")
    if not isinstance(incidents, list):
        raise AnswersError(f"{name}: incidents: not a list")
    for i, inc in enumerate(incidents):
        _times(inc, f"{name}: incidents[{i}]")
        if not isinstance(inc.get("locations", []), list):
            raise AnswersError(f"{name}: incidents[{i}].locations: not a list")
    distractors = doc.get("distractors", [])
    if not isinstance(distractors, list) or not all(isinstance(d, dict) for d in distractors):
        raise AnswersError(f"{name}: distractors: not a list of objects")
    if not isinstance(doc.get("changes", []), list):
        raise AnswersError(f"{name}: changes: not a list")
    return doc


def read_answers(answers_dir: str | Path) -> dict[str, Answer]:
    """Every case's answer in the dir (``case-*.json``), by case id, in id order."""
    directory = Path(answers_dir)
    if not directory.is_dir():
        raise AnswersError(f"{directory}: not a directory (the benchmark's answers/)")
    answers: dict[str, Answer] = {}
    files = sorted(directory.glob("*.json"))
    if not files:
        raise AnswersError(f"{directory}: no answer files (case-*.json)")
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise AnswersError(f"{path}: not a readable JSON answer ({str(exc).splitlines()[0]})") from None
        answer = _check_answer(doc, str(path))
        if answer["case"] in answers:
            raise AnswersError(f"{path}: case {answer['case']} answered twice in {directory}")
        answers[answer["case"]] = answer
    return dict(sorted(answers.items()))


# --- matching ----------------------------------------------------------------------------

def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """|a ∩ b| / |a ∪ b| of two closed intervals (1 for the same instant)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    if union <= 0:
        return 1.0 if a == b else 0.0
    return inter / union


def _span(incident: dict[str, Any]) -> tuple[float, float]:
    start, end = parse_time(incident["start"]), parse_time(incident["end"])
    assert start is not None and end is not None  # checked before scoring
    return start.timestamp(), end.timestamp()


def match(truth: Sequence[tuple[float, float]], submitted: Sequence[tuple[float, float]]) -> list[int | None]:
    """For each true window, the index of its submitted partner (None: unmatched).

    The pairing is one-to-one and has the largest total IoU, then the most pairs; only
    windows that touch can pair. Dynamic programming over the subsets of true incidents
    (a case has a few), so a submission of many windows costs little."""
    pair_iou = [[interval_iou(t, s) for s in submitted] for t in truth]
    touch = [[max(t[0], s[0]) <= min(t[1], s[1]) for s in submitted] for t in truth]
    best: dict[int, tuple[float, int, tuple[int | None, ...]]] = {0: (0.0, 0, (None,) * len(truth))}
    for j in range(len(submitted)):
        for mask, (total, pairs, assigned) in list(best.items()):
            for i in range(len(truth)):
                if mask & (1 << i) or not touch[i][j]:
                    continue
                cand = (total + pair_iou[i][j], pairs + 1, assigned[:i] + (j,) + assigned[i + 1:])
                key = mask | (1 << i)
                if key not in best or (round(cand[0], 12), cand[1]) > (round(best[key][0], 12), best[key][1]):
                    best[key] = cand
    top = max(best.values(), key=lambda v: (round(v[0], 12), v[1]))
    return list(top[2])


# --- scoring -----------------------------------------------------------------------------

def _incident_scores(truth: dict[str, Any], sub: dict[str, Any] | None,
                     distractors: set[str]) -> dict[str, Any]:
    places = list(truth.get("locations") or [])
    scores: dict[str, Any] = {"id": truth.get("id"), "matched": sub is not None}
    if sub is None:
        scores |= {m: 0.0 for m in INCIDENT_METRICS}
    else:
        t_span, s_span = _span(truth), _span(sub)
        change = float("change" in sub and sub["change"] == truth.get("change"))
        blamed = float(sub.get("change") is not None and sub.get("change") in distractors)
        ranked = (sub.get("locations") or [])[:TOP_K]
        hits = [float(any(p in places for p in ranked[:k])) for k in range(1, TOP_K + 1)]
        scores |= {
            "onset_60s": float(abs(s_span[0] - t_span[0]) <= ONSET_TOLERANCE_S),
            "iou": interval_iou(t_span, s_span),
            "kind": float(sub.get("root_cause_kind") == truth.get("root_cause_kind")),
            "ac1": hits[0], "ac3": hits[2], "avg5": sum(hits) / TOP_K,
            "change": change, "distractor_blamed": blamed, "change_score": change - blamed,
        }
    if not places:
        scores |= {"ac1": None, "ac3": None, "avg5": None}
    return scores


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def score_case(answer: Answer, submitted: dict[str, Any] | None) -> dict[str, Any]:
    """One case's metrics; ``submitted`` is the case's entry in the submission (None: unanswered)."""
    truth = answer["incidents"]
    subs = submitted["incidents"] if submitted is not None else []
    distractors = {str(d["id"]) for d in answer.get("distractors", []) if d.get("id") is not None}
    partners = match([_span(t) for t in truth], [_span(s) for s in subs])
    incidents = [_incident_scores(t, subs[j] if j is not None else None, distractors)
                 for t, j in zip(truth, partners, strict=True)]
    case: dict[str, Any] = {
        "answered": submitted is not None,
        "true_incidents": len(truth),
        "submitted_incidents": len(subs),
        "detection": float(submitted is not None and bool(subs) == bool(truth)),
        "false_positive": None if truth else float(bool(subs)),
    }
    case |= {m: _mean([inc[m] for inc in incidents]) for m in INCIDENT_METRICS}
    case["extra_incidents"] = len(subs) - sum(j is not None for j in partners)
    case["incidents"] = incidents
    return case


def _chance_window(answer: Answer, inc: dict[str, Any]) -> tuple[float, float]:
    """(onset, IoU) expected of a random window: start uniform in the case's window for the
    onset; both ends uniform (then sorted) for the IoU."""
    w0, w1 = _times(answer["window"], "window")
    t0, t1 = _span(inc)
    length = w1 - w0
    if length <= 0:
        return 1.0, 1.0
    onset = max(0.0, min(w1, t0 + ONSET_TOLERANCE_S) - max(w0, t0 - ONSET_TOLERANCE_S)) / length
    a, b = (t0 - w0) / length, (t1 - w0) / length
    u = (np.arange(_IOU_GRID) + 0.5) / _IOU_GRID
    lo, hi = np.minimum.outer(u, u), np.maximum.outer(u, u)
    inter = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)
    union = (hi - lo) + (b - a) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return onset, float(iou.mean())


def ac_chance(k: int, hits: int, names: int) -> float:
    """AC@k of a uniformly random ranking of ``names`` locations, ``hits`` of them right:
    1 - C(names - hits, k) / C(names, k)."""
    if names <= 0 or hits <= 0:
        return 0.0
    k = min(k, names)
    return 1.0 - math.comb(names - hits, k) / math.comb(names, k)


def chance_levels(answers: dict[str, Answer], root_cause_kinds: Sequence[str],
                  locations: Sequence[str]) -> dict[str, float | None]:
    """What guessing scores on these answers, metric by metric (docs/benchmark.md says how
    each guess is made)."""
    names = set(locations)
    per: dict[str, list[float]] = {m: [] for m in INCIDENT_METRICS}
    for answer in answers.values():
        distractors = {str(d["id"]) for d in answer.get("distractors", []) if d.get("id") is not None}
        for inc in answer["incidents"]:
            onset, iou = _chance_window(answer, inc)
            candidates = {*map(str, answer.get("changes", [])), *distractors, inc.get("change")} | {None}
            change = 1.0 / len(candidates)
            blamed = len(distractors) / len(candidates)
            per["onset_60s"].append(onset)
            per["iou"].append(iou)
            per["kind"].append(1.0 / len(root_cause_kinds) if root_cause_kinds else 0.0)
            per["change"].append(change)
            per["distractor_blamed"].append(blamed)
            per["change_score"].append(change - blamed)
            hits = len(names & set(inc.get("locations") or []))
            if inc.get("locations"):
                acs = [ac_chance(k, hits, len(names)) for k in range(1, TOP_K + 1)]
                per["ac1"].append(acs[0])
                per["ac3"].append(acs[2])
                per["avg5"].append(sum(acs) / TOP_K)
    quiet = any(not a["incidents"] for a in answers.values())
    return {"detection": 0.5 if answers else None, "false_positive_rate": 0.5 if quiet else None,
            **{m: _mean(v) for m, v in per.items()}, "extra_incidents": None}


def score(answers: dict[str, Answer], submission: dict[str, Any], *,
          root_cause_kinds: Sequence[str] = vocabulary.ROOT_CAUSE_KINDS,
          locations: Sequence[str] | None = None) -> dict[str, Any]:
    """Per case and overall metrics of a (checked) submission, with the chance levels.

    Overall: detection over all cases, false_positive_rate over the cases without an
    incident, the incident metrics over all true incidents (ac* over those with a location),
    extra_incidents summed; None where the population is empty."""
    names = list(vocabulary.locations() if locations is None else locations)
    submitted = submission.get("cases") or {}
    cases = {cid: score_case(ans, submitted.get(cid)) for cid, ans in sorted(answers.items())}
    incidents = [inc for c in cases.values() for inc in c["incidents"]]
    quiet = [c for c in cases.values() if c["false_positive"] is not None]
    overall: dict[str, Any] = {
        "n_cases": len(cases),
        "n_incident_cases": len(cases) - len(quiet),
        "n_no_incident_cases": len(quiet),
        "n_incidents": len(incidents),
        "n_localizable": sum(inc["ac1"] is not None for inc in incidents),
        "detection": _mean([c["detection"] for c in cases.values()]),
        "false_positive_rate": _mean([c["false_positive"] for c in quiet]),
    }
    overall |= {m: _mean([inc[m] for inc in incidents]) for m in INCIDENT_METRICS}
    overall["extra_incidents"] = sum(c["extra_incidents"] for c in cases.values())
    return {"overall": overall, "chance": chance_levels(answers, root_cause_kinds, names), "cases": cases}


# --- output ------------------------------------------------------------------------------

def _cell(value: Any, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width}.3f}"
    return f"{value:>{width}}"


_CASE_COLUMNS: Final = (("detection", "det"), ("onset_60s", "onset"), ("iou", "iou"), ("kind", "kind"),
                        ("ac1", "ac1"), ("ac3", "ac3"), ("avg5", "avg5"), ("change", "change"),
                        ("distractor_blamed", "blamed"), ("extra_incidents", "extra"))


def format_table(result: dict[str, Any]) -> str:
    """The overall metrics next to their chance levels, then one line per case."""
    o, chance = result["overall"], result["chance"]
    lines = [f"{o['n_cases']} cases ({o['n_incident_cases']} with incidents, {o['n_no_incident_cases']} "
             f"without), {o['n_incidents']} incidents ({o['n_localizable']} localizable)", "",
             f"{'metric':<20}{'score':>8}{'chance':>8}"]
    lines += [f"{m:<20}{_cell(o[m], 8)}{_cell(chance.get(m), 8)}" for m in METRICS]
    width = max([4, *(len(c) for c in result["cases"])])
    lines += ["", f"{'case':<{width}}{'true':>5}{'sub':>5}" + "".join(f"{h:>8}" for _, h in _CASE_COLUMNS)]
    for cid, c in result["cases"].items():
        sub = c["submitted_incidents"] if c["answered"] else None
        lines.append(f"{cid:<{width}}{c['true_incidents']:>5}{_cell(sub, 5)}"
                     + "".join(_cell(c[m], 8) for m, _ in _CASE_COLUMNS))
    return "\n".join(lines)


def _names(answers_dir: Path) -> tuple[list[str], list[str]]:
    """The kinds and locations a submission may name: the benchmark's own lists
    (``benchmark.json`` beside ``answers/``), else the vocabulary's."""
    path = answers_dir.parent / "benchmark.json"
    if not path.exists():
        return list(vocabulary.ROOT_CAUSE_KINDS), list(vocabulary.locations())
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        kinds, names = doc["root_cause_kinds"], doc["locations"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise AnswersError(f"{path}: no root_cause_kinds and locations lists ({exc})") from None
    if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in (kinds, names)):
        raise AnswersError(f"{path}: root_cause_kinds, locations: not lists of strings")
    return kinds, names


def main(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{program_name()} score", description=__doc__.splitlines()[0])
    p.add_argument("answers_dir", metavar="ANSWERS_DIR", help="the benchmark's answers/ dir")
    p.add_argument("submission", metavar="SUBMISSION", help="the submission (JSON, one file for all cases)")
    p.add_argument("--json", metavar="OUT", help="also write the scores (per case and overall) as JSON")
    args = p.parse_args(argv)
    try:
        answers = read_answers(args.answers_dir)
        kinds, names = _names(Path(args.answers_dir))
    except AnswersError as exc:
        return bad_input(str(exc))
    submission, problems = check_submission(args.submission, list(answers), kinds, names)
    for problem in problems:
        print(f"error: {one_line(problem)}", file=sys.stderr)
    if problems:
        return EXIT_BAD_INPUT
    result = score(answers, submission, root_cause_kinds=kinds, locations=names)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            return bad_input(f"{args.json}: cannot be written ({exc.strerror})")
    print(format_table(result))
    return 0
