"""The contract every document sink fulfils.

The simulation calls ``emit`` once per document, in a deterministic order, with a
deterministic ``doc_id``. A sink may block inside ``emit`` (that is how a slow OpenSearch
applies back-pressure to the simulation). ``close`` flushes everything and reports counts;
it is always called, also when the run fails, so nothing buffered is silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass
class SinkSummary:
    """What a sink did with the documents it was given."""

    name: str
    generated: int = 0
    indexed: int = 0
    already_present: int = 0
    dead_lettered: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def unaccounted(self) -> int:
        return self.generated - self.indexed - self.already_present - self.dead_lettered


class SinkStopped(RuntimeError):
    """A sink cannot go on (its index refuses writes, its server is gone): stop the run.

    Raised from ``emit`` so the simulation stops within seconds instead of producing
    documents nobody will take. The message is one line for the user, without secrets.
    """


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


class EventSink(Protocol):
    def emit(self, doc_id: str, doc: dict[str, Any]) -> None:
        """Accept one document (``doc["event_type"]`` says which kind).

        A sink with ``accepts_encoded = True`` may also be given an ``EncodedDoc``."""

    def emit_raw(self, lines: bytes, count: int) -> None:
        """Accept ``count`` documents as ``bulk_lines`` wrote them (action line, document line;
        from a worker's part file). Taken as they are: no sink decodes and re-encodes them."""

    def close(self, ok: bool = True) -> SinkSummary:
        """Flush and release. ``ok=False`` means the run failed: keep nothing that looks complete."""
