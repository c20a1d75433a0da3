"""DbConnectionPool (HikariCP-style, per app instance) and DbServer (shared, finite concurrency).

A query needs a pooled connection first; if none frees up within ``connection_timeout``
the caller gets HikariCP's SQLTransientConnectionException. The connection is then held
while the query waits for and runs on the shared database server.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sim.steps import StepQueue


class _Waiter:
    __slots__ = ("request", "on_acquire", "on_timeout", "since", "done")

    def __init__(self, request: Any, on_acquire: Callable, on_timeout: Callable, since: float):
        self.request = request
        self.on_acquire = on_acquire
        self.on_timeout = on_timeout
        self.since = since
        self.done = False


class DbConnectionPool:
    def __init__(self, steps: StepQueue, name: str, max_size: int, timeout_s: float):
        self.steps = steps
        self.name = name
        self.max_size = max_size
        self.timeout_s = timeout_s
        self.active = 0
        self.waiters: deque[_Waiter] = deque()
        self.pending = 0
        self.timeouts = 0
        self.generation = 0

    def acquire(
        self,
        request: Any,
        on_acquire: Callable[[Any, float], None],
        on_timeout: Callable[[Any, float], None],
    ) -> None:
        """Calls ``on_acquire(request, waited_s)`` or ``on_timeout(request, waited_s)``."""
        if self.active < self.max_size and not self.pending:
            self.active += 1
            on_acquire(request, 0.0)
            return
        waiter = _Waiter(request, on_acquire, on_timeout, self.steps.now)
        self.waiters.append(waiter)
        self.pending += 1
        self.steps.call_later(self.timeout_s, self._expire, waiter)

    def _expire(self, waiter: _Waiter) -> None:
        if waiter.done:
            return
        waiter.done = True
        self.pending -= 1
        self.timeouts += 1
        waiter.on_timeout(waiter.request, self.steps.now - waiter.since)

    def release(self, generation: int) -> None:
        """Return a connection taken in ``generation`` (stale ones, from before a reset, vanish)."""
        if generation != self.generation:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if waiter.done:
                continue
            waiter.done = True
            self.pending -= 1
            waiter.on_acquire(waiter.request, self.steps.now - waiter.since)
            return
        self.active -= 1

    def reset(self) -> None:
        """The owning JVM restarted: a fresh, empty pool."""
        for waiter in self.waiters:
            waiter.done = True
        self.waiters.clear()
        self.pending = 0
        self.active = 0
        self.generation += 1


class DbServer:
    """The shared database: at most ``max_active`` queries run at once, the rest queue FIFO."""

    def __init__(self, steps: StepQueue, max_active: int):
        self.steps = steps
        self.max_active = max_active
        self.active = 0
        self.queue: deque[tuple[float, Any, Callable]] = deque()
        self.queries = 0
        self.busy_time = 0.0

    def execute(self, duration_s: float, request: Any, on_done: Callable[[Any], None]) -> None:
        if self.active < self.max_active:
            self._run(duration_s, request, on_done)
        else:
            self.queue.append((duration_s, request, on_done))

    def _run(self, duration_s: float, request: Any, on_done: Callable[[Any], None]) -> None:
        self.active += 1
        self.queries += 1
        self.busy_time += duration_s
        self.steps.call_later(duration_s, self._finish, (request, on_done))

    def _finish(self, done: tuple[Any, Callable[[Any], None]]) -> None:
        request, on_done = done
        self.active -= 1
        if self.queue:
            self._run(*self.queue.popleft())
        on_done(request)
