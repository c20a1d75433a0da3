"""The contract every document sink fulfils.

The simulation calls ``emit`` once per document, in a deterministic order, with a
deterministic ``doc_id``. A sink may block inside ``emit`` (that is how a slow OpenSearch
applies back-pressure to the simulation). ``close`` flushes everything and reports counts;
it is always called, also when the run fails, so nothing buffered is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


class EventSink(Protocol):
    def emit(self, doc_id: str, doc: dict[str, Any]) -> None:
        """Accept one document (``doc["event_type"]`` says which kind).

        A sink with ``accepts_encoded = True`` may also be given an ``EncodedDoc``."""

    def emit_raw(self, lines: bytes, count: int) -> None:
        """Accept ``count`` documents as ``bulk_lines`` wrote them (action line, document line;
        from a worker's part file). Taken as they are: no sink decodes and re-encodes them."""

    def close(self, ok: bool = True) -> SinkSummary:
        """Flush and release. ``ok=False`` means the run failed: keep nothing that looks complete."""
