"""NDJSON in OpenSearch ``_bulk`` format, written so an interrupted run never looks complete.

Documents go to ``<name>.partial`` and are renamed into place only by ``close(ok=True)``;
a failed run removes its partial file and leaves any earlier complete file untouched. A
write that fails (disk full, file size limit) raises ``WriteFailure`` naming the file.
A path ending in ``.gz`` is written as gzip (``--gzip``): a sixth of the bytes, loadable as
is with ``Content-Encoding: gzip``. A live run writes in place instead (``in_place=True``)
and flushes every bucket, so a log shipper can tail the file while the run goes on.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from sim.outputs.files import WriteFailure, last_timestamp
from sim.outputs.sink import SinkSummary
from sim.telemetry.encoding import EncodedDoc, bulk_lines

_BUFFER = 1 << 20
# zlib's fast deflate (levels 1-3 cost about the same CPU; 3 compresses ~7 % smaller than 1,
# level 6 takes twice the CPU): measured in docs/performance.md (#15)
GZIP_LEVEL = 3


class DeterministicGzip:
    """A write-only gzip stream whose bytes depend on the data only.

    Why not ``gzip.open``: its header carries the file name and the current time. zlib's
    own gzip wrapper writes mtime 0 and no name, and deflate without flushes gives the same
    bytes however the input is cut into writes, so any worker count gives the same file.
    Writes are gathered to ~1 MB first (a zlib call per document would cost more than it
    compresses)."""

    def __init__(self, fh: IO[bytes], level: int = GZIP_LEVEL) -> None:
        self._fh = fh
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip header and trailer
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= _BUFFER:
            self._compress()

    def _compress(self) -> None:
        self._fh.write(self._z.compress(b"".join(self._pending)))
        self._pending, self._size = [], 0

    def close(self) -> None:
        self._compress()
        self._fh.write(self._z.flush())
        self._fh.close()


def open_partial(path: Path) -> tuple[Path, IO[bytes] | DeterministicGzip]:
    """``<path>.partial`` opened for writing (gzip-compressed when ``path`` ends in ``.gz``);
    the caller renames it to ``path`` when complete."""
    partial = path.with_name(path.name + ".partial")
    fh = open(partial, "wb", buffering=_BUFFER)  # noqa: SIM115 - closed by the caller
    return partial, DeterministicGzip(fh) if path.suffix == ".gz" else fh



def write_bulk_file(path: Path, docs: Iterable[tuple[str, dict[str, Any]]], commit: bool = True) -> None:
    """(id, document) pairs as a ``_bulk`` file, atomically (``commit=False``: left as
    ``.partial`` for the caller to rename with the run's other files)."""
    tmp, fh = open_partial(path)
    try:
        for doc_id, doc in docs:
            fh.write(orjson.dumps({"index": {"_id": doc_id}}) + b"\n")
            fh.write(orjson.dumps(doc) + b"\n")
        fh.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if commit:
        os.replace(tmp, path)

def read_lines(path: Path, gz: bool | None = None) -> Iterator[bytes]:
    """The lines of an NDJSON file, plain or gzip (``gz``; by default: the name ends in
    ``.gz``)."""
    if gz is None:
        gz = path.suffix == ".gz"
    with (gzip.open(path, "rb") if gz else open(path, "rb", buffering=_BUFFER)) as fh:
        yield from fh


class NdjsonSink:
    """An :class:`~sim.outputs.sink.EventSink` that writes one file."""

    accepts_encoded = True  # an EncodedDoc's body is copied as is
    remote = False  # fed the finished part files, in order
    send_when_idle = False  # nothing batched: ``flush`` writes through

    def __init__(self, path: Path, in_place: bool = False):
        self.path = Path(path)
        self.in_place = in_place
        self.partial = self.path if in_place else self.path.with_name(self.path.name + ".partial")
        self._fh: IO[bytes] | DeterministicGzip
        try:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            if in_place:  # a live run's file, tailed while it grows: plain NDJSON
                self._fh = open(self.partial, "wb", buffering=_BUFFER)  # noqa: SIM115
            else:
                self.partial, self._fh = open_partial(self.path)
        except OSError as exc:
            raise WriteFailure.of(self.partial, exc) from None
        self.summary = SinkSummary(name=str(self.path))
        self._closed = False
        self._finished = False
        self.handed = 0  # bytes given to the file so far, and the last of them:
        self._last = b""  # what a full disk's message extrapolates from (``progress``)

    def progress(self) -> tuple[int, float | None]:
        """(bytes handed to the file so far, epoch s of the last document among them)."""
        return self.handed, last_timestamp(self._last)

    def emit(self, doc_id: str, doc: dict[str, Any] | EncodedDoc) -> None:
        self.emit_raw(bulk_lines(doc_id, doc), 1)

    def emit_raw(self, lines: bytes, count: int) -> None:
        """Already-serialized action/document line pairs (from a worker process)."""
        self.handed += len(lines)
        self._last = lines
        try:
            self._fh.write(lines)
        except OSError as exc:
            raise WriteFailure.of(self.partial, exc) from None
        self.summary.generated += count

    def flush(self) -> None:
        """Everything emitted so far is in the file (a live run's bucket end)."""
        try:
            self._fh.flush()
        except OSError as exc:
            raise WriteFailure.of(self.partial, exc) from None

    def finish(self) -> None:
        """Flush everything into the partial file (the last buffer may not fit on the disk:
        ``WriteFailure``) without renaming it yet: the run renames all its files together
        once every one of them is written."""
        if self._finished:
            return
        self._finished = True
        try:
            self._fh.close()
        except OSError as exc:
            raise WriteFailure.of(self.partial, exc) from None
        self.summary.indexed = self.summary.generated

    def close(self, ok: bool = True) -> SinkSummary:
        if self._closed:
            return self.summary
        self._closed = True
        if self.in_place:  # tailed while written: what is there stays
            self.finish()
            return self.summary
        try:
            self.finish()
        except WriteFailure:
            if ok:
                self.partial.unlink(missing_ok=True)
                raise
        if ok:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)
            self.summary.indexed = 0
        return self.summary
