"""The output directory's files: refused before a run when unusable, and the failure a
write that breaks mid-run becomes.

A write that fails (disk full, file size limit, read-only remount) becomes a
``WriteFailure`` naming the file and how far it got; ``sim.run.disk`` turns that into the
one line with what the run needed there.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

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
