"""Feature flags: switched at runtime by a flag service, served to a share of shoppers.

A flag's effect goes through the model's own mechanisms (the handlers in
``sim.model.endpoints`` ask ``flags.serves``): more calls to an upstream, a longer
transaction, more CPU. Who gets a flag is decided as flag services do, by hashing the
shopper's id with the flag's name into a bucket: the same shopper always gets the same answer,
and no random draw is taken from any stream (a flag never shifts another component's draws).
"""

from __future__ import annotations

import zlib

BUCKETS = 10_000


class FeatureFlags:
    """The share of shoppers each flag is on for (0.0: off). Attributes, so a handler's check
    of a flag that is off costs one attribute read."""

    __slots__ = ("recommended_for_you", "checkout_fraud_check", "search_personalization")

    def __init__(self) -> None:
        self.recommended_for_you = 0.0
        self.checkout_fraud_check = 0.0
        self.search_personalization = 0.0

    def set(self, flag: str, share: float) -> float:
        """Serve ``flag`` to ``share`` of shoppers from now on; returns the share before."""
        old = float(getattr(self, flag))
        setattr(self, flag, share)
        return old

    def share(self, flag: str) -> float:
        return float(getattr(self, flag))

    def serves(self, flag: str, share: float, customer_id: str) -> bool:
        """Whether ``customer_id`` is in the ``share`` of shoppers ``flag`` is served to."""
        if share >= 1.0:
            return True
        return zlib.crc32(f"{flag}:{customer_id}".encode()) % BUCKETS < share * BUCKETS
