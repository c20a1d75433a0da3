"""WorkerPool: a Tomcat-style thread pool (maxThreads + acceptCount queue).

A request holds one worker thread for its whole life; when all threads are busy it waits in
the accept queue, and when that is full it is rejected at once (HTTP 503).
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any, NamedTuple

from sim.config import THREADS_RECOVERED_BUSY
from sim.model.failures import RequestFailure
from sim.model.resources import OnState, ignore_state


class ThreadPoolFigures(NamedTuple):
    """What the pool reports: gauges, as they are when asked."""

    active: int
    queued: int
    max_threads: int


class WorkerPool:
    def __init__(self, env: Any, max_threads: int, accept_queue: int,
                 on_state: OnState = ignore_state) -> None:
        self.env = env
        self.max_threads = max_threads
        self.accept_queue = accept_queue
        self.on_state = on_state
        self.users: set[Any] = set()
        self.queue: deque[Any] = deque()
        self.rejected = 0
        self.saturated = False

    @property
    def active(self) -> int:
        return len(self.users)

    def request(self) -> Any:
        """The event of a thread; raises RequestFailure("queue_rejected") when the accept
        queue is full."""
        req = self.env.event()
        if len(self.users) < self.max_threads:
            self.users.add(req)
            req.succeed()
            return req
        if len(self.queue) >= self.accept_queue:
            self.rejected += 1
            raise RequestFailure("queue_rejected")
        self.queue.append(req)
        if not self.saturated:
            self.saturated = True
            self.on_state("thread_pool_saturated", f"{len(self.users)}/{self.max_threads} busy")
        return req

    def release(self, req: Any) -> None:
        """The thread is free: it goes to the oldest queued request. A request still queued
        stops waiting; threads of a pool reset since (a dead JVM) are simply gone."""
        if req in self.users:
            self.users.remove(req)
            if self.queue and len(self.users) < self.max_threads:
                waiter = self.queue.popleft()
                self.users.add(waiter)
                waiter.succeed()
            elif self.saturated and len(self.users) < THREADS_RECOVERED_BUSY * self.max_threads:
                self.saturated = False
                self.on_state("thread_pool_recovered",
                              f"{len(self.users)}/{self.max_threads} busy")
            return
        with contextlib.suppress(ValueError):
            self.queue.remove(req)

    def resize(self, max_threads: int, accept_queue: int) -> None:
        """Tomcat's maxThreads and acceptCount set live: more threads take queued requests
        at once; with fewer, busy threads end as their requests finish. Queued requests stay
        queued even past a smaller acceptCount (it only refuses new ones)."""
        self.max_threads = max_threads
        self.accept_queue = accept_queue
        while self.queue and len(self.users) < max_threads:
            waiter = self.queue.popleft()
            self.users.add(waiter)
            waiter.succeed()

    def reset(self) -> None:
        """The process died: every thread and queued request is gone."""
        self.users.clear()
        self.queue.clear()
        self.saturated = False

    def take_interval(self) -> ThreadPoolFigures:
        """Its figures for the sampler (it keeps no per-interval counters)."""
        return ThreadPoolFigures(len(self.users), len(self.queue), self.max_threads)
