"""A solver's submission: its JSON Schema and the check that refuses a bad one.

The schema is what a solver reads (``DIR/submission.schema.json``); ``check_submission`` is
what the scorer runs, by hand so that the package needs no schema library. Both refuse the
same documents, except where JSON Schema cannot look: a duplicate key (the JSON parser keeps
the last), a calendar-impossible time (Feb 30 matches the pattern) and a start after its end.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from sim.benchmark import vocabulary

# ISO 8601 UTC with Z, seconds required, up to microseconds: what datetime parses exactly
TIME_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
INCIDENT_KEYS: Final = ("start", "end", "root_cause_kind", "locations", "change")


def schema(case_ids: Sequence[str] = (), root_cause_kinds: Sequence[str] = vocabulary.ROOT_CAUSE_KINDS,
           locations: Sequence[str] | None = None) -> dict[str, Any]:
    """The submission's JSON Schema (draft 2020-12) for these names; the case ids are
    listed when given (else any id passes the schema and the scorer still checks it)."""
    names = list(vocabulary.locations() if locations is None else locations)
    time = {"type": "string", "pattern": TIME_PATTERN}
    incident = {
        "type": "object",
        "additionalProperties": False,
        "required": ["start", "end"],
        "properties": {
            "start": {**time, "description": "when the symptoms began (ISO 8601 UTC, ...Z)"},
            "end": {**time, "description": "when they ended; not before start"},
            "root_cause_kind": {"enum": [*root_cause_kinds, None],
                                "description": "what caused it; null or absent: not answered"},
            "locations": {"type": "array", "uniqueItems": True, "items": {"enum": names},
                          "description": "where the cause is, best first; the first 5 are scored"},
            "change": {"type": ["string", "null"],
                       "description": "the causing change's id from its change document; null: no change"},
        },
    }
    case = {"type": "object", "additionalProperties": False, "required": ["incidents"],
            "properties": {"incidents": {"type": "array", "items": incident,
                                         "description": "[] means: no incident in the window"}}}
    cases: dict[str, Any] = {"type": "object", "additionalProperties": case,
                             "description": "case id -> answer; a case left out is unanswered"}
    if case_ids:
        cases["propertyNames"] = {"enum": list(case_ids)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "storefront-sim benchmark submission",
        "type": "object",
        "additionalProperties": False,
        "properties": {"cases": cases},
    }


def write_schema(path: str | Path, case_ids: Sequence[str] = (),
                 root_cause_kinds: Sequence[str] = vocabulary.ROOT_CAUSE_KINDS,
                 locations: Sequence[str] | None = None) -> None:
    """Write the schema as the generator's ``submission.schema.json`` (stable bytes)."""
    text = json.dumps(schema(case_ids, root_cause_kinds, locations), indent=2)
    Path(path).write_text(text + "\n", encoding="utf-8")


class _Pairs(dict):  # type: ignore[type-arg]
    """A JSON object that remembers the keys it had more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Pairs:
    obj = _Pairs(pairs)
    keys = [k for k, _ in pairs]
    obj.duplicates = tuple(k for i, k in enumerate(keys) if k in keys[:i])
    return obj


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 UTC time with ``Z`` as an aware datetime; None if it is not one."""
    if not isinstance(value, str) or not re.fullmatch(TIME_PATTERN[1:-1], value):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _keys(obj: _Pairs, where: str, allowed: Sequence[str], problems: list[str]) -> None:
    prefix = f"{where}." if where else ""
    problems += [f"{prefix}{k}: duplicate key" for k in obj.duplicates]
    problems += [f"{prefix}{k}: unknown key (allowed: {', '.join(allowed)})" for k in obj if k not in allowed]


def _check_incident(inc: Any, where: str, kinds: Sequence[str], names: Sequence[str],
                    problems: list[str]) -> None:
    if not isinstance(inc, dict):
        problems.append(f"{where}: not an object")
        return
    _keys(inc, where, INCIDENT_KEYS, problems)
    times = {key: parse_time(inc.get(key)) for key in ("start", "end")}
    for key, time in times.items():
        if key not in inc:
            problems.append(f"{where}.{key}: missing")
        elif time is None:
            problems.append(f"{where}.{key}: not an ISO 8601 UTC time (like 2026-06-03T10:41:00Z)")
    if times["start"] and times["end"] and times["start"] > times["end"]:
        problems.append(f"{where}.start: after its end ({inc['start']} > {inc['end']})")
    kind = inc.get("root_cause_kind")
    if kind is not None and (not isinstance(kind, str) or kind not in kinds):
        problems.append(f"{where}.root_cause_kind: unknown root-cause kind {kind!r} "
                        f"(benchmark.json lists them)")
    if "locations" in inc:
        places = inc["locations"]
        if not isinstance(places, list):
            problems.append(f"{where}.locations: not a list of strings")
            places = []
        for i, name in enumerate(places):
            if not isinstance(name, str):
                problems.append(f"{where}.locations[{i}]: not a string")
            elif name not in names:
                problems.append(f"{where}.locations[{i}]: unknown location {name!r} "
                                f"(benchmark.json lists them)")
            elif name in places[:i]:
                problems.append(f"{where}.locations[{i}]: duplicate of locations[{places.index(name)}]")
    if "change" in inc and inc["change"] is not None and not isinstance(inc["change"], str):
        problems.append(f"{where}.change: not a change id (a string) or null")


def check_submission(path: str | Path, case_ids: Sequence[str], root_cause_kinds: Sequence[str],
                     locations: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """(the submission, its problems: one line each, naming the file and the field).

    The submission is ``{}`` when the file is not a JSON object."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{name}: cannot be read ({exc.strerror if isinstance(exc, OSError) else exc})"]
    try:
        doc = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        return {}, [f"{name}: not JSON ({exc})"]
    if not isinstance(doc, dict):
        return {}, [f"{name}: not a JSON object (a submission is {{\"cases\": {{...}}}})"]
    problems: list[str] = []
    _keys(doc, "", ("cases",), problems)
    cases = doc.get("cases", _Pairs())
    if not isinstance(cases, _Pairs):
        problems.append("cases: not an object (case id -> answer)")
        cases = {}
    else:
        problems += [f"cases.{k}: duplicate key" for k in cases.duplicates]
    known = set(case_ids)
    for case_id, answer in cases.items():
        where = f"cases.{case_id}"
        if case_id not in known:
            problems.append(f"{where}: unknown case id")
            continue
        if not isinstance(answer, dict):
            problems.append(f"{where}: not an object ({{\"incidents\": [...]}})")
            continue
        _keys(answer, where, ("incidents",), problems)
        incidents = answer.get("incidents")
        if "incidents" not in answer:
            problems.append(f"{where}.incidents: missing ([] means no incident)")
        elif not isinstance(incidents, list):
            problems.append(f"{where}.incidents: not a list")
        else:
            for i, inc in enumerate(incidents):
                _check_incident(inc, f"{where}.incidents[{i}]", root_cause_kinds, locations, problems)
    return doc, [f"{name}: {p}" for p in problems]
