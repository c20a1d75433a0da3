"""WorkerPool: a Tomcat-style thread pool (maxThreads + acceptCount queue).

A request holds one worker thread for its whole life; when all threads are busy it waits in
the accept queue, and when that is full it is rejected at once (HTTP 503).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any


class WorkerPool:
    def __init__(self, max_threads: int, accept_queue: int, on_start: Callable[[Any], None]):
        self.max_threads = max_threads
        self.accept_queue = accept_queue
        self.on_start = on_start
        self.active = 0
        self.queue: deque[Any] = deque()
        self.rejected = 0

    def submit(self, request: Any) -> bool:
        """Start the request now or queue it; False means rejected (queue full)."""
        if self.active < self.max_threads:
            self.active += 1
            self.on_start(request)
            return True
        if len(self.queue) >= self.accept_queue:
            self.rejected += 1
            return False
        self.queue.append(request)
        return True

    def release(self) -> None:
        """A thread is free: hand it to the oldest queued request, if any."""
        if self.queue:
            self.on_start(self.queue.popleft())
        else:
            self.active -= 1

    def reset(self) -> list[Any]:
        """The process died: forget every thread; return the queued requests (they are lost)."""
        lost = list(self.queue)
        self.queue.clear()
        self.active = 0
        return lost
