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

from sim import engine
from sim.clock import Window, epoch_ms
from sim.config import Scenario
from sim.documents import Customer, DocumentFactory
from sim.faults import ActiveFault, FaultSchedule
from sim.groundtruth import Minute
from sim.metrics import MetricsSampler
from sim.rng import RandomStreams
from sim.sinks.base import EncodedDoc
from sim.storefront import Storefront
from sim.traffic import shoppers_arrive

ENGINES: dict[str, Callable[[], Any]] = {"fast": engine.Environment, "simpy": simpy.Environment}


@dataclass(frozen=True)
class SegmentPlan:
    index: int
    window: Window
    warmup_s: float
    faults: tuple[ActiveFault, ...]
    engine: str = "fast"  # a key of ENGINES


@dataclass
class SegmentResult:
    index: int
    counts: dict[str, int] = field(default_factory=dict)
    state_log: list[tuple[str, str, str, str]] = field(default_factory=list)
    minutes: dict[int, Minute] = field(default_factory=dict)  # ground truth, see sim.groundtruth


def simulate_segment(
    scenario: Scenario,
    plan: SegmentPlan,
    customers: list[Customer],
    emit: Callable[[dict[str, Any] | EncodedDoc], None],
    progress: Callable[[float], None] | None = None,
) -> SegmentResult:
    """Run one segment; ``emit`` receives every document in a deterministic order.

    ``plan.engine`` picks the environment: ``fast`` (sim.engine) or ``simpy``; the model
    is the same code on both, and writes the same bytes."""
    env: Any = ENGINES[plan.engine]()
    streams = RandomStreams(scenario.seed, plan.index)
    origin = plan.window.start - dt.timedelta(seconds=plan.warmup_s)
    origin_ms = epoch_ms(origin)
    origin_s = origin_ms / 1000.0
    emit_from = plan.warmup_s
    emit_until = plan.warmup_s + plan.window.seconds
    faults = FaultSchedule(list(plan.faults), lambda: origin_s + env.now)
    id_seed = int(streams.generator("ids").integers(0, 2**63 - 1))
    docs = DocumentFactory(origin_ms, id_seed)
    counts: dict[str, int] = {}

    def counting_emit(doc: dict[str, Any] | EncodedDoc) -> None:
        kind = doc.event_type if type(doc) is EncodedDoc else doc["event_type"]
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

    shop = Storefront(env, scenario, streams, faults, docs, counting_emit, emit_from,
                      emit_until, day_label)
    sampler = MetricsSampler(shop, docs, scenario.output.metrics_interval_s, counting_emit,
                             emit_from, emit_until)
    env.process(sampler.run(env))
    env.process(shoppers_arrive(env, scenario, streams, shop, customers, origin_s, emit_until,
                                faults, progress))
    lb_timeout_s = scenario.storefront.lb_timeout_ms / 1000.0
    env.run(until=emit_until + 2 * lb_timeout_s + 60.0)
    for instance, request in shop.in_flight():
        shop.recorder.finish(request, instance.name, "lb_timeout")
    log = [
        (docs.timestamp(t), component, event, detail)
        for t, component, event, detail in shop.log.entries
        if emit_from <= t < emit_until
    ]
    return SegmentResult(plan.index, counts, log, shop.minutes.minutes)
