"""Request: one HTTP request as its transaction document will describe it."""

from __future__ import annotations

from sim.model.customers import Customer
from sim.model.endpoints import Endpoint

# where an everyday failure strikes: after the first CPU step, the first read or a write
NOWHERE, AFTER_WORK, AFTER_READ, AFTER_WRITE = 0, 1, 2, 3

# the steps a traced request records, (step, start, end, outcome) in ``Request.spans``
# (sim.telemetry.spans turns the kept ones into spans); outcome: a dependency's answer
# (OK, DECLINED, FAILED, TIMED_OUT of sim.model.resources.dependencies) or STEP_FAILED
STEP_POOL_WAIT, STEP_READ, STEP_WRITE, STEP_INVENTORY, STEP_RECOMMENDATIONS, STEP_CHARGE, \
    STEP_BREAKER, STEP_GC, STEP_TRANSACTION = 1, 2, 3, 4, 5, 6, 7, 8, 9
STEP_OK, STEP_FAILED = 0, 9


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
