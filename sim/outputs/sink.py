"""The contract every document sink fulfils.

The simulation calls ``emit`` once per document, in a deterministic order, with a
deterministic ``doc_id``. A sink may block inside ``emit`` (that is how a slow OpenSearch
applies back-pressure to the simulation). ``close`` flushes everything and reports counts;
it is always called, also when the run fails, so nothing buffered is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.telemetry.encoding import EncodedDoc


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
    """What the run reads of a sink: every sink declares each attribute and method below."""

    accepts_encoded: bool
    """``emit`` may be given an ``EncodedDoc`` (its bytes are used as they are); False: the
    run decodes every document into a dict first."""

    remote: bool
    """The sink sends to a server and is worth a core of its own: the run feeds it while
    worker processes simulate (``sim.run.parallel``); False: fed the finished part files."""

    send_when_idle: bool
    """Set by a live run at its handoff: send what is batched as soon as there is nothing
    else to do, rather than waiting for a full batch (documents come one bucket at a time).
    A sink that does not batch ignores it."""

    def emit(self, doc_id: str, doc: dict[str, Any] | EncodedDoc) -> None:
        """Accept one document (``doc["event_type"]`` says which kind); an ``EncodedDoc``
        only when ``accepts_encoded``."""

    def emit_raw(self, lines: bytes, count: int) -> None:
        """Accept ``count`` documents as ``bulk_lines`` wrote them (action line, document line;
        from a worker's part file). Taken as they are: no sink decodes and re-encodes them."""

    def flush(self) -> None:
        """Pass on everything emitted so far (to the file, or queued for the server): a live
        run calls it at every bucket's end, so its documents are visible while it runs."""

    def close(self, ok: bool = True) -> SinkSummary:
        """Flush and release. ``ok=False`` means the run failed: keep nothing that looks complete."""
