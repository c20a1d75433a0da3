"""Cpu: a JVM's cores. App work runs as bursts that hold a core; a GC pause takes them all.

Bursts queue FIFO for a free core, so a surge beyond the cores inflates every request's
time, which holds worker threads longer, which fills the thread pool. The CPU calls itself
saturated when app work kept ``CPU_SATURATED_BUSY`` of its cores busy for a few seconds (GC
pauses aside: a pause is its own symptom). A stop-the-world
collection holds every core for its pause: no burst starts until it ends (a burst already
running finishes; that thread reached its safepoint late).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sim.config import CPU_HOT_WINDOWS, CPU_RECOVERED_BUSY, CPU_SATURATED_BUSY, CPU_WINDOW_S
from sim.model.resources import OnState, ignore_state
from sim.model.resources.service import ServiceCenter


class CpuFigures(NamedTuple):
    """What the CPU reports: its busy share since the last take."""

    busy_share: float  # 0..1 of all cores, bursts and GC pauses


class Cpu(ServiceCenter):
    def __init__(self, env: Any, cores: int, on_state: OnState = ignore_state) -> None:
        super().__init__(env, cores)
        self.on_state = on_state
        self.paused = False
        self.paused_until = 0.0
        self._pauses = 0
        self.gc_core_s = 0.0  # core-seconds taken by GC pauses, ever
        self.saturated = False
        self._window_start = env.now
        self._window_busy = 0.0
        self._hot = 0
        self._interval_start = (0.0, 0.0, env.now)

    def can_start(self) -> bool:
        return not self.paused

    def run(self, seconds: float) -> Any:
        """A burst of ``seconds`` of CPU work: the event fires when it has run on a core."""
        return self.serve(seconds)

    def released(self) -> None:
        now = self.env.now
        if now - self._window_start < CPU_WINDOW_S:
            return
        busy = self.busy_server_seconds()
        share = (busy - self._window_busy) / ((now - self._window_start) * self.servers)
        self._window_start, self._window_busy = now, busy
        self._hot = self._hot + 1 if share >= CPU_SATURATED_BUSY else 0
        if not self.saturated and self._hot >= CPU_HOT_WINDOWS:
            self.saturated = True
            self.on_state("cpu_saturated", f"{100 * share:.0f}% of {self.servers} cores busy, "
                                           f"{len(self.queue)} bursts waiting")
        elif self.saturated and share < CPU_RECOVERED_BUSY:
            self.saturated = False
            self.on_state("cpu_recovered", f"{100 * share:.0f}% of {self.servers} cores busy")

    def stop_the_world(self, pause_s: float) -> None:
        """A GC pause: every core is the collector's for ``pause_s`` (after any pause running)."""
        now = self.env.now
        self.paused = True
        self.paused_until = max(self.paused_until, now) + pause_s
        self.gc_core_s += pause_s * self.servers
        self._pauses += 1
        self.env.timeout(self.paused_until - now, self._pauses).callbacks.append(self._pause_over)

    def _pause_over(self, event: Any) -> None:
        if event.value != self._pauses:
            return  # a later pause extends this one
        self.paused = False
        self.dispatch()

    def reset(self) -> None:
        """The JVM died: its queued bursts are gone (running ones finish and free their core)."""
        self.queue.clear()
        self.paused = False
        self._pauses += 1
        self.saturated = False

    def take_interval(self) -> CpuFigures:
        """Busy share of all cores (0..1, bursts and GC) since the last call."""
        busy, gc, since = self._interval_start
        now = self.env.now
        busy_now, gc_now = self.busy_server_seconds(), self.gc_core_s
        self._interval_start = (busy_now, gc_now, now)
        span = (now - since) * self.servers
        share = (busy_now - busy + gc_now - gc) / span if span > 0 else 0.0
        return CpuFigures(min(1.0, share))
