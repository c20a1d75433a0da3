"""NDJSON in OpenSearch ``_bulk`` format, written so an interrupted run never looks complete.

Documents go to ``<name>.partial`` and are renamed into place only by ``close(ok=True)``;
a failed run removes its partial file and leaves any earlier complete file untouched.
A live run writes in place instead (``in_place=True``) and flushes every bucket, so a log
shipper can tail the file while the run goes on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from sim.sinks.base import EncodedDoc, SinkSummary

_BUFFER = 1 << 20


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

    def __init__(self, path: Path, in_place: bool = False):
        self.path = Path(path)
        self.in_place = in_place
        self.partial = self.path if in_place else self.path.with_name(self.path.name + ".partial")
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.partial, "wb", buffering=_BUFFER)  # noqa: SIM115
        self.summary = SinkSummary(name=str(self.path))
        self._closed = False

    def emit(self, doc_id: str, doc: dict[str, Any] | EncodedDoc) -> None:
        self._fh.write(bulk_lines(doc_id, doc))
        self.summary.generated += 1

    def emit_raw(self, lines: bytes, count: int) -> None:
        """Already-serialized action/document line pairs (from a worker process)."""
        self._fh.write(lines)
        self.summary.generated += count

    def flush(self) -> None:
        """Everything emitted so far is in the file (a live run's bucket end)."""
        self._fh.flush()

    def close(self, ok: bool = True) -> SinkSummary:
        if self._closed:
            return self.summary
        self._closed = True
        self._fh.close()
        if self.in_place:  # tailed while written: what is there stays
            self.summary.indexed = self.summary.generated
        elif ok:
            os.replace(self.partial, self.path)
            self.summary.indexed = self.summary.generated
        else:
            self.partial.unlink(missing_ok=True)
        return self.summary
