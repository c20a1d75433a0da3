"""DbConnectionPool (HikariCP, per app instance) and DbServer (the shared database).

A query needs a pooled connection first; if none frees up within ``connection_timeout``
the waiting process gets HikariCP's SQLTransientConnectionException thrown into it. The
connection is held while the query waits for and runs on the shared database server.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from sim.config import DB_POOL_EXHAUSTED_WAIT, DB_POOL_EXHAUSTED_WAITERS, DB_RECOVERED_ACTIVE
from sim.core.rng import RandomStream
from sim.model.failures import RequestFailure
from sim.model.resources import OnState, ignore_state
from sim.model.resources.cache import BufferCache
from sim.model.resources.service import ServiceCenter


class ConnectionPoolFigures(NamedTuple):
    """What a pool reports: its gauges now and its timeouts since the last take."""

    in_use: int
    pending: int
    max_size: int
    timeouts: int


class DbServerFigures(NamedTuple):
    """What the database reports: its gauges now and its queries since the last take."""

    active: int
    queued: int
    max_active: int
    queries: int
    query_s: float  # their total time
    cache_hit_ratio: float


class DbConnectionPool:
    """``request()`` is the event of a connection; ``release(req)`` gives it back or stops
    waiting. The pool times out its own waiters (one timer for the oldest), so a request
    costs one event whether it waits or not."""

    def __init__(self, env: Any, max_size: int, timeout_s: float,
                 on_state: OnState = ignore_state) -> None:
        self.env = env
        self.max_size = max_size
        self.timeout_s = timeout_s
        self.on_state = on_state
        self.users: set[Any] = set()
        self.queue: deque[tuple[Any, float]] = deque()  # (request event, since)
        self.timeouts = 0
        self.exhausted = False
        self._timer_armed = False

    @property
    def active(self) -> int:
        return len(self.users)

    @property
    def pending(self) -> int:
        return len(self.queue)

    def request(self) -> Any:
        req = self.env.event()
        if len(self.users) < self.max_size and not self.queue:
            self.users.add(req)
            req.succeed()
            return req
        now = self.env.now
        self.queue.append((req, now))
        if not self._timer_armed:
            self._arm(self.timeout_s)
        if not self.exhausted and len(self.queue) >= DB_POOL_EXHAUSTED_WAITERS * self.max_size and \
                now - self.queue[0][1] >= DB_POOL_EXHAUSTED_WAIT * self.timeout_s:
            self._announce_exhausted()
        return req

    def release(self, req: Any) -> None:
        """Give back a granted connection, or stop waiting for one (a request interrupted in
        the queue). Connections of a pool reset since (a restarted JVM) are simply gone."""
        if req in self.users:
            self.users.remove(req)
            if self.queue and len(self.users) < self.max_size:
                waiter, _ = self.queue.popleft()
                self.users.add(waiter)
                waiter.succeed()
            elif self.exhausted and len(self.users) < DB_RECOVERED_ACTIVE * self.max_size:
                self.exhausted = False
                self.on_state("db_pool_recovered", f"{len(self.users)}/{self.max_size} in use")
            return
        for i, (waiter, _) in enumerate(self.queue):
            if waiter is req:
                del self.queue[i]
                return

    def resize(self, max_size: int) -> None:
        """HikariConfigMXBean.setMaximumPoolSize, live: a bigger pool hands its new
        connections to waiters at once; a smaller one retires connections as their holders
        give them back (nobody holding one is interrupted)."""
        self.max_size = max_size
        while self.queue and len(self.users) < max_size:
            waiter, _ = self.queue.popleft()
            self.users.add(waiter)
            waiter.succeed()

    def reset(self) -> None:
        """The owning JVM died: a fresh, empty pool."""
        self.users.clear()
        self.queue.clear()
        self.exhausted = False

    def _arm(self, delay: float) -> None:
        self._timer_armed = True
        self.env.timeout(delay).callbacks.append(self._expire)

    def _expire(self, _event: Any) -> None:
        """Throw SQLTransientConnectionException into every waiter past the timeout."""
        self._timer_armed = False
        now = self.env.now
        queue = self.queue
        while queue and now - queue[0][1] >= self.timeout_s - 1e-9:
            waiter, _ = queue.popleft()
            self.timeouts += 1
            if not self.exhausted:
                self._announce_exhausted()
            waiter.fail(RequestFailure("db_pool_timeout"))
        if queue:
            self._arm(queue[0][1] + self.timeout_s - now)

    def _announce_exhausted(self) -> None:
        self.exhausted = True
        self.on_state("db_pool_exhausted", f"{len(self.users)}/{self.max_size} in use, "
                                           f"{len(self.queue)} waiting")

    def take_interval(self) -> ConnectionPoolFigures:
        """Its figures for the sampler; the timeout count starts again from zero."""
        figures = ConnectionPoolFigures(len(self.users), len(self.queue), self.max_size,
                                        self.timeouts)
        self.timeouts = 0
        return figures


class DbServer(ServiceCenter):
    """The shared database: at most ``max_active`` queries run at once, the rest queue FIFO.

    It draws each query's time from its own stream: lognormal around the median, times
    the fault's slowdown, times its buffer cache's cold-read factor."""

    def __init__(self, env: Any, max_active: int, rng: RandomStream, median_s: float,
                 sigma: float, slowdown: Callable[[], float], cache: BufferCache,
                 on_state: OnState = ignore_state) -> None:
        super().__init__(env, max_active)
        self.rng = rng
        self.median_s = median_s
        self.sigma = sigma
        self.slowdown = slowdown
        self.cache = cache
        self.on_state = on_state
        self.saturated = False
        self._last = (0, 0.0)

    @property
    def max_active(self) -> int:
        return self.servers

    def query(self) -> Any:
        """The event of one query, done when it has waited for a slot and run."""
        seconds = self.rng.lognormal(self.median_s * self.cache.query_factor(self.slowdown()),
                                     self.sigma)
        return self.serve(seconds)

    def queued(self) -> None:
        if not self.saturated:
            self.saturated = True
            self.on_state("db_server_saturated",
                          f"{self.busy}/{self.servers} active, {len(self.queue)} queued")

    def released(self) -> None:
        if self.saturated and not self.queue and self.busy < DB_RECOVERED_ACTIVE * self.servers:
            self.saturated = False
            self.on_state("db_server_recovered", f"{self.busy}/{self.servers} active")

    def take_interval(self) -> DbServerFigures:
        """Its figures for the sampler: queries started since the last call and their time."""
        jobs, service = self._last
        self._last = (self.jobs, self.service_s)
        return DbServerFigures(self.busy, len(self.queue), self.servers, self.jobs - jobs,
                               self.service_s - service, self.cache.hit_ratio)
