"""StateLog: the resources' own announcements of saturation and recovery.

Each resource decides its thresholds and calls ``record``; the ground truth reads the
order in which they gave way from here, never from the telemetry.
"""

from __future__ import annotations

from typing import Any


class StateLog:
    """Resource state changes as the simulation saw them: (sim_s, component, event, detail)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.entries: list[tuple[float, str, str, str]] = []

    def record(self, component: str, event: str, detail: str = "") -> None:
        self.entries.append((self.env.now, component, event, detail))
