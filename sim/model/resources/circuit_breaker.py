"""CircuitBreaker: Resilience4j's count-based breaker (closed / open / half-open).

Closed: outcomes of the last ``window_size`` calls are kept; once ``minimum_calls`` are
recorded and the failure rate or the slow-call rate reaches its threshold, it opens.
Open: calls are refused (CallNotPermittedException) for ``wait_open`` (multiplied by
``backoff_multiplier`` for every re-open in a row, up to ``max_wait_open``); then a timer
process moves it to half-open (Resilience4j's automaticTransitionFromOpenToHalfOpen).
Half-open: ``half_open_calls`` probes are let through and their
outcomes decide between closing and opening again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

CLOSED, OPEN, HALF_OPEN = "CLOSED", "OPEN", "HALF_OPEN"
STATE_CODES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class BreakerFigures(NamedTuple):
    """What the breaker reports: its state now and the calls it refused since the last take."""

    state: str
    not_permitted: int


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        window_size: int,
        minimum_calls: int,
        failure_rate_threshold: float,
        slow_call_rate_threshold: float,
        slow_call_duration_s: float,
        wait_open_s: float,
        half_open_calls: int,
        env: Any,
        enabled: bool = True,
        backoff_multiplier: float = 1.0,
        max_wait_open_s: float | None = None,
        on_transition: Callable[[str, str], None] | None = None,
    ):
        self.name = name
        self.window_size = window_size
        self.minimum_calls = minimum_calls
        self.failure_rate_threshold = failure_rate_threshold
        self.slow_call_rate_threshold = slow_call_rate_threshold
        self.slow_call_duration_s = slow_call_duration_s
        self.wait_open_s = wait_open_s
        self.half_open_calls = half_open_calls
        self.enabled = enabled
        self.backoff_multiplier = backoff_multiplier
        self.max_wait_open_s = max_wait_open_s if max_wait_open_s is not None else wait_open_s
        self.current_wait_s = wait_open_s
        self.consecutive_opens = 0
        self.env = env
        self.opens = 0  # times opened, ever: which open a timer belongs to
        self.on_transition = on_transition
        self.state = CLOSED
        self.opened_at = 0.0
        self.window: deque[tuple[bool, bool]] = deque()
        self.failures = 0
        self.slow = 0
        self.half_open_permits = 0
        self.not_permitted = 0

    def reset(self) -> None:
        """A fresh breaker, as after the owning JVM restarted (no transition is reported)."""
        self.state = CLOSED
        self.window.clear()
        self.failures = self.slow = 0
        self.half_open_permits = 0
        self.consecutive_opens = 0
        self.current_wait_s = self.wait_open_s
        self.opens += 1  # a pending open timer no longer applies

    def try_acquire(self) -> bool:
        """May a call go to the dependency now?"""
        if not self.enabled or self.state == CLOSED:
            return True
        if self.state == OPEN:
            self.not_permitted += 1
            return False
        if self.half_open_permits < self.half_open_calls:
            self.half_open_permits += 1
            return True
        self.not_permitted += 1
        return False

    def record(self, duration_s: float, failed: bool) -> None:
        """Outcome of a permitted call."""
        if not self.enabled:
            return
        if self.state == OPEN:
            return  # a late result of a call made before opening: Resilience4j ignores it too
        slow = duration_s >= self.slow_call_duration_s
        self.window.append((failed, slow))
        self.failures += failed
        self.slow += slow
        limit = self.half_open_calls if self.state == HALF_OPEN else self.window_size
        while len(self.window) > limit:
            old_failed, old_slow = self.window.popleft()
            self.failures -= old_failed
            self.slow -= old_slow
        needed = self.half_open_calls if self.state == HALF_OPEN else self.minimum_calls
        if len(self.window) < needed:
            return
        n = len(self.window)
        tripped = (
            100.0 * self.failures / n >= self.failure_rate_threshold
            or 100.0 * self.slow / n >= self.slow_call_rate_threshold
        )
        if tripped:
            self._transition(OPEN)
        elif self.state == HALF_OPEN:
            self._transition(CLOSED)

    def _transition(self, new_state: str) -> None:
        old = self.state
        self.state = new_state
        self.window.clear()
        self.failures = self.slow = 0
        self.half_open_permits = 0
        if new_state == OPEN:
            self.opened_at = self.env.now
            # Resilience4j's exponential backoff in the open state: every failed probe
            # round waits longer, up to a maximum; closing resets it
            self.current_wait_s = min(self.max_wait_open_s, self.wait_open_s *
                                      self.backoff_multiplier ** self.consecutive_opens)
            self.consecutive_opens += 1
            self.opens += 1
            self.env.process(self._wait_open(self.opens))
        elif new_state == CLOSED:
            self.consecutive_opens = 0
            self.current_wait_s = self.wait_open_s
        if self.on_transition is not None:
            self.on_transition(old, new_state)

    def _wait_open(self, opened: int) -> Generator[Any, Any, None]:
        """The open state's timer: after the wait, let probes through (half-open)."""
        yield self.env.timeout(self.current_wait_s)
        if self.opens == opened and self.state == OPEN:
            self._transition(HALF_OPEN)

    def take_interval(self) -> BreakerFigures:
        """Its figures for the sampler; the refusal count starts again from zero."""
        figures = BreakerFigures(self.state, self.not_permitted)
        self.not_permitted = 0
        return figures
