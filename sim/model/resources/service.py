"""ServiceCenter: ``servers`` identical servers in front of a FIFO queue.

A job holds one server for its whole service time: the database's query slots, a JVM's
CPU cores. ``serve`` returns the event a process yields; it fires when the job is done.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class _Queued:
    """A job that had to wait: its server's timeout wakes it, then the caller's event."""

    __slots__ = ("center", "done")

    def __init__(self, center: ServiceCenter, done: Any) -> None:
        self.center = center
        self.done = done

    def finished(self, _event: Any) -> None:
        self.center.finish_service(_event)
        self.done.succeed()


class ServiceCenter:
    def __init__(self, env: Any, servers: int) -> None:
        self.env = env
        self.servers = servers
        self.busy = 0
        self.queue: deque[tuple[float, Any]] = deque()  # (seconds, event)
        self.jobs = 0  # jobs started, ever
        self.service_s = 0.0  # service time of the jobs started, ever
        self._busy_area = 0.0  # server-seconds spent busy, ever
        self._since = env.now

    def can_start(self) -> bool:
        """May a free server take the next job now? (The CPU says no during a GC pause.)"""
        return True

    def serve(self, seconds: float) -> Any:
        """The event of a job of ``seconds``, started now if a server is free, else queued."""
        if self.busy < self.servers and not self.queue and self.can_start():
            self._start(seconds)
            timeout = self.env.timeout(seconds)
            timeout.callbacks.append(self.finish_service)
            return timeout
        done = self.env.event()
        self.queue.append((seconds, done))
        self.queued()
        return done

    def queued(self) -> None:
        """A job joined the queue (subclasses announce saturation here)."""

    def released(self) -> None:
        """A server became free (subclasses announce recovery here)."""

    def _start(self, seconds: float) -> None:
        now = self.env.now
        self._busy_area += self.busy * (now - self._since)
        self._since = now
        self.busy += 1
        self.jobs += 1
        self.service_s += seconds

    def finish_service(self, _event: Any) -> None:
        now = self.env.now
        self._busy_area += self.busy * (now - self._since)
        self._since = now
        self.busy -= 1
        self.dispatch()
        self.released()

    def dispatch(self) -> None:
        """Start queued jobs while servers are free."""
        queue = self.queue
        while queue and self.busy < self.servers and self.can_start():
            seconds, done = queue.popleft()
            self._start(seconds)
            self.env.timeout(seconds).callbacks.append(_Queued(self, done).finished)

    def busy_server_seconds(self) -> float:
        """Server-seconds spent busy since the start, up to now."""
        return self._busy_area + self.busy * (self.env.now - self._since)
