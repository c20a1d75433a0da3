"""The naive solver: the pager is the investigation.

The first alert that fired in the window starts the incident, the last alert's resolution
ends it (the window's end if one never resolved); the first alert's rule names the kind and
its host the place. No alert: no incident. It never names a change.
"""

from __future__ import annotations

from typing import Any

from sim.benchmark.evidence import Evidence, iso_minute

# what a rule's name suggests, first match wins
RULE_KINDS = (("gateway", "payment_gateway_slowdown"), ("payment", "payment_gateway_slowdown"),
              ("db-pool", "db_slow_queries"), ("heap", "memory_leak"),
              ("breaker", "dependency_error_burst"))
# an app service as the kind and the place its failures usually come from
SERVICE_GUESS = {
    "checkout-service": ("payment_gateway_slowdown", "payment-gateway"),
    "catalog-service": ("upstream_slowdown", "inventory-service"),
    "cart-service": ("db_slow_queries", "postgresql"),
    "storefront-web": ("traffic_surge", None),
}


def solve(ev: Evidence) -> list[dict[str, Any]]:
    alerts = [a for a in ev.alerts if ev.start <= a.fired <= ev.end]
    if not alerts:
        return []
    first = alerts[0]
    resolved = [a.resolved for a in alerts]
    end = ev.end if None in resolved else max(r for r in resolved if r is not None)
    kind = next((k for word, k in RULE_KINDS if word in first.rule), None)
    service = _worst_service(ev, int(first.fired // 60), int(end // 60))
    guess_kind, guess_place = SERVICE_GUESS.get(service or "", ("traffic_surge", None))
    place = first.host or guess_place
    return [{"start": iso_minute(int(first.fired // 60)), "end": iso_minute(int(-(-end // 60))),
             "root_cause_kind": kind or guess_kind,
             "locations": [place] if place else [],
             "change": None}]


def _worst_service(ev: Evidence, lo: int, hi: int) -> str | None:
    """The app service with the highest 5xx share from minute ``lo`` to ``hi``."""
    best, best_rate = None, -1.0
    for name in ev.names("service"):
        cells = [c for m, c in ev.series("service", name).items() if lo <= m <= hi]
        requests = sum(c.requests for c in cells)
        rate = sum(c.errors for c in cells) / requests if requests else 0.0
        if rate > best_rate:
            best, best_rate = name, rate
    return best
