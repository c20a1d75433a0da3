"""SimPy's environment with a second, lighter queue for short-lived request steps.

Long-lived behaviour (traffic, the metrics sampler) runs as SimPy processes. A request's
steps are too many and too short for a generator each, or even for a SimPy event each
(an event object, a callbacks list, a four-field heap entry): they are plain
``(time, sequence, fn, arg)`` entries on a heap of their own, read by the same clock.
``step``/``run``/``peek`` take whichever queue is due first; at equal times SimPy's
events go first, so ``run(until=t)`` still stops before any step due at ``t``.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from itertools import count
from typing import Any

import simpy
from simpy.core import EmptySchedule, Infinity
from simpy.events import URGENT, Event


class Environment(simpy.Environment):
    """A SimPy ``Environment`` that also runs ``call_later(delay, fn, arg)`` steps."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self._calls: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._call_ids = count()

    def call_later(self, delay: float, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` at ``now + delay``; steps due at the same time run in call order."""
        heappush(self._calls, (self._now + delay, next(self._call_ids), fn, arg))

    def peek(self) -> float:
        calls_at = self._calls[0][0] if self._calls else Infinity
        return min(super().peek(), calls_at)

    def step(self) -> None:
        calls = self._calls
        if calls and (not self._queue or calls[0][0] < self._queue[0][0]):
            self._now, _, fn, arg = heappop(calls)
            fn(arg)
            return
        if not self._queue:
            raise EmptySchedule()
        super().step()


def run_until(env: Environment, until: float) -> None:
    """``env.run(until=until)`` with ``step`` inlined into the loop.

    The loop pays one Python call per event less, and several million events make up a
    day. The stop event is scheduled URGENT at ``until`` exactly as ``run`` schedules it;
    SimPy events run their callbacks in order, and an undefused failed event crashes the
    run the way ``step`` does."""
    at = float(until)
    if at <= env.now:
        raise ValueError(f"until ({at}) must be greater than the current simulation time")
    stop = Event(env)
    stop._ok = True
    stop._value = None
    env.schedule(stop, URGENT, at - env.now)
    queue = env._queue
    calls = env._calls
    while True:
        if calls and calls[0][0] < queue[0][0]:  # ``queue`` is never empty: ``stop`` is in it
            env._now, _, fn, arg = heappop(calls)
            fn(arg)
            continue
        now, _, _, event = heappop(queue)
        env._now = now
        if event is stop:
            return
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc
