"""Simulated time vs. wall-clock UTC: window resolution, relative fault times, timestamps.

The simulation clock counts seconds from a segment's origin; documents carry UTC
timestamps with millisecond precision. Nothing here reads the wall clock except
``default_today``, which only the CLI calls (and only when ``--today`` is absent).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

UTC = dt.UTC

_RELATIVE = re.compile(
    r"^\s*(?:(today)|(yesterday)|(\d+)\s+days?\s+ago)\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$",
    re.IGNORECASE,
)


_DURATION = r"(\d+(?:\.\d+)?)\s*(s|m|h)"
_NOW = re.compile(rf"^\s*now\s*(?:\+\s*{_DURATION})?\s*$", re.IGNORECASE)
_DURATION_ONLY = re.compile(rf"^\s*{_DURATION}\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def now_offset(text: str) -> float | None:
    """Seconds after "now" for 'now', 'now+90s', 'now+5m', 'now+1h'; None for any other text.

    "now" is the simulated time at which a live run first reads the fault (sim/live/control.py)."""
    m = _NOW.match(str(text))
    if m is None:
        return None
    return 0.0 if m.group(1) is None else float(m.group(1)) * _UNIT_S[m.group(2).lower()]


def parse_duration(text: str) -> float:
    """'90s', '10m', '1.5h' -> seconds (for command-line flags); ValueError otherwise."""
    m = _DURATION_ONLY.match(str(text))
    if m is None:
        raise ValueError(f"bad duration {text!r} (use e.g. 90s, 10m or 1.5h)")
    return float(m.group(1)) * _UNIT_S[m.group(2).lower()]


def default_today() -> dt.date:
    return dt.datetime.now(UTC).date()


def resolve_time_expression(text: str, today: dt.date) -> dt.datetime:
    """'today 14:25', 'yesterday 12:15', '2 days ago 18:30' or an ISO datetime (UTC if naive)."""
    m = _RELATIVE.match(str(text))
    if m:
        days_back = 0 if m.group(1) else 1 if m.group(2) else int(m.group(3))
        hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"invalid time of day in {text!r}")
        try:
            day = today - dt.timedelta(days=days_back)
        except OverflowError:
            raise ValueError(f"{text!r} lies before the year 1") from None
        return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)
    try:
        value = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot parse time {text!r} (use 'today HH:MM', 'yesterday HH:MM', "
            "'N days ago HH:MM' or an ISO datetime)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """The UTC interval whose documents are written."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def segments(self) -> list[Window]:
        """Fixed split points (UTC midnights): the same for any number of workers."""
        parts: list[Window] = []
        cursor = self.start
        while cursor < self.end:
            midnight = dt.datetime(cursor.year, cursor.month, cursor.day, tzinfo=UTC)
            nxt = min(self.end, midnight + dt.timedelta(days=1))
            parts.append(Window(cursor, nxt))
            cursor = nxt
        return parts


def resolve_window(
    days: int, today: dt.date, start: str | None = None, end: str | None = None
) -> Window:
    if start is not None and end is not None:
        w = Window(resolve_time_expression(start, today), resolve_time_expression(end, today))
        if w.end <= w.start:
            raise ValueError("end must be after start")
        return w
    try:
        end_dt = dt.datetime(today.year, today.month, today.day, tzinfo=UTC) + dt.timedelta(days=1)
        return Window(end_dt - dt.timedelta(days=days), end_dt)
    except OverflowError:
        raise ValueError(f"{days} days ending at 24:00 of {today} leave the calendar "
                         "(years 1..9999)") from None


def epoch_ms(value: dt.datetime) -> int:
    return int(round(value.timestamp() * 1000))


class TimestampFormatter:
    """Epoch milliseconds -> '2026-11-27T14:25:03.123Z', caching the per-second prefix."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        sec, milli = divmod(ms, 1000)
        prefix = self._cache.get(sec)
        if prefix is None:
            if len(self._cache) > 8192:
                self._cache.clear()
            prefix = dt.datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._cache[sec] = prefix
        return f"{prefix}{milli:03d}Z"
