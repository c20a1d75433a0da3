"""EverydayFailures: the failures a healthy storefront has anyway (bad input, missing
products, deadlocks, bugs), drawn per request from their own stream."""

from __future__ import annotations

from sim.config import BackgroundErrorsConfig
from sim.core.rng import RandomStream
from sim.model.failures import BACKGROUND_KINDS
from sim.model.request import AFTER_READ, AFTER_WORK, AFTER_WRITE, Request

WHERE = {"validation": AFTER_WORK, "internal": AFTER_WORK, "not_found": AFTER_READ,
         "db_deadlock": AFTER_WRITE}


class EverydayFailures:
    """Draws, for each request, whether it meets an everyday failure and where.

    ``error_rate_normal`` (percent of all requests) is split across the kinds by weight,
    and each kind across the endpoints that can meet it, in proportion to their traffic."""

    def __init__(self, background: BackgroundErrorsConfig, mix: dict[str, float],
                 rng: RandomStream) -> None:
        self.rng = rng
        total_mix = sum(mix.values())
        weights = {"validation": background.validation_weight,
                   "not_found": background.not_found_weight,
                   "db_deadlock": background.deadlock_weight,
                   "internal": background.internal_weight}
        wsum = sum(weights.values()) or 1.0
        target = background.error_rate_normal / 100.0
        plan: dict[str, list[tuple[float, str]]] = {name: [] for name in mix}
        for kind, endpoints in BACKGROUND_KINDS.items():
            share = sum(mix[e] for e in endpoints) / total_mix
            if share <= 0:
                continue
            p = target * weights[kind] / wsum / share
            for e in endpoints:
                plan[e].append((p, kind))
        self.plan: dict[str, list[tuple[float, str]]] = {}
        for name, items in plan.items():
            acc = 0.0
            cumulative = []
            for p, kind in items:
                acc += p
                cumulative.append((acc, kind))
            self.plan[name] = cumulative

    def draw(self, request: Request) -> None:
        u = self.rng.random()
        for threshold, kind in self.plan[request.endpoint.name]:
            if u < threshold:
                request.everyday_failure = kind
                request.fails_at = WHERE[kind]
                return
