"""Recorder: what a finished request leaves behind, the documents and the ground truth.

Every answered request becomes a transaction document (and an error document when it
failed), inside the emitted window only, and is added to the per-minute ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.config import StorefrontConfig
from sim.core.rng import RandomStream
from sim.model.changes import ActiveChange
from sim.model.failures import Failure, build_catalog
from sim.model.request import Request
from sim.telemetry.documents import DocumentFactory
from sim.telemetry.encoding import EncodedDoc
from sim.telemetry.minutes import MinuteAggregator


class Recorder:
    def __init__(self, env: Any, cfg: StorefrontConfig, docs: DocumentFactory,
                 minutes: MinuteAggregator, order_rng: RandomStream,
                 emit: Callable[[dict[str, Any] | EncodedDoc], None], emit_from: float,
                 emit_until: float, day_label: Callable[[float], str]) -> None:
        self.env = env
        self.docs = docs
        self.catalog: dict[str, Failure] = build_catalog(cfg)
        self.minutes = minutes
        self.order_rng = order_rng
        self.emit = emit
        self.emit_from = emit_from
        self.emit_until = emit_until
        self.day_label = day_label
        self.order_seq = 0
        # sim.telemetry.spans.Tracer when the run writes traces: a request's trace, if kept
        self.trace: Callable[[Request, int, Failure | None, float], None] | None = None
        # the log line of a change (sim.telemetry.logs), when logs are written: (time, document)
        self.change_log: Callable[[float, dict[str, Any]], None] | None = None
        # host -> the version it runs (the storefront's, once built): what served a request
        self.versions: dict[str, str] = {}
        # the alert rules' per-minute cells (sim.telemetry.alert_series), when a run has rules
        self.alert_tx: Callable[[int, str, str, str, float, int], None] | None = None

    def finish(self, req: Request, retried: bool) -> None:
        """A request was answered (``Shoppers.answer`` filled in what the client saw);
        ``retried``: the shopper sends it again."""
        if not (self.emit_from <= req.arrival < self.emit_until):
            return
        endpoint = req.endpoint
        host = req.host
        failure_kind = req.failure_kind
        failure = None if failure_kind is None else self.catalog[failure_kind]
        docs = self.docs
        ids = docs.new_ids()
        order = b""
        failed_amount = None
        if endpoint.name == "checkout":
            self.order_seq += 1
            payment_status = ("captured" if failure is None else
                              "declined" if failure_kind == "card_declined" else "failed")
            order, amount = docs.order(self.order_rng.random, req.customer, self.order_seq,
                                       self.day_label(req.arrival), payment_status)
            if payment_status == "failed" and not retried:
                # the shopper gave up: this order is lost (a retried one may still succeed)
                failed_amount = amount
        response_ms = req.response_s * 1000.0
        self.minutes.add(req.arrival, endpoint.name, host, response_ms, failure_kind,
                         failed_amount)
        version = self.versions.get(host)
        self.emit(docs.transaction(req, ids, req.customer, endpoint, host, req.status_code,
                                   response_ms, order, version))
        if self.alert_tx is not None:
            self.alert_tx(docs.origin_ms + round(req.arrival * 1000.0), endpoint.service,
                          endpoint.name, host, response_ms, req.status_code)
        if failure is not None:
            self.emit(docs.error(req.end, ids, endpoint, host, failure, req.status_code, version))
        if self.trace is not None:
            self.trace(req, ids, failure, response_ms)

    def change(self, at_s: float, host: str, change: ActiveChange,
               diff: list[tuple[str, Any, Any]], restart: bool, began_s: float) -> None:
        """A change reached a host (or the fleet): its document, inside the emitted window only."""
        if self.emit_from <= at_s < self.emit_until:
            doc = self.docs.change(at_s, host, change, diff, restart, began_s, self.versions.get(host))
            self.emit(doc)
            if self.change_log is not None:
                self.change_log(at_s, doc)
