"""A run's output directory as the report reads it: the files, checked, with one-line errors.

``all_data.ndjson`` is what makes a directory a run's output. ``run_summary.json`` gives the
window and the document counts (a shorter all_data.ndjson than it counts is truncated);
``incidents.ndjson`` the ground truth (missing: the report warns and draws no incidents).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sim.report.aggregate import ReportInputError

ALL_DATA = "all_data.ndjson"
SUMMARY = "run_summary.json"
INCIDENTS = "incidents.ndjson"


@dataclass
class RunDir:
    path: Path
    summary: dict[str, Any] | None
    incidents: list[dict[str, Any]] | None  # None: incidents.ndjson is missing
    warnings: list[str] = field(default_factory=list)

    @property
    def all_data(self) -> Path:
        return self.path / ALL_DATA

    def window_minutes(self) -> tuple[int, int] | None:
        """First and last epoch minute of the run's window, from run_summary.json."""
        try:
            w = self.summary["window"] if self.summary else None
            if not w:
                return None
            start, end = (epoch_s(w[k]) for k in ("start", "end"))
        except (KeyError, TypeError, ValueError):
            return None
        return int(start // 60), int((end - 1) // 60)


def epoch_s(ts: str) -> float:
    """Epoch seconds of an ISO UTC timestamp as the run writes them."""
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def open_run_dir(path: Path) -> RunDir:
    """Check ``path`` is a run's output and load its small files; ReportInputError if not."""
    if not path.is_dir():
        raise ReportInputError(f"{path}: not a directory")
    if not (path / ALL_DATA).is_file():
        raise ReportInputError(f"{path}: not a run's output directory (no {ALL_DATA})")
    summary = None
    if (path / SUMMARY).is_file():
        try:
            summary = orjson.loads((path / SUMMARY).read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ReportInputError(f"{path / SUMMARY}: not valid JSON ({exc})") from None
        if not isinstance(summary, dict):
            raise ReportInputError(f"{path / SUMMARY}: not a JSON object")
    run = RunDir(path, summary, None)
    if (path / INCIDENTS).is_file():
        run.incidents = read_incidents(path / INCIDENTS)
    else:
        run.warnings.append(f"{path / INCIDENTS}: missing; the report shows no incidents")
    return run


def read_incidents(path: Path) -> list[dict[str, Any]]:
    """Incident records of a _bulk ``incidents.ndjson`` (action lines skipped), in start order."""
    records = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ReportInputError(f"{path}: line {n}: not valid JSON ({exc})") from None
            if not isinstance(doc, dict) or "index" in doc or "create" in doc:
                continue
            for key in ("incident_id", "incident_type", "fault_start", "fault_end"):
                if not isinstance(doc.get(key), str):
                    raise ReportInputError(f"{path}: line {n}: {key}: missing or not a string")
            for key in ("fault_start", "fault_end", "symptom_start", "incident_end", "symptom_end"):
                if doc.get(key) is not None:
                    try:
                        epoch_s(doc[key])
                    except (TypeError, ValueError):
                        raise ReportInputError(
                            f"{path}: line {n}: {key}: not a timestamp: {doc[key]!r}") from None
            records.append(doc)
    return sorted(records, key=lambda r: (r["fault_start"], r["incident_id"]))


def check_counts(run: RunDir, docs: dict[str, int], lines: int) -> None:
    """A complete all_data.ndjson holds what run_summary.json counts; fewer means truncated."""
    counts = (run.summary or {}).get("counts")
    if not isinstance(counts, dict):
        return
    found, expected = sum(docs.values()), sum(v for v in counts.values() if isinstance(v, int))
    if found < expected:
        raise ReportInputError(
            f"{run.all_data}: truncated after line {lines}: {found:,} documents, but "
            f"{run.path / SUMMARY} counts {expected:,}")
    if found > expected:
        raise ReportInputError(
            f"{run.all_data}: {found:,} documents, but {run.path / SUMMARY} counts {expected:,}")
