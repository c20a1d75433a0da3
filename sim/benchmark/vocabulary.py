"""What a submission may name, shared by the questions, the answers and the scorer.

Root-cause kinds are the fault catalogue's types plus the three kinds of change; locations
are the names an investigator sees in the telemetry (``host.name`` of the app instances,
``service.name`` of the dependencies). Where a cause has no single place (a traffic surge,
a fleet-wide flag) its incident is not scored for localization (RCAEval scores services
that were faulted; a surge faults none).
"""

from __future__ import annotations

from typing import Any, Final

from sim.config import FaultType, instance_name
from sim.model.faults import DEFAULT_TARGET

FAULT_KINDS: Final = FaultType.__args__  # type: ignore[attr-defined]
CHANGE_KINDS: Final = ("deploy", "config_push", "feature_flag")
ROOT_CAUSE_KINDS: Final = (*FAULT_KINDS, *CHANGE_KINDS)

DEPENDENCIES: Final = {  # what a fault type or an upstream target is called in the telemetry
    "db": "postgresql",
    "gateway": "payment-gateway",
    "inventory": "inventory-service",
    "recommendations": "recommendation-service",
}


def locations(instances: int = 4) -> tuple[str, ...]:
    """Every name a submission's ranked list may hold."""
    return (*(instance_name(i) for i in range(instances)), *DEPENDENCIES.values())


def fault_locations(fault_type: str, target: str | None, instances: int = 4) -> list[str]:
    """Where a fault was injected, as the telemetry names it ([] if nowhere in particular)."""
    if fault_type in ("payment_gateway_slowdown", "dependency_error_burst"):
        return [DEPENDENCIES["gateway"]]
    if fault_type == "db_slow_queries":
        return [DEPENDENCIES["db"]]
    if fault_type == "upstream_slowdown":
        return [DEPENDENCIES[target or DEFAULT_TARGET["upstream_slowdown"] or "inventory"]]
    if fault_type == "memory_leak":
        if target:
            return [t.strip() for t in target.split(",")]
        return [instance_name(i) for i in range(instances)]
    return []  # traffic_surge: the load came from outside


def record_locations(cause: dict[str, Any], instances: int = 4) -> list[str]:
    """The root cause's place for a ground-truth record's ``cause``: a fault's target, a
    deploy's or config push's hosts; a flag acts fleet-wide ([])."""
    if cause.get("kind") == "change":
        return [] if cause.get("change_kind") == "feature_flag" else list(cause.get("hosts") or [])
    return fault_locations(cause["fault_type"], cause.get("target"), instances)


def record_kind(cause: dict[str, Any]) -> str:
    """The root-cause kind a record's ``cause`` is scored as."""
    if cause.get("kind") == "change":
        return str(cause["change_kind"])
    return str(cause["fault_type"])
