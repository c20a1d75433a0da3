"""The alert rules evaluated over the per-minute cells of the emitted documents.

A rule is evaluated at every multiple of its interval (epoch minutes), on the interval that
ends there, once per group (host, service, ...) it has seen. An evaluation breaches when the
aggregate crosses the threshold; the rule's condition holds when ``for_minutes`` of
evaluations in a row breached; an alert is active while the condition held in one of the
last ``resolve_after`` evaluations, so it fires at the first evaluation the condition holds
and resolves after ``resolve_after`` evaluations without it. That definition needs no
memory beyond a window of ``for + resolve_after - 1`` intervals: an OpenSearch monitor over
that window decides the same (``sim.outputs.alert_monitors``).

``AlertEvaluator.advance`` goes forward in time only: a batch run calls it once over the
merged cells of all segments, a live run at every bucket; both see the same sequence, so the
alerts are the same for any worker count, engine or bucket size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.config import AlertRule
from sim.telemetry.alert_series import ALL, Signal, signal_of

Key = tuple[int, str, int]


class CellReader(Protocol):
    """The cells an evaluator reads (a dict of them, or a live run's two dicts as one)."""

    def get(self, key: Key) -> list[float] | None: ...

    def __iter__(self) -> Iterator[Key]: ...

SEVERITY_CODES = {"critical": 1, "warning": 3}  # ECS event.severity: lower is worse


@dataclass
class AlertEvent:
    """An alert firing (state ``active``) or resolving (``resolved``), at ``at_s``."""

    rule: AlertRule
    group: str
    state: str
    at_s: int
    start_s: int
    observed: float
    peak: float
    end_s: int | None = None


@dataclass
class _Track:
    """One (rule, group)'s evaluations so far."""

    run: int = 0  # breaching evaluations in a row
    since: int = 1 << 30  # evaluations since the condition last held
    start_s: int | None = None  # the active alert's
    peak: float = 0.0


@dataclass
class AlertEvaluator:
    rules: Sequence[AlertRule]
    start_s: float  # the window: evaluations cover intervals inside it
    next_minute: int = 0  # the next epoch minute boundary to evaluate at
    tracks: dict[tuple[int, str], _Track] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)
    groups: dict[int, set[str]] = field(default_factory=dict)  # signal -> groups seen

    def __post_init__(self) -> None:
        self.signals = list(dict.fromkeys(signal_of(r) for r in self.rules))
        self.next_minute = math.ceil(self.start_s / 60.0) + 1

    def advance(self, cells: CellReader, until_s: float) -> list[AlertEvent]:
        """Evaluate every boundary up to ``until_s`` (the cells of the minutes before it are
        complete); the alerts that fired or resolved, in time order."""
        self._learn_groups(cells)
        events: list[AlertEvent] = []
        first = math.ceil(self.start_s / 60.0)
        while self.next_minute * 60 <= until_s:
            boundary = self.next_minute
            for r, rule in enumerate(self.rules):
                if boundary % rule.interval_minutes or boundary - rule.interval_minutes < first:
                    continue
                s = self.signals.index(signal_of(rule))
                for group in sorted(self.groups.get(s, ())):
                    event = self._evaluate(r, rule, s, group, boundary, cells)
                    if event is not None:
                        events.append(event)
            self.next_minute += 1
        return events

    def _learn_groups(self, cells: CellReader) -> None:
        for s, group, _minute in cells:
            self.groups.setdefault(s, set()).add(group)

    def _evaluate(self, r: int, rule: AlertRule, s: int, group: str, boundary: int,
                  cells: CellReader) -> AlertEvent | None:
        """One evaluation of one rule for one group: the event it makes, if any."""
        value = rule_value(rule, [cells.get((s, group, m)) for m in
                                  range(boundary - rule.interval_minutes, boundary)])
        track = self.tracks.setdefault((r, group), _Track())
        track.run = track.run + 1 if value is not None and breaches(rule, value) else 0
        held = track.run >= rule.for_minutes // rule.interval_minutes
        track.since = 0 if held else track.since + 1
        at = boundary * 60
        if track.start_s is None:
            if not held:
                return None
            track.start_s, track.peak = at, value or 0.0
            return AlertEvent(rule, group, "active", at, at, value or 0.0, value or 0.0)
        if value is not None and worse(rule, value, track.peak):
            track.peak = value
        if track.since < rule.resolve_after:
            return None
        start, track.start_s = track.start_s, None
        return AlertEvent(rule, group, "resolved", at, start, value or 0.0, track.peak, at)

    def active(self) -> list[tuple[AlertRule, str, int, float]]:
        """The alerts active now: rule, group, since, peak."""
        return [(self.rules[r], group, t.start_s, t.peak)
                for (r, group), t in sorted(self.tracks.items()) if t.start_s is not None]


def rule_value(rule: AlertRule, cells: Sequence[list[float] | None]) -> float | None:
    """The rule's aggregate over an interval's minute cells; None without any document (a
    monitor's bucket that is not there: it never breaches)."""
    got = [c for c in cells if c is not None]
    n = sum(c[0] for c in got)
    if rule.aggregation == "count":
        return n
    if not n or n < rule.min_requests:
        return None  # no document, or too few requests to judge
    total = sum(c[1] for c in got)
    agg = rule.aggregation
    if agg in ("p95", "p99", "error_rate"):
        return 100.0 * total / n  # percent slower than the threshold / answered 5xx
    value = (max(c[2] for c in got) if agg == "max" else min(c[3] for c in got) if agg == "min"
             else total / n if agg == "avg" else total)
    if rule.relative_to is not None:
        limit = max(c[4] for c in got)
        return 100.0 * value / limit if limit else None
    return value


def allowed_share(rule: AlertRule) -> float:
    """p95/p99: the percent of requests that may be slower than the threshold."""
    return 5.0 if rule.aggregation == "p95" else 1.0


def breaches(rule: AlertRule, value: float) -> bool:
    limit = allowed_share(rule) if rule.aggregation in ("p95", "p99") else rule.threshold
    return value > limit if rule.comparison == "above" else value < limit


def worse(rule: AlertRule, value: float, than: float) -> bool:
    return value > than if rule.comparison == "above" else value < than


def describe(rule: AlertRule, value: float) -> str:
    """A value as a pager says it."""
    if rule.aggregation in ("p95", "p99"):
        return (f"{value:.3g}% of requests slower than {rule.threshold:g} ms "
                f"({allowed_share(rule):g}% allowed)")
    unit = f" {rule.unit}" if rule.unit and rule.unit != "%" else rule.unit
    what = "5xx" if rule.aggregation == "error_rate" else rule.field or "requests"
    return f"{what} {rule.aggregation} {value:.4g}{unit}"


def pager_message(event: AlertEvent) -> str:
    """``[FIRING] CRITICAL name on host: observed (threshold)`` or, resolving, how long it
    lasted and its worst value."""
    rule = event.rule
    where = "" if event.group == ALL else f" on {event.group}"
    head = f"{rule.severity.upper()} {rule.name}{where}"
    if event.state == "active":
        unit = f" {rule.unit}" if rule.unit and rule.unit != "%" else rule.unit
        limit = "" if rule.aggregation in ("p95", "p99") else \
            f" ({rule.comparison} {rule.threshold:g}{unit})"
        return f"[FIRING] {head}: {describe(rule, event.observed)}{limit}"
    minutes = (event.at_s - event.start_s) // 60
    return f"[RESOLVED] {head} after {minutes} min; worst {describe(rule, event.peak)}"


def alert_document(event: AlertEvent, timestamp: Any) -> dict[str, Any]:
    """An alert's document; ``timestamp`` turns epoch seconds into @timestamp text."""
    rule = event.rule
    doc: dict[str, Any] = {
        "@timestamp": timestamp(event.at_s), "event_type": "alert",
        "event": {"kind": "alert", "severity": SEVERITY_CODES[rule.severity],
                  "start": timestamp(event.start_s)},
        "rule": {"id": rule.id, "name": rule.name},
        "alert": {"id": alert_id(event), "state": event.state, "severity": rule.severity,
                  "observed": round(event.observed, 4), "peak": round(event.peak, 4),
                  "threshold": rule.threshold,
                  "comparison": rule.comparison, "aggregation": rule.aggregation},
        "message": pager_message(event),
    }
    if event.end_s is not None:
        doc["event"]["end"] = timestamp(event.end_s)
        doc["event"]["duration"] = (event.end_s - event.start_s) * 1_000_000_000
    for name in ("service.name", "transaction.name", "host.name"):
        value = event.group if name == rule.group_by else rule.where.get(name)
        if value is not None:
            doc[name.split(".")[0]] = {"name": value}
    return doc


def alert_id(event: AlertEvent) -> str:
    """The alert's id: its rule, group and start (firing and resolving share it)."""
    group = f"-{event.group}" if event.group != ALL else ""
    return f"{event.rule.id}{group}-{event.start_s}"
