"""A live run's alerts: the rules evaluated at every bucket, as far as the documents are
complete, each alert written to ``alerts.ndjson`` (and its sinks) the moment it fires or
resolves.

A request is recorded when it is answered, under its arrival minute, and the load balancer
answers every request within its timeout: a minute's cells are complete once the simulated
clock is ``lb_timeout`` past its end. The evaluator goes that far behind the live segment;
it is the same evaluator a batch run uses (``sim.telemetry.alerts``), fed the same cells in
the same order, so ``replay`` writes the same alerts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from sim.config import Scenario, alert_rules
from sim.outputs.sink import EventSink
from sim.telemetry.alert_series import Cells, merge_cells
from sim.telemetry.alerts import AlertEvaluator
from sim.truth.alerts import alert_doc_id, alert_docs, link_alerts

KEEP_MINUTES = 120  # cells older than this (and than every rule's window) are dropped


class _Both:
    """The backfill's cells and the live segment's, read as one run's (a shared minute
    adds up)."""

    def __init__(self, done: Cells, live: Cells) -> None:
        self.done, self.live = done, live

    def get(self, key: tuple[int, str, int]) -> list[float] | None:
        a, b = self.done.get(key), self.live.get(key)
        if a is None or b is None:
            return a if b is None else b
        return merge_cells([{key: a}, {key: b}])[key]

    def __iter__(self) -> Iterator[tuple[int, str, int]]:
        yield from self.done
        yield from self.live


class LiveAlerts:
    def __init__(self, scenario: Scenario, run_key: str, window_start: float,
                 output_dir: Path | None, sinks: Sequence[EventSink]) -> None:
        self.rules = alert_rules(scenario)
        self.key = run_key
        self.evaluator = AlertEvaluator(self.rules, window_start)
        self.lag_s = scenario.storefront.lb_timeout_ms / 1000.0
        self.sinks = list(sinks)
        self.docs: list[dict[str, Any]] = []
        self.done: Cells = {}
        self.fh: IO[bytes] | None = \
            open(output_dir / "alerts.ndjson", "wb") if output_dir else None  # noqa: SIM115

    def backfilled(self, parts: Sequence[Cells]) -> None:
        """The cells of the segments run before the live one."""
        self.done = merge_cells(parts)

    def advance(self, live: Cells, now: float, final: bool = False) -> list[dict[str, Any]]:
        """Evaluate every boundary whose minutes are complete at ``now`` (``final``: the
        segment has drained, all of them up to ``now``); write what fired or resolved."""
        until = now if final else now - self.lag_s
        docs = alert_docs(self.evaluator.advance(_Both(self.done, live), until))
        for doc in docs:
            self._write(doc)
        self._forget(live)
        return docs

    def _write(self, doc: dict[str, Any]) -> None:
        self.docs.append(doc)
        doc_id = alert_doc_id(self.key, doc)
        if self.fh is not None:
            self.fh.write(orjson.dumps({"index": {"_id": doc_id}}) + b"\n" + orjson.dumps(doc) + b"\n")
            self.fh.flush()
        for sink in self.sinks:
            sink.emit(doc_id, doc)
            sink.flush()

    def _forget(self, live: Cells) -> None:
        """Drop the cells no evaluation reads again, so a long live run stays flat."""
        reach = max([KEEP_MINUTES, *(r.interval_minutes + 1 for r in self.rules)])
        oldest = self.evaluator.next_minute - reach
        for cells in (self.done, live):
            stale = [k for k in cells if k[2] < oldest]
            for k in stale:
                del cells[k]

    def link(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each record's alerts and detection delay; the false alarms so far."""
        return link_alerts(records, self.docs)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
