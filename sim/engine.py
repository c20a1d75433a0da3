"""SimPy's environment with a second, lighter queue for short-lived request steps.

Long-lived behaviour (traffic, the metrics sampler) runs as SimPy processes. A request's
steps go on ``env.steps`` (``sim.steps.StepQueue``), read by the same clock.
``step``/``run``/``peek`` take whichever queue is due first; at equal times SimPy's
events go first, so ``run(until=t)`` still stops before any step due at ``t``.
"""

from __future__ import annotations

from heapq import heappop

import simpy
from simpy.core import EmptySchedule, Infinity
from simpy.events import URGENT, Event

from sim.steps import StepQueue


class Environment(simpy.Environment):
    """A SimPy ``Environment`` that also runs the steps of ``env.steps``."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self.steps = StepQueue(float(initial_time))

    def peek(self) -> float:
        heap = self.steps.heap
        return min(super().peek(), heap[0][0] if heap else Infinity)

    def step(self) -> None:
        steps = self.steps
        heap = steps.heap
        if heap and (not self._queue or heap[0][0] < self._queue[0][0]):
            t, _, fn, arg = heappop(heap)
            self._now = steps.now = t
            fn(arg)
            return
        if not self._queue:
            raise EmptySchedule()
        steps.now = self._queue[0][0]  # callbacks may schedule steps
        super().step()


def run_until(env: Environment, until: float) -> None:
    """``env.run(until=until)`` in one loop (``StepQueue.run_with``, compiled).

    The stop event is scheduled URGENT at ``until`` exactly as ``run`` schedules it."""
    at = float(until)
    if at <= env.now:
        raise ValueError(f"until ({at}) must be greater than the current simulation time")
    stop = Event(env)
    stop._ok = True
    stop._value = None
    env.schedule(stop, URGENT, at - env.now)
    env.steps.run_with(env, stop)
