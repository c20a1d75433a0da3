"""JvmHeap: generational heap accounting whose collections stall the instance.

Every request allocates into the young generation; filling it triggers a short minor pause
and promotes a little into the old generation. Filling the old generation past a threshold
triggers a full collection whose pause grows with the old generation's size, and which
frees all but the live set. A leak grows the live set: full collections come more often,
last longer and free less, until the live set no longer fits and the JVM throws
OutOfMemoryError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from sim.config import (
    HEAP_PRESSURE_SHARE,
    LONG_GC_PAUSE_S,
    OOM_LIVE_SHARE,
    YOUNG_HEADROOM_SHARE,
    YOUNG_MIN_MB,
)
from sim.model.resources import OnState, ignore_state

MINOR, FULL, OOM = "minor", "full", "oom"


class HeapFigures(NamedTuple):
    """What the heap reports: its size now and its collections since the last take."""

    used_mb: float
    max_mb: float
    gc_pause_s: float
    gc_count: int
    gc_full: int


class JvmHeap:
    def __init__(
        self,
        *,
        max_mb: float,
        young_mb: float,
        baseline_live_mb: float,
        promotion_ratio: float,
        minor_pause_s: float,
        full_gc_threshold: float,
        full_pause_s_per_gb: float,
        on_gc: Callable[[str, float], None],
        on_state: OnState = ignore_state,
    ):
        self.max_mb = max_mb
        self.young_mb = young_mb
        self.old_max_mb = max_mb - young_mb
        self.baseline_live_mb = baseline_live_mb
        self.promotion_ratio = promotion_ratio
        self.minor_pause_s = minor_pause_s
        self.full_gc_threshold = full_gc_threshold
        self.full_pause_s_per_gb = full_pause_s_per_gb
        self.on_gc = on_gc
        self.on_state = on_state
        self.gc_pause_s = 0.0
        self.gc_count = 0
        self.gc_full = 0
        self.reset()

    def reset(self) -> None:
        self.pressure = False
        self.young_used_mb = 0.0
        self.leaked_mb = 0.0
        self.old_used_mb = self.baseline_live_mb
        self.young_limit = self.young_limit_mb()

    @property
    def used_mb(self) -> float:
        return self.young_used_mb + self.old_used_mb

    @property
    def live_mb(self) -> float:
        return self.baseline_live_mb + self.leaked_mb

    def young_limit_mb(self) -> float:
        """The young generation shrinks when the live set leaves the heap little room, so a
        filling heap collects ever more often (the GC death spiral before an OOM)."""
        return min(self.young_mb, max(YOUNG_MIN_MB, YOUNG_HEADROOM_SHARE *
                                      (self.old_max_mb - self.live_mb) + YOUNG_MIN_MB))

    def allocate(self, mb: float, leaked_mb: float = 0.0) -> bool:
        """A request's allocations; ``leaked_mb`` of them stay reachable for good.

        Returns True when this allocation ran the JVM out of memory."""
        if leaked_mb:
            self.leaked_mb += leaked_mb
            self.old_used_mb += leaked_mb
            self.young_limit = self.young_limit_mb()
        self.young_used_mb += mb
        if self.young_used_mb < self.young_limit:
            return False
        promoted = self.young_used_mb * self.promotion_ratio
        self.young_used_mb = 0.0
        self.old_used_mb += promoted
        self._collected(MINOR, self.minor_pause_s)
        if self.old_used_mb >= self.full_gc_threshold * self.old_max_mb:
            pause = self.full_pause_s_per_gb * self.old_used_mb / 1024.0
            self.old_used_mb = self.live_mb
            if self.live_mb >= OOM_LIVE_SHARE * self.old_max_mb:
                self.on_gc(OOM, pause)
                return True
            self._collected(FULL, pause)
            if not self.pressure and self.live_mb >= HEAP_PRESSURE_SHARE * self.old_max_mb:
                self.pressure = True
                self.on_state("heap_pressure", f"live set {self.live_mb:.0f} MB after full GC")
            if pause >= LONG_GC_PAUSE_S:
                self.on_state("long_gc_pause", f"full GC {pause * 1000:.0f} ms, live "
                                               f"{self.live_mb:.0f} MB")
        return False

    def _collected(self, kind: str, pause_s: float) -> None:
        self.gc_pause_s += pause_s
        self.gc_count += 1
        if kind == FULL:
            self.gc_full += 1
        self.on_gc(kind, pause_s)

    def take_interval(self) -> HeapFigures:
        """Its figures for the sampler; the collection counters start again from zero."""
        figures = HeapFigures(self.used_mb, self.max_mb, self.gc_pause_s, self.gc_count,
                              self.gc_full)
        self.gc_pause_s = 0.0
        self.gc_count = self.gc_full = 0
        return figures
