"""Documents as bytes: the encoded document, its deterministic id and its ``_bulk`` lines.

Everything that writes a document (a segment's part file, the NDJSON file, the OpenSearch
sink, the live loop) uses these, so an id and a pair of ``_bulk`` lines have one format.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson


class EncodedDoc(Mapping[str, Any]):
    """A document already serialized: ``body`` is exactly ``orjson.dumps`` of its dict.

    The NDJSON writer copies ``body`` as is, so the hot path never builds a dict. Whatever
    needs a dict (another sink, a test) reads it as a read-only mapping, decoded once."""

    __slots__ = ("event_type", "body", "_dict")

    def __init__(self, event_type: str, body: bytes) -> None:
        self.event_type = event_type
        self.body = body
        self._dict: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        if self._dict is None:
            self._dict = orjson.loads(self.body)
        return self._dict

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


def _id_format(run_key: str, segment: int) -> str:
    """The one format of a document id (``%`` takes the sequence): run (scenario, seed,
    window), segment, sequence from 1 in the segment's document order."""
    return f"{run_key}-{segment:03d}-".replace("%", "%%") + "%09d"


def doc_id_for(run_key: str, segment: int, seq: int) -> str:
    """Deterministic document id: the same run writes the same ids, so a document sent
    again is recognised (answered 409), not duplicated."""
    return _id_format(run_key, segment) % seq


def doc_ids(run_key: str, segment: int) -> Callable[[], str]:
    """The next ``doc_id_for`` of a segment at every call (1, 2, ...): what writers call
    once per document (as fast as formatting the sequence inline)."""
    return map(_id_format(run_key, segment).__mod__, itertools.count(1)).__next__


def incident_doc_id(run_key: str, incident_id: str) -> str:
    """An incident record's id in an incident sink (one index may hold several runs)."""
    return f"{run_key}-{incident_id}"


def bulk_lines(doc_id: str, doc: dict[str, Any] | EncodedDoc) -> bytes:
    """One action line and one document line, exactly as every writer produces them."""
    body = doc.body if type(doc) is EncodedDoc else orjson.dumps(doc)
    return b'{"index":{"_id":"' + doc_id.encode() + b'"}}\n' + body + b"\n"
