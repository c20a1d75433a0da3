"""ShopperRetries: shoppers who get a 5xx (or give up waiting) often try again.

That is the retry storm that amplifies every incident, and the backlog that makes recovery
take minutes. A retry is a process: the shopper waits a little, then sends the same request
to the load balancer again.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from sim.config import ShopperConfig
from sim.core.rng import RandomStream
from sim.model.request import Request

RETRIED_STATUS = frozenset({500, 502, 503, 504})


class ShopperRetries:
    def __init__(self, env: Any, cfg: ShopperConfig, rng: RandomStream,
                 forward: Callable[[Request], Generator[Any, Any, None] | None]) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = rng
        self.forward = forward

    def maybe_retry(self, req: Request, status_code: int) -> bool:
        """Will the shopper send this failed request again? (Starts the retry if so.)"""
        cfg = self.cfg
        if status_code not in RETRIED_STATUS or req.attempt >= cfg.max_retries:
            return False
        if self.rng.random() >= cfg.retry_probability:
            return False
        lo, hi = cfg.retry_delay_min_s, cfg.retry_delay_max_s
        delay = lo + (hi - lo) * self.rng.random()
        again = Request(req.endpoint, 0.0, req.customer, req.session_id, req.attempt + 1)
        self.env.process(self.come_back(again, delay))
        return True

    def come_back(self, req: Request, delay: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(delay)
        life = self.forward(req)
        if life is not None:
            yield from life
