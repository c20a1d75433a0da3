"""A shopper's visit: one process from the first request to the last retry.

Shoppers who get a 5xx (or give up waiting) often try again: that is the retry storm that
amplifies every incident, and the backlog that makes recovery take minutes. The visit reads
top to bottom: send the request (the load balancer may refuse it, raised right here), get
the answer, and maybe wait a little and send the same request again.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

from sim.config import ShopperConfig, StorefrontConfig
from sim.core.rng import RandomStream
from sim.model.failures import RequestFailure, build_catalog
from sim.model.load_balancer import LB_HOST, LoadBalancer
from sim.model.request import Request

RETRIED_STATUS = frozenset({500, 502, 503, 504})
Process = Generator[Any, Any, None]


class Outcomes(Protocol):
    """Where every answered request goes (``sim.telemetry.recorder.Recorder``): the model
    says what the client saw; what that becomes (documents, ground truth) is not its business."""

    def finish(self, req: Request, retried: bool) -> None: ...


class Shoppers:
    """The shoppers' side of every request: what they saw, and whether they come back."""

    def __init__(self, env: Any, storefront: StorefrontConfig, rng: RandomStream,
                 lb: LoadBalancer, outcomes: Outcomes) -> None:
        self.env = env
        self.cfg: ShopperConfig = storefront.shoppers
        self.rng = rng
        self.lb = lb
        self.outcomes = outcomes
        self.lb_timeout_s = storefront.lb_timeout_ms / 1000.0
        self.status_of = {kind: f.status_code for kind, f in build_catalog(storefront).items()}

    def visit(self, req: Request) -> Process:
        """The process of one shopper's request and its retries."""
        while True:
            try:
                instance = self.lb.route(req)
            except RequestFailure as refused:  # the load balancer answered itself
                self.answer(req, LB_HOST, refused.kind)
            else:
                self.answer(req, instance.name, (yield from instance.handle(req)))
            again = self.comes_back(req)
            self.outcomes.finish(req, again is not None)
            if again is None:
                return
            req, delay = again
            yield self.env.timeout(delay)

    def give_up(self, req: Request, host: str) -> None:
        """The segment ends with ``req`` still inside ``host``: the load balancer times it out."""
        self.answer(req, host, "lb_timeout")
        self.outcomes.finish(req, self.comes_back(req) is not None)

    def answer(self, req: Request, host: str, failure_kind: str | None) -> None:
        """What the client saw, now: the load balancer's timeout caps the wait."""
        req.host = host
        req.end = end = self.env.now
        req.response_s = response_s = end - req.arrival
        if response_s > self.lb_timeout_s:
            failure_kind = "lb_timeout"
            req.response_s = self.lb_timeout_s
            req.end = req.arrival + self.lb_timeout_s
        req.failure_kind = failure_kind
        if failure_kind is not None:
            req.status_code = self.status_of[failure_kind]
        elif req.endpoint.method == "POST" and req.endpoint.name == "checkout":
            req.status_code = 201
        else:
            req.status_code = 200

    def comes_back(self, req: Request) -> tuple[Request, float] | None:
        """Will the shopper send this failed request again, and after how long?"""
        cfg = self.cfg
        if req.status_code not in RETRIED_STATUS or req.attempt >= cfg.max_retries:
            return None
        if self.rng.random() >= cfg.retry_probability:
            return None
        lo, hi = cfg.retry_delay_min_s, cfg.retry_delay_max_s
        delay = lo + (hi - lo) * self.rng.random()
        return Request(req.endpoint, 0.0, req.customer, req.session_id, req.attempt + 1), delay
