"""One segment of simulated time (at most a UTC day), simulated on its own.

A segment starts ``warmup`` before its window so the storefront is in steady state when
documents start to count, and drains after it so requests that started inside finish.
Its random streams derive from (seed, segment index): a segment's output does not depend
on which process simulates it or on how many there are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.config import Scenario, alert_rules
from sim.core import engine
from sim.core.clock import Window, epoch_ms
from sim.core.rng import RandomStreams
from sim.model.changes import ActiveChange, config_push, deploy, feature_flag
from sim.model.customers import Customer
from sim.model.distractors import Distractor, batch_job, cache_flush
from sim.model.failures import Failure
from sim.model.faults import ActiveFault, FaultSchedule
from sim.model.request import Request
from sim.model.storefront import Storefront
from sim.model.traffic import shoppers_arrive
from sim.telemetry.alert_series import AlertSeries, Cells, signals_of
from sim.telemetry.documents import DocumentFactory
from sim.telemetry.encoding import EncodedDoc
from sim.telemetry.logs import LogCollector
from sim.telemetry.metrics import MetricsSampler
from sim.telemetry.minutes import Minute, MinuteAggregator
from sim.telemetry.recorder import Recorder
from sim.telemetry.spans import Tracer

# where a segment's traces go: its spans' and its service map's _bulk line pairs, and its
# log documents
TraceOutput = tuple[Callable[[bytes], None], Callable[[bytes], None],
                    Callable[[dict[str, Any]], None]]

ENGINES: dict[str, Callable[[], Any]] = {"fast": engine.Environment, "simpy": simpy.Environment}


def drain_s(scenario: Scenario) -> float:
    """How long a segment runs on after its last document, so a request that started before
    it ends: twice the load balancer's timeout (a request and a shopper's retry), plus a
    minute. The plan (``sim.run.plan``) also gives a segment the faults whose aftermath
    reaches into its drain."""
    return 2 * scenario.storefront.lb_timeout_ms / 1000.0 + 60.0


@dataclass(frozen=True)
class SegmentPlan:
    index: int
    window: Window
    warmup_s: float
    faults: tuple[ActiveFault, ...]
    engine: str = "fast"  # a key of ENGINES
    stop_epoch: float | None = None  # documents end here, before window.end (a live run's)
    changes: tuple[ActiveChange, ...] = ()  # in time order, every one made before it ends
    distractors: tuple[Distractor, ...] = ()  # benign anomalies it holds a part of
    # a live run's changes made at runtime, with the bucket boundary at which the live loop
    # scheduled them (``SegmentRun.schedule_changes``): a replay schedules them there too
    runtime_changes: tuple[tuple[float, ActiveChange], ...] = ()


@dataclass
class SegmentResult:
    index: int
    counts: dict[str, int] = field(default_factory=dict)
    state_log: list[tuple[str, str, str, str]] = field(default_factory=list)
    minutes: dict[int, Minute] = field(default_factory=dict)  # ground truth, see sim.truth.records
    alert_cells: Cells = field(default_factory=dict)  # every minute's, see sim.telemetry.alerts


def simulate_segment(
    scenario: Scenario,
    plan: SegmentPlan,
    customers: list[Customer],
    emit: Callable[[dict[str, Any] | EncodedDoc], None],
    progress: Callable[[float], None] | None = None,
    traces: TraceOutput | None = None,
) -> SegmentResult:
    """Run one segment; ``emit`` receives every document in a deterministic order, and
    ``traces`` its kept traces and service map when the scenario writes traces.

    ``plan.engine`` picks the environment: ``fast`` (sim.core.engine) or ``simpy``; the model
    is the same code on both, and writes the same bytes."""
    return SegmentRun(scenario, plan, customers, emit, progress, traces=traces).finish()


class SegmentRun:
    """One segment's storefront, built and ready to run.

    A batch run runs it to the end at once (``finish``); a live run steps it
    (``run_until``) and may ``stop`` it early, which a batch replay reproduces with
    ``plan.stop_epoch``: documents end there, while arrivals are still drawn for the whole
    planned window (the same random numbers either way)."""

    def __init__(self, scenario: Scenario, plan: SegmentPlan, customers: list[Customer],
                 emit: Callable[[dict[str, Any] | EncodedDoc], None],
                 progress: Callable[[float], None] | None = None, live: bool = False,
                 traces: TraceOutput | None = None) -> None:
        self.plan = plan
        self.env = env = ENGINES[plan.engine]()
        streams = RandomStreams(scenario.seed, plan.index)
        origin = plan.window.start - dt.timedelta(seconds=plan.warmup_s)
        origin_ms = epoch_ms(origin)
        origin_s = origin_ms / 1000.0
        self.origin_s = origin_s
        self.emit_from = plan.warmup_s
        planned_until = plan.warmup_s + plan.window.seconds
        self.emit_until = planned_until if plan.stop_epoch is None else plan.stop_epoch - origin_s
        self.halt = [self.emit_until] if live or plan.stop_epoch is not None else None
        self.faults = FaultSchedule(list(plan.faults), lambda: origin_s + env.now, live=live)
        id_seed = int(streams.generator("ids").integers(0, 2**63 - 1))
        self.docs = docs = DocumentFactory(origin_ms, id_seed)
        counts: dict[str, int] = {}
        self.counts = counts
        self.alerts = AlertSeries(signals_of(alert_rules(scenario)))
        add_document = self.alerts.add_document

        def counting_emit(doc: dict[str, Any] | EncodedDoc) -> None:
            if type(doc) is EncodedDoc:
                kind = doc.event_type
            else:
                kind = doc["event_type"]
                add_document(doc)
            counts[kind] = counts.get(kind, 0) + 1
            emit(doc)

        day_cache: dict[int, str] = {}

        def day_label(sim_s: float) -> str:
            day = int((origin_s + sim_s) // 86400)
            label = day_cache.get(day)
            if label is None:
                label = dt.datetime.fromtimestamp(day * 86400, dt.UTC).strftime("%Y%m%d")
                day_cache[day] = label
            return label

        self.minutes = MinuteAggregator(origin_s, self.faults.faults,
                                        [*plan.changes, *(c for _, c in plan.runtime_changes)])
        self.recorder = Recorder(env, scenario.storefront, docs, self.minutes,
                                 streams.stream("orders"), counting_emit, self.emit_from,
                                 self.emit_until, day_label)
        self.recorder.alert_tx = self.alerts.add_transaction
        made = [c for c in plan.changes if c.epoch < origin_s]
        self.shop = Storefront(env, scenario, streams, self.faults, self.recorder, made)
        self.recorder.versions = self.shop.versions
        self.schedule_changes(plan.changes[len(made):])
        self.tracer = self.start_tracing(scenario, origin_ms, traces)
        self.schedule_distractors(plan.distractors)
        self.sampler = MetricsSampler(self.shop, docs, scenario.output.metrics_interval_s,
                                      counting_emit, self.emit_from, self.emit_until)
        env.process(self.sampler.run(env))
        env.process(shoppers_arrive(env, scenario, streams, self.shop, customers, origin_s,
                                    planned_until, self.faults, progress, self.halt))
        self.drain_s = drain_s(scenario)

    def start_tracing(self, scenario: Scenario, origin_ms: int, traces: TraceOutput | None
                      ) -> Tracer | None:
        """Every instance records its requests' steps and the recorder hands each answered
        one to the tracer (its sampler builds the kept ones), when traces are written."""
        self.trace_output = traces
        self.logs: LogCollector | None = None
        cfg = scenario.output.traces
        if traces is None or not cfg.enabled:
            return None
        tracer = Tracer(origin_ms, cfg.sample_share, cfg.slow_ms, traces[0])
        shop = self.shop
        for instance in shop.instances:
            instance.tracing = True
        logs = LogCollector(self.env, scenario.storefront, self.docs.timestamp,
                            {i.name: i.db_pool for i in shop.instances})
        self.logs = logs
        shop.lb.on_health = logs.health
        self.recorder.change_log = logs.change

        def finish(req: Request, ids: int, failure: Failure | None, response_ms: float) -> None:
            tracer.finish(req, ids, failure, response_ms)
            if failure is not None and failure.kind == "db_pool_timeout":
                logs.request(req.end, req.host, ids)

        self.recorder.trace = finish
        return tracer

    def schedule_changes(self, changes: tuple[ActiveChange, ...]) -> None:
        """The changes made during the segment, from now on (when it is built, or at a live
        run's bucket boundary): a push is a process per host it reaches, a deploy one
        rolling process, a flag one switch."""
        env = self.env
        record = self.recorder.change
        by_name = {instance.name: instance for instance in self.shop.instances}
        for change in changes:
            at_s = max(0.0, change.epoch - self.origin_s - env.now)  # from now
            if change.kind == "deploy":
                env.process(deploy(env, [by_name[h] for h in change.hosts], change, at_s, record))
            elif change.kind == "feature_flag":
                env.process(feature_flag(env, self.shop.backends.flags, change, at_s, record))
            else:
                for host in change.hosts:
                    env.process(config_push(env, by_name[host], change, at_s, record))

    def schedule_distractors(self, distractors: tuple[Distractor, ...]) -> None:
        """The benign anomalies: a batch job on its host, a flush of the database's cache."""
        env, shop = self.env, self.shop
        by_name = {instance.name: instance for instance in shop.instances}
        for d in distractors:
            if d.kind == "batch_job":
                env.process(batch_job(env, by_name[d.host], d, self.origin_s))
            elif d.start_epoch >= self.origin_s:
                env.process(cache_flush(env, shop.backends.db, d, self.origin_s, shop.log.record))

    def now_epoch(self) -> float:
        return self.origin_s + self.env.now

    def run_until(self, epoch_s: float) -> None:
        """Simulate up to ``epoch_s`` (events due exactly then wait for the next call)."""
        self.env.run(until=epoch_s - self.origin_s)

    def stop(self, epoch_s: float) -> None:
        """No arrivals and no documents from ``epoch_s`` on (a live run being stopped)."""
        until = epoch_s - self.origin_s
        self.emit_until = until
        self.recorder.emit_until = until
        self.sampler.emit_until = until
        if self.halt is not None:
            self.halt[0] = until

    def finish(self) -> SegmentResult:
        """Drain what is in flight, as the load balancer would, and hand back the results.
        A replayed live segment first steps to each boundary where the live run scheduled a
        runtime change and schedules it there: the same events in the same order."""
        stepped = None
        for boundary, change in self.plan.runtime_changes:
            if boundary != stepped and boundary - self.origin_s > self.env.now:
                self.run_until(boundary)
                stepped = boundary
            self.schedule_changes((change,))
        shop = self.shop
        self.env.run(until=self.emit_until + self.drain_s)
        for instance, request in shop.in_flight():
            shop.shoppers.give_up(request, instance.name)
        if self.tracer is not None and self.trace_output is not None and self.logs is not None:
            self.trace_output[1](self.tracer.service_map_lines())
            for doc in self.logs.documents(shop.log.entries, self.emit_from, self.emit_until):
                self.trace_output[2](doc)
        return SegmentResult(self.plan.index, self.counts, self.state_log(), self.minutes.minutes,
                             self.alerts.cells)

    def state_log(self) -> list[tuple[str, str, str, str]]:
        return [
            (self.docs.timestamp(t), component, event, detail)
            for t, component, event, detail in self.shop.log.entries
            if self.emit_from <= t < self.emit_until
        ]
