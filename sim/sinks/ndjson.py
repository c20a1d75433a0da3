"""NDJSON in OpenSearch ``_bulk`` format, written so an interrupted run never looks complete.

Documents go to ``<name>.partial`` and are renamed into place only by ``close(ok=True)``;
a failed run removes its partial file and leaves any earlier complete file untouched.
A path ending in ``.gz`` is written as gzip (``--gzip``): a sixth of the bytes, loadable as
is with ``Content-Encoding: gzip``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from sim.sinks.base import EncodedDoc, SinkSummary

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


def read_lines(path: Path) -> Iterator[bytes]:
    """The lines of an NDJSON file, plain or ``.gz``."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb", buffering=_BUFFER)) as fh:
        yield from fh


def doc_id_for(run_key: str, segment: int, seq: int) -> str:
    """Deterministic document id: run (scenario, seed, window), segment, sequence."""
    return f"{doc_id_prefix(run_key, segment)}{seq:09d}"


def doc_id_prefix(run_key: str, segment: int) -> str:
    """The part of ``doc_id_for`` before the sequence, for writers that make one per document."""
    return f"{run_key}-{segment:03d}-"


def bulk_lines(doc_id: str, doc: dict[str, Any] | EncodedDoc) -> bytes:
    """One action line and one document line, exactly as every writer produces them."""
    body = doc.body if type(doc) is EncodedDoc else orjson.dumps(doc)
    return b'{"index":{"_id":"' + doc_id.encode() + b'"}}\n' + body + b"\n"


class NdjsonSink:
    accepts_encoded = True  # an EncodedDoc's body is copied as is

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial, self._fh = open_partial(self.path)
        self.summary = SinkSummary(name=str(self.path))
        self._closed = False

    def emit(self, doc_id: str, doc: dict[str, Any] | EncodedDoc) -> None:
        self._fh.write(bulk_lines(doc_id, doc))
        self.summary.generated += 1

    def emit_raw(self, lines: bytes, count: int) -> None:
        """Already-serialized action/document line pairs (from a worker process)."""
        self._fh.write(lines)
        self.summary.generated += count

    def close(self, ok: bool = True) -> SinkSummary:
        if self._closed:
            return self.summary
        self._closed = True
        self._fh.close()
        if ok:
            os.replace(self.partial, self.path)
            self.summary.indexed = self.summary.generated
        else:
            self.partial.unlink(missing_ok=True)
        return self.summary
