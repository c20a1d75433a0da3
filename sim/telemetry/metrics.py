"""The infrastructure sampler: every ``interval`` it asks each component for its figures.

Each app instance and the shared backends hand over a record of their figures
(``take_interval``: their gauges now, and their per-interval counters, which they reset
themselves); ``DocumentFactory`` shapes them into one document per app instance, plus
one for the shared database and one for the payment gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.model.storefront import Storefront
from sim.telemetry.documents import DocumentFactory


class MetricsSampler:
    def __init__(self, shop: Storefront, docs: DocumentFactory, interval_s: float,
                 emit: Callable[[dict[str, Any]], None], emit_from: float, emit_until: float):
        self.shop = shop
        self.docs = docs
        self.interval_s = interval_s
        self.emit = emit
        self.emit_from = emit_from
        self.emit_until = emit_until

    def run(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        # align samples to the interval grid of the emitted window
        first = self.emit_from
        while first - self.interval_s >= 0:
            first -= self.interval_s
        yield env.timeout(first)
        while env.now < self.emit_until:
            yield env.timeout(self.interval_s)
            self.sample(env.now)

    def sample(self, now: float) -> None:
        """Every interval, in the warm-up too (taking the figures starts their counters
        again); inside the emitted window the figures become documents."""
        iv = self.interval_s
        instances = [inst.take_interval() for inst in self.shop.instances]
        backends = self.shop.backends.take_interval()
        if not (now - iv >= self.emit_from - 1e-9 and now <= self.emit_until + 1e-9):
            return
        docs = self.docs
        ts = docs.timestamp(now)
        for figures in instances:
            self.emit(docs.instance_metrics(ts, iv, figures))
        for doc in docs.backend_metrics(ts, iv, backends):
            self.emit(doc)
