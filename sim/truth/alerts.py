"""A run's alerts: evaluated over the merged cells, written as their own _bulk file, and
judged against the ground truth (which incident each alert belongs to, each incident's
detection delay, and the alerts outside any incident: false alarms).

The alert documents go to ``alerts.ndjson`` and their own index, never into ``all_data``:
they are what a monitor derived from the telemetry, not telemetry, and an index of their
own is what OpenSearch Alerting keeps too (its alert history indices), so the telemetry
index stays exactly the documents the storefront emitted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.config import AlertRule
from sim.core.clock import TimestampFormatter
from sim.outputs.ndjson import write_bulk_file
from sim.telemetry.alert_series import Cells
from sim.telemetry.alerts import AlertEvaluator, AlertEvent, alert_document, alert_id

# An alert fired this long after an incident's symptoms ended still belongs to it (an
# instance back from its OOM restart, a breaker's last open wait).
LINK_GRACE_S = 10 * 60


def evaluate_run(rules: Sequence[AlertRule], cells: Cells, start_s: float,
                 until_s: float) -> list[AlertEvent]:
    """Every alert of a finished run, in time order."""
    return AlertEvaluator(rules, start_s).advance(cells, until_s)


def alert_docs(events: Sequence[AlertEvent]) -> list[dict[str, Any]]:
    ts = TimestampFormatter()
    return [alert_document(e, lambda s: ts(int(s) * 1000)) for e in events]


def alert_doc_id(run_key: str, doc: dict[str, Any]) -> str:
    """Deterministic: the run, the alert and its state (a re-sent document answers 409)."""
    return f"{run_key}-alert-{doc['alert']['id']}-{doc['alert']['state']}"


def write_alerts(path: Path, run_key: str, docs: Sequence[dict[str, Any]],
                 commit: bool = True) -> None:
    """``alerts.ndjson`` in _bulk format, as ``.partial`` (``commit``: renamed into place)."""
    write_bulk_file(path, ((alert_doc_id(run_key, doc), doc) for doc in docs), commit)


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _span(record: dict[str, Any]) -> tuple[float, float] | None:
    """When an incident's alerts may fire: after its cause began (an alert firing at that
    instant judged only the minutes before) until its symptoms (or the fault) ended, plus
    ``LINK_GRACE_S``; None for a change that showed nothing."""
    start = _epoch(record["fault_start"])
    ends = [_epoch(t) for t in (record.get("fault_end"), record.get("symptom_end")) if t]
    if not ends:
        return None
    return start, max(ends) + LINK_GRACE_S


def link_alerts(records: list[dict[str, Any]], docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds to each incident record the alerts it raised and its detection delay (cause
    start -> first alert); returns the alerts of no incident (false alarms)."""
    fired = [d for d in docs if d["alert"]["state"] == "active"]
    resolved = {d["alert"]["id"]: d["@timestamp"] for d in docs if d["alert"]["state"] == "resolved"}
    spans = [(rec, _span(rec)) for rec in records if not rec.get("distractor")]
    false_alarms = []
    raised: dict[str, list[dict[str, Any]]] = {rec["incident_id"]: [] for rec in records}
    for doc in fired:
        at = _epoch(doc["@timestamp"])
        owner = next((rec for rec, span in spans if span and span[0] < at <= span[1]), None)
        entry = _entry(doc, resolved)
        if owner is None:
            false_alarms.append(entry)
        else:
            raised[owner["incident_id"]].append(entry)
    for rec in records:
        if rec.get("distractor"):  # a distractor raises only false alarms: those in its span
            lo, hi = _span(rec) or (0.0, 0.0)
            rec["alerts"] = [a for a in false_alarms if lo < _epoch(a["fired"]) <= hi]
            continue
        alerts = raised[rec["incident_id"]]
        rec["alerts"] = alerts
        rec["detection_delay_s"] = (round(_epoch(alerts[0]["fired"]) - _epoch(rec["fault_start"]))
                                    if alerts else None)
    return false_alarms


def _entry(doc: dict[str, Any], resolved: dict[str, str]) -> dict[str, Any]:
    alert = doc["alert"]
    where = doc.get("host") or doc.get("service") or {}
    return {"id": alert["id"], "rule_id": doc["rule"]["id"], "severity": alert["severity"],
            "on": where.get("name"), "fired": doc["@timestamp"],
            "resolved": resolved.get(alert["id"])}


__all__ = ["LINK_GRACE_S", "alert_doc_id", "alert_docs", "alert_id", "evaluate_run",
           "link_alerts", "write_alerts"]
