"""Overlapping incidents: two causes at once, one failed request counted once.

Each cause keeps its own record, symptom window and chain. Where symptom windows overlap,
a minute's failures are shared out by what each cause's incident breaks: a gateway timeout
belongs to a payment gateway incident, a request turned away at a full accept queue to a
surge, an OutOfMemoryError to a leak. A failure kind that is no active cause's own (or that
several share) is divided evenly among them; requests are divided evenly; failed orders and
lost revenue follow each cause's share of the minute's failures. Counts are rounded so the
records of a group add up exactly to what was observed in the union of their windows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sim.telemetry.minutes import Minute

# the failure kinds each incident type produces itself (sim.model.failures' kinds)
SIGNATURE: dict[str, frozenset[str]] = {
    "payment_gateway_timeout": frozenset({"gateway_timeout", "breaker_open", "db_pool_timeout"}),
    "circuit_breaker_activation": frozenset({"gateway_error", "breaker_open"}),
    "db_connection_pool_exhaustion": frozenset({"db_pool_timeout", "db_deadlock"}),
    "db_server_saturation": frozenset({"db_pool_timeout"}),
    "upstream_service_degradation": frozenset({"inventory_timeout", "recommendations_timeout"}),
    "memory_pressure": frozenset({"oom", "instance_crash", "upstream_refused"}),
    "traffic_surge": frozenset({"queue_rejected", "lb_timeout", "no_instance"}),
    "thread_pool_exhaustion": frozenset({"queue_rejected", "lb_timeout"}),
    "cpu_saturation": frozenset({"queue_rejected", "lb_timeout"}),
}
FIELDS = ("requests", "errors", "slow_errors", "failed_orders")  # every error has a kind


def _minute(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() // 60)


def _span(rec: dict[str, Any]) -> tuple[int, int]:
    return _minute(rec["symptom_start"]), _minute(rec["symptom_end"])


def overlap_groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Observed incident records (distractors aside) whose symptom windows overlap, chained."""
    observed = sorted((r for r in records if r.get("observed") and not r.get("distractor")),
                      key=_span)
    groups: list[list[dict[str, Any]]] = []
    end = -1
    for rec in observed:
        lo, hi = _span(rec)
        if groups and lo < end:
            groups[-1].append(rec)
            end = max(end, hi)
        else:
            groups.append([rec])
            end = hi
    return [g for g in groups if len(g) > 1]


def split_impact(records: list[dict[str, Any]], minutes: dict[int, Minute]) -> None:
    """Rewrite the impact of every record in an overlap group as its share (see module)."""
    for group in overlap_groups(records):
        shares = [_new_share() for _ in group]
        spans = [_span(r) for r in group]
        for key in range(min(lo for lo, _ in spans), max(hi for _, hi in spans)):
            m = minutes.get(key)
            active = [i for i, (lo, hi) in enumerate(spans) if lo <= key < hi]
            if m is None or not m.requests or not active:
                continue
            _share_minute(m, [group[i]["incident_type"] for i in active], [shares[i] for i in active])
        totals = _new_share()
        for s in shares:
            _add(totals, s)
        for rec, impact in zip(group, _rounded(shares, totals), strict=True):
            rec["impact"] = impact
            rec["overlaps_with"] = [r["incident_id"] for r in group if r is not rec]
            rec["impact_split"] = "by failure kind, per minute, with " + ", ".join(rec["overlaps_with"])


def _new_share() -> dict[str, Any]:
    return {"requests": 0.0, "errors": 0.0, "slow_errors": 0.0, "failed_orders": 0.0,
            "lost_revenue": 0.0, "kinds": {}}


def _add(into: dict[str, Any], s: dict[str, Any]) -> None:
    for f in (*FIELDS, "lost_revenue"):
        into[f] += s[f]
    for k, n in s["kinds"].items():
        into["kinds"][k] = into["kinds"].get(k, 0.0) + n


def _share_minute(m: Minute, types: list[str], shares: list[dict[str, Any]]) -> None:
    errors = [0.0] * len(types)
    for kind, n in m.kinds.items():
        owners = [i for i, t in enumerate(types) if kind in SIGNATURE.get(t, ())] or list(range(len(types)))
        for i in owners:
            part = n / len(owners)
            errors[i] += part
            shares[i]["kinds"][kind] = shares[i]["kinds"].get(kind, 0.0) + part
    for i, s in enumerate(shares):
        of_errors = errors[i] / m.errors if m.errors else 1.0 / len(shares)
        s["requests"] += m.requests / len(shares)
        s["errors"] += errors[i]
        s["slow_errors"] += m.slow_errors * of_errors
        s["failed_orders"] += m.failed_orders * of_errors
        s["lost_revenue"] += m.lost_revenue * of_errors


def _largest_remainder(values: list[float], total: int) -> list[int]:
    floors = [int(v) for v in values]
    order = sorted(range(len(values)), key=lambda i: values[i] - floors[i], reverse=True)
    for i in order[: max(0, total - sum(floors))]:
        floors[i] += 1
    return floors


def _rounded(shares: list[dict[str, Any]], totals: dict[str, Any]) -> list[dict[str, Any]]:
    """Integer impacts that add up to the group's totals (largest remainder, field by field)."""
    out: list[dict[str, Any]] = [{} for _ in shares]
    for f in FIELDS:
        for o, v in zip(out, _largest_remainder([s[f] for s in shares], round(totals[f])), strict=True):
            o[f] = v
    kinds = sorted(totals["kinds"])
    by_kind = {k: _largest_remainder([s["kinds"].get(k, 0.0) for s in shares], round(totals["kinds"][k]))
               for k in kinds}
    for i, o in enumerate(out):
        o["errors_by_kind"] = {k: by_kind[k][i] for k in kinds if by_kind[k][i]}
        o["errors"] = sum(o["errors_by_kind"].values())  # the kinds' shares add up to the group's
        o["lost_revenue"] = round(shares[i]["lost_revenue"], 2)
    return [{"requests": o["requests"], "errors": o["errors"], "slow_errors": o["slow_errors"],
             "errors_by_kind": o["errors_by_kind"], "failed_orders": o["failed_orders"],
             "lost_revenue": o["lost_revenue"]} for o in out]
