"""BufferCache: the warm working set that a slowdown evicts and traffic re-warms."""

from __future__ import annotations

from sim.config import CACHE_WARM_RATIO


class BufferCache:
    """A service's cache of its hot working set: why it stays slow for minutes after its
    cause is fixed.

    Work done at ``slowdown`` x its normal time (a database's sequential scan instead of an
    index lookup; a service grinding through its own slow store) reads far more than it
    needs and pushes the hot working set out. Every ordinary call afterwards pulls its share
    back in, so the cache re-warms with call volume, not with the clock. A cold miss costs
    ``cold_extra`` x a warm call's time.
    """

    def __init__(self, cold_extra: float, evict_per_slow_call: float, warm_per_call: float):
        self.cold_extra = cold_extra
        self.evict_per_slow_call = evict_per_slow_call
        self.warm_per_call = warm_per_call
        self.hit_ratio = 1.0

    def chill(self) -> None:
        """Everything evicted at once (the process holding the cache restarted)."""
        self.hit_ratio = 0.0

    def query_factor(self, slowdown: float) -> float:
        """Time factor of the next call; reading it also updates the cache."""
        if slowdown > 1.0:
            # the share of a slow call's reads that are useless scans
            self.hit_ratio *= 1.0 - self.evict_per_slow_call * (1.0 - 1.0 / slowdown)
            return max(slowdown, 1.0 + self.cold_extra * (1.0 - self.hit_ratio))
        if self.hit_ratio == 1.0:
            return 1.0
        factor = 1.0 + self.cold_extra * (1.0 - self.hit_ratio)
        self.hit_ratio += (1.0 - self.hit_ratio) * self.warm_per_call
        if self.hit_ratio > CACHE_WARM_RATIO:
            self.hit_ratio = 1.0
        return factor
