"""A thin layer over SimPy for short-lived steps.

Long-lived behaviour (traffic, the metrics sampler, fault schedules) runs as SimPy
processes. A request's steps are too many and too short for a generator each, so they are
chained as callbacks on plain SimPy timeouts: same event queue, same clock, less overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import Timeout


def call_later(env: simpy.Environment, delay: float, fn: Callable[[Any], None], arg: Any) -> None:
    """Run ``fn(arg)`` at ``env.now + delay``."""
    Timeout(env, delay, arg).callbacks.append(lambda ev: fn(ev._value))
