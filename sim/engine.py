"""A thin layer over SimPy for short-lived steps.

Long-lived behaviour (traffic, the metrics sampler, fault schedules) runs as SimPy
processes. A request's steps are too many and too short for a generator each, so they are
chained as callbacks on plain SimPy timeouts: same event queue, same clock, less overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop
from typing import Any

import simpy
from simpy.events import URGENT, Event, Timeout


def call_later(env: simpy.Environment, delay: float, fn: Callable[[Any], None], arg: Any) -> None:
    """Run ``fn(arg)`` at ``env.now + delay``."""
    Timeout(env, delay, arg).callbacks.append(lambda ev: fn(ev._value))


def run_until(env: simpy.Environment, until: float) -> None:
    """``env.run(until=until)`` with ``Environment.step`` inlined into the loop.

    The loop pays one Python call per event less, and several million events make up a
    day. Everything else is SimPy's: the same queue, the stop event scheduled URGENT at
    ``until`` exactly as ``run`` schedules it, callbacks run in order, an undefused failed
    event crashes the run the way ``step`` does."""
    at = float(until)
    if at <= env.now:
        raise ValueError(f"until ({at}) must be greater than the current simulation time")
    stop = Event(env)
    stop._ok = True
    stop._value = None
    env.schedule(stop, URGENT, at - env.now)
    queue = env._queue
    while True:
        now, _, _, event = heappop(queue)  # never empty: ``stop`` is in it
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
