"""Per-minute aggregates of exactly what the alert rules query, taken from the documents as
they are emitted.

An alert must see only what a monitor could query: the transaction documents (their
``response_time_ms`` as written, their status, service, endpoint and host) and the 10 s
metric documents. Each distinct query of the rules is a ``Signal``; every emitted document
adds to the cell of (signal, group, epoch minute) it falls in, for every minute of the
emitted window (not only around faults), so the parent can evaluate the rules over the whole
run. A cell is ``[n, sum, max, min, max of relative_to]``; for transactions ``sum`` counts
the requests over the signal's latency threshold (p95/p99) or answered 5xx (error_rate).
Cells of two segments that share a minute add up (``merge_cells``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sim.config import AlertRule

Cells = dict[tuple[int, str, int], list[float]]  # (signal, group, epoch minute) -> cell
TX_FIELDS = ("service.name", "transaction.name", "host.name")  # add_transaction's order
ALL = ""  # the group of a rule without group_by


class Signal(NamedTuple):
    """One query of the rules (rules that ask the same share its cells)."""

    source: str
    where: tuple[tuple[str, str], ...]
    group_by: str | None
    kind: str  # transactions: "slower", "5xx" or "count"; metrics: the field
    threshold: float  # "slower": response_time_ms over this counts
    relative_to: str | None = None


def signal_of(rule: AlertRule) -> Signal:
    where = tuple(sorted(rule.where.items()))
    if rule.source == "transactions":
        kind = {"p95": "slower", "p99": "slower", "error_rate": "5xx"}.get(rule.aggregation, "count")
        return Signal(rule.source, where, rule.group_by, kind,
                      rule.threshold if kind == "slower" else 0.0)
    return Signal(rule.source, where, rule.group_by, rule.field or "", 0.0, rule.relative_to)


def signals_of(rules: Iterable[AlertRule]) -> list[Signal]:
    """The distinct signals of ``rules``, in the order first asked for."""
    return list(dict.fromkeys(signal_of(r) for r in rules))


def new_cell(value: float, relative: float) -> list[float]:
    return [1.0, value, value, value, relative]


def add_to(cell: list[float], value: float, relative: float) -> None:
    cell[0] += 1.0
    cell[1] += value
    if value > cell[2]:
        cell[2] = value
    if value < cell[3]:
        cell[3] = value
    if relative > cell[4]:
        cell[4] = relative


def lookup(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for key in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


class AlertSeries:
    """The cells of one segment (or of a live run's segment, read as it goes)."""

    def __init__(self, signals: Sequence[Signal]) -> None:
        self.signals = list(signals)
        self.cells: Cells = {}
        self._tx = [(i, tuple((TX_FIELDS.index(k), v) for k, v in s.where),
                     None if s.group_by is None else TX_FIELDS.index(s.group_by), s.kind, s.threshold)
                    for i, s in enumerate(signals) if s.source == "transactions"]
        self._metrics = [(i, s) for i, s in enumerate(signals) if s.source == "metrics"]
        self._epochs: dict[str, int] = {}

    def add_transaction(self, at_ms: int, service: str, endpoint: str, host: str,
                        response_ms: float, status: int) -> None:
        """One transaction document: its @timestamp (epoch ms), as written."""
        if not self._tx:
            return
        values = (service, endpoint, host)
        minute = at_ms // 60_000
        written = round(response_ms, 1)
        for i, where, group, kind, threshold in self._tx:
            if any(values[k] != v for k, v in where):
                continue
            hit = (1.0 if written > threshold else 0.0) if kind == "slower" else \
                (1.0 if status >= 500 else 0.0) if kind == "5xx" else 0.0
            self._add((i, ALL if group is None else values[group], minute), hit, 0.0)

    def add_document(self, doc: dict[str, Any]) -> None:
        """A document built as a dict: metric documents feed the metrics signals."""
        if not self._metrics or doc.get("event_type") != "infrastructure_metric":
            return
        minute = self._epoch_s(doc["@timestamp"]) // 60
        for i, s in self._metrics:
            if any(lookup(doc, k) != v for k, v in s.where):
                continue
            value = lookup(doc, s.kind)
            if not isinstance(value, int | float):
                continue
            group = ALL if s.group_by is None else str(lookup(doc, s.group_by))
            relative = lookup(doc, s.relative_to) if s.relative_to else 0.0
            self._add((i, group, minute), float(value), float(relative or 0.0))

    def _add(self, key: tuple[int, str, int], value: float, relative: float) -> None:
        cell = self.cells.get(key)
        if cell is None:
            self.cells[key] = new_cell(value, relative)
        else:
            add_to(cell, value, relative)

    def _epoch_s(self, timestamp: str) -> int:
        """An ISO @timestamp's epoch second (cached: a sample's documents share it)."""
        epoch = self._epochs.get(timestamp)
        if epoch is None:
            if len(self._epochs) > 64:
                self._epochs.clear()
            epoch = self._epochs[timestamp] = int(dt.datetime.fromisoformat(timestamp).timestamp())
        return epoch


def merge_cells(parts: Iterable[Cells]) -> Cells:
    """Segments' cells as one run's: a minute two segments share adds up."""
    out: Cells = {}
    for part in parts:
        for key, cell in part.items():
            mine = out.get(key)
            if mine is None:
                out[key] = list(cell)
                continue
            mine[0] += cell[0]
            mine[1] += cell[1]
            mine[2] = max(mine[2], cell[2])
            mine[3] = min(mine[3], cell[3])
            mine[4] = max(mine[4], cell[4])
    return out
