"""Short-lived request steps as plain ``(time, sequence, fn, arg)`` entries on a heap.

A request's steps are too many and too short for a SimPy process or even a SimPy event
each (an event object, a callbacks list, a four-field queue entry). This queue is
compiled with the model that fills it (setup.py); ``sim.engine.Environment`` runs it
beside SimPy's queue on one clock.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any


class StepQueue:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now  # the simulated time, equal to the environment's ``now``
        self.heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self.seq = 0

    def call_later(self, delay: float, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` at ``now + delay``; steps due at the same time run in call order."""
        self.seq += 1
        heappush(self.heap, (self.now + delay, self.seq, fn, arg))

    def run_with(self, env: Any, stop: Any) -> None:
        """Run these steps and the SimPy events of ``env`` in time order until ``stop`` is
        processed. At equal times SimPy's events go first (``stop`` is URGENT at its time).

        SimPy events are processed as ``Environment.step`` does: callbacks in order, and an
        undefused failed event crashes the run."""
        heap = self.heap
        queue: list[Any] = env._queue  # never empty: ``stop`` is in it
        while True:
            if heap and heap[0][0] < queue[0][0]:
                t, _, fn, arg = heappop(heap)
                self.now = t
                env._now = t
                fn(arg)
                continue
            t, _, _, event = heappop(queue)
            self.now = t
            env._now = t
            if event is stop:
                return
            callbacks = event.callbacks
            event.callbacks = None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
