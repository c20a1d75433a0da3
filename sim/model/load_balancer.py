"""LoadBalancer: round robin over the app instances it believes healthy.

It learns that an instance died only from its health checks (a process per instance, on a
fixed grid): until the ``fails_to_remove``-th failed probe it keeps sending requests there
(connection refused, 502), and a restarted JVM gets traffic again after ``passes_to_add``
passing probes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from sim.config import HEALTH_CHECK_PHASE_STEP, HealthCheckConfig
from sim.model.app_instance import AppInstance
from sim.model.failures import RequestFailure
from sim.model.request import Request

Process = Generator[Any, Any, None]
LB_HOST = "lb-01"  # the host of answers the load balancer gives itself


class LoadBalancer:
    def __init__(self, env: Any, instances: list[AppInstance], checks: HealthCheckConfig) -> None:
        self.env = env
        self.instances = instances
        self.checks = checks
        self.in_rotation = [True] * len(instances)
        self._next = 0
        # told when a health check takes an instance out of rotation or back (its logs)
        self.on_health: Callable[[str, bool, int], None] | None = None
        for i, instance in enumerate(instances):
            env.process(self.health_checks(i, instance))

    def route(self, req: Request) -> AppInstance:
        """A request reached the load balancer now: the instance it goes to. Raises
        ``RequestFailure`` when the load balancer answers it itself (502/503)."""
        req.arrival = self.env.now
        n = len(self.instances)
        for _ in range(n):
            i = self._next
            self._next = (i + 1) % n
            if self.in_rotation[i]:
                instance = self.instances[i]
                if not instance.up:
                    raise RequestFailure("upstream_refused")  # dead, but still in rotation
                return instance
        raise RequestFailure("no_instance")

    def health_changed(self, instance: AppInstance) -> None:
        if self.on_health is not None:
            self.on_health(instance.name, self.in_rotation[self.instances.index(instance)],
                           sum(self.in_rotation))

    def health_checks(self, i: int, instance: AppInstance) -> Process:
        """GET /actuator/health every ``interval_s``; probes of instances not in lockstep."""
        checks = self.checks
        yield self.env.timeout(checks.interval_s * (i * HEALTH_CHECK_PHASE_STEP % 1.0))
        passes = fails = 0
        while True:
            if instance.up and instance.ready:
                passes, fails = passes + 1, 0
                if not self.in_rotation[i] and passes >= checks.passes_to_add:
                    self.in_rotation[i] = True
                    self.health_changed(instance)
            else:
                passes, fails = 0, fails + 1
                if self.in_rotation[i] and fails >= checks.fails_to_remove:
                    self.in_rotation[i] = False
                    self.health_changed(instance)
            yield self.env.timeout(checks.interval_s)
