"""The output directory's disk: refused before a run when unusable, one line when it fills up.

A write that fails mid-run (disk full, file size limit, read-only remount) becomes a
``WriteFailure`` naming the file; the run then removes what it wrote and reports, in one
line, how much the run needed there: the bytes written so far scaled by the share of the
window's traffic (the daily schedule) that those bytes cover.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sim.config import Scenario

_TS_KEY = b'"@timestamp":"'
_TAIL = 1 << 16


class OutputError(Exception):
    """The output cannot be written: the message is the one line the user sees."""


class WriteFailure(Exception):
    """A file write failed: which file, why, and how far it got (for the estimate).

    ``covers_from`` is where the file's documents start (epoch s; None: the window start),
    ``reached`` the timestamp of the last document it holds (None: unknown). Pickles as
    its arguments, so a worker process can raise it to the parent."""

    def __init__(self, path: str, reason: str, written: int, reached: float | None,
                 covers_from: float | None = None) -> None:
        super().__init__(path, reason, written, reached, covers_from)
        self.path, self.reason, self.written = path, reason, written
        self.reached, self.covers_from = reached, covers_from

    @classmethod
    def of(cls, path: Path | str, exc: OSError, covers_from: float | None = None) -> WriteFailure:
        """From the OSError of a write to ``path``: how far the file got is read from what
        is on the disk (the bytes and the last document's time), not from what was buffered."""
        try:
            written = os.path.getsize(path)
            with open(path, "rb") as fh:
                fh.seek(max(0, written - _TAIL))
                tail = fh.read()
        except OSError:
            written, tail = 0, b""
        return cls(str(path), exc.strerror or str(exc), written, last_timestamp(tail), covers_from)


def last_timestamp(data: bytes) -> float | None:
    """Epoch seconds of the last complete ``@timestamp`` in some _bulk lines."""
    i = data.rfind(_TS_KEY)
    while i >= 0:
        text = data[i + len(_TS_KEY): i + len(_TS_KEY) + 24]
        try:
            return dt.datetime.fromisoformat(text.decode().replace("Z", "+00:00")).timestamp()
        except (UnicodeDecodeError, ValueError):
            i = data.rfind(_TS_KEY, 0, i)
    return None


def check_output_dir(path: Path) -> str | None:
    """Why files cannot be written into ``path`` (None if they can): checked before a run
    so a wrong directory costs no simulation. The directory itself is not created."""
    existing = Path(os.path.abspath(path))
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == Path(os.path.abspath(path)):
            return f"{path}: not a directory (a file of that name exists)"
        return f"{path}: cannot create it: {existing} is not a directory"
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"{path}: {existing} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{path}: {existing} is not writable (permission denied)"
    return None


def traffic_load(scenario: Scenario, start: float, end: float) -> float:
    """Expected arrivals between two epoch times by the daily schedule (per-minute sum)."""
    t = scenario.traffic
    from sim.traffic import DailySchedule  # local: traffic imports the model, which writes files

    schedule = DailySchedule(t.base_tps, t.peak_multiplier, t.weekend_factor)
    total, x = 0.0, start
    while x < end:
        step = min(60.0, end - x)
        total += schedule.rate(x + step / 2) * step
        x += step
    return total


def estimate_run_bytes(scenario: Scenario, window_start: float, window_end: float,
                       written: int, reached: float | None,
                       covers_from: float | None = None) -> int | None:
    """Bytes the run's files need in the output directory, extrapolated from ``written``
    bytes of documents from ``covers_from`` (default: the window start) up to ``reached``:
    by the window's expected traffic over the traffic they cover, and once more for the
    split files (which copy every document). None when there is nothing to go by."""
    covers_from = window_start if covers_from is None else covers_from
    if reached is None or written <= 0 or reached <= covers_from:
        return None
    done = traffic_load(scenario, covers_from, min(reached, window_end))
    if done <= 0:
        return None
    all_data = written * traffic_load(scenario, window_start, window_end) / done
    return int(all_data * (2 if scenario.output.split_files else 1))


def size_text(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def failure_message(failure: WriteFailure, written: int, needed: int | None) -> str:
    """The one line: the file, the cause, what the run wrote and what it still needed."""
    line = f"{failure.path}: {failure.reason} after writing {size_text(written)}"
    if needed is not None and needed > written:
        line += (f"; the run needed about {size_text(needed - written)} more there "
                 f"(about {size_text(needed)} in all)")
    return line + "; removed what this run wrote, earlier files are untouched"
