"""Request: one HTTP request as its transaction document will describe it."""

from __future__ import annotations

from typing import Final

from sim.model.customers import Customer
from sim.model.endpoints import Endpoint

# where an everyday failure strikes: after the first CPU step, the first read or a write
NOWHERE, AFTER_WORK, AFTER_READ, AFTER_WRITE = 0, 1, 2, 3

# the steps a traced request records, (step, start, end, outcome) in ``Request.spans``
# (sim.telemetry.spans turns the kept ones into spans); outcome: a dependency's answer
# (OK, DECLINED, FAILED, TIMED_OUT of sim.model.resources.dependencies) or STEP_FAILED
# (Final: compiled code inlines them)
STEP_POOL_WAIT: Final = 1
STEP_READ: Final = 2
STEP_WRITE: Final = 3
STEP_INVENTORY: Final = 4
STEP_RECOMMENDATIONS: Final = 5
STEP_CHARGE: Final = 6
STEP_BREAKER: Final = 7
STEP_GC: Final = 8
STEP_TRANSACTION: Final = 9
STEP_OK: Final = 0
STEP_FAILED: Final = 9


class Request:
    """Who asked for what, when, and where its time went (the APM timing breakdown)."""

    __slots__ = ("endpoint", "arrival", "customer", "session_id", "attempt", "queue_wait",
                 "pool_wait", "db_time", "gateway_time", "upstream_time", "gc_wait",
                 "fails_at", "everyday_failure", "extra_cpu_s", "host", "end", "response_s",
                 "failure_kind", "status_code", "spans")

    def __init__(self, endpoint: Endpoint, arrival: float, customer: Customer, session_id: str,
                 attempt: int = 0):
        self.endpoint = endpoint
        self.arrival = arrival
        self.customer = customer
        self.session_id = session_id
        self.attempt = attempt  # 0, or how many times the shopper already tried
        self.queue_wait = 0.0
        self.pool_wait = 0.0
        self.db_time = 0.0
        self.gateway_time = 0.0
        self.upstream_time = 0.0
        self.gc_wait = 0.0
        # the everyday failure this request will meet, and where (drawn when it starts)
        self.fails_at = NOWHERE
        self.everyday_failure = ""
        self.extra_cpu_s = 0.0  # work on top of its endpoint's (a leak's data walked)
        # the answer, as the client saw it (``Shoppers.answer``)
        self.host = ""
        self.end = 0.0
        self.response_s = 0.0
        self.failure_kind: str | None = None
        self.status_code = 0
        # the steps' times when its instance traces requests (``AppInstance.tracing``)
        self.spans: list[tuple[int, float, float, int]] | None = None
