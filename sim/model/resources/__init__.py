"""The storefront's contended resources. Each keeps its own users, queue and counters, draws
its own service times from its own random stream, and announces its own saturation and
recovery through an ``on_state(event, detail)`` callback; each runs on any environment with
SimPy's API (``simpy.Environment`` or ``sim.core.engine.Environment``)."""

from collections.abc import Callable

OnState = Callable[[str, str], None]


def ignore_state(event: str, detail: str) -> None:
    """The ``on_state`` of a resource nobody watches."""
