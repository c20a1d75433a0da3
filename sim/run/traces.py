"""A run's trace files: each segment writes its kept spans, its service map and its logs
into part files beside its document part; the run joins them, in segment order, into
``otel-v1-apm-span.ndjson`` and ``otel-v1-apm-service-map.ndjson`` (``_bulk`` format for
their own indices), keeping each service-map edge once, as Data Prepper does, and
``logs.ndjson`` (for the main index, beside ``all_data.ndjson``: its documents and ids are
untouched).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sim.outputs.sink import EventSink
from sim.run.segment import SegmentPlan, TraceOutput
from sim.telemetry.encoding import bulk_lines
from sim.telemetry.logs import LOGS_FILE
from sim.telemetry.spans import SERVICE_MAP_FILE, SPANS_FILE

TRACE_FILES = (SPANS_FILE, SERVICE_MAP_FILE, LOGS_FILE)


def trace_parts(part: Path) -> tuple[Path, Path, Path]:
    """The span, service-map and log part files of a segment's document part."""
    stem = part.name.removesuffix(".ndjson")
    return (part.with_name(f"{stem}.spans.ndjson"), part.with_name(f"{stem}.service-map.ndjson"),
            part.with_name(f"{stem}.logs.ndjson"))


def log_id(run_key: str, segment: int, seq: int) -> str:
    """A log document's id: the run's, beside its documents' ids (``doc_id_for``)."""
    return f"{run_key}-{segment:03d}-log-{seq:09d}"


@contextlib.contextmanager
def writing_trace_parts(part: Path, enabled: bool, run_key: str, segment: int
                        ) -> Iterator[TraceOutput | None]:
    """The segment's trace output into its part files (rewritten from scratch), or None."""
    if not enabled:
        yield None
        return
    spans_path, map_path, logs_path = trace_parts(part)
    with open(spans_path, "wb", buffering=1 << 20) as spans, open(map_path, "wb") as edges, \
            open(logs_path, "wb") as logs:
        seq = [0]

        def log(doc: dict[str, Any]) -> None:
            seq[0] += 1
            logs.write(bulk_lines(log_id(run_key, segment, seq[0]), doc))

        yield spans.write, edges.write, log


def _concatenate(paths: Sequence[Path], into: Path) -> None:
    with open(into, "wb") as out:
        for path in paths:
            with open(path, "rb") as fh:
                while chunk := fh.read(4 << 20):
                    out.write(chunk)


def stage_trace_files(plans: Sequence[SegmentPlan], parts_dir: Path, output_dir: Path) -> list[str]:
    """Join the segments' trace parts into the run's two ``.partial`` files; the files the
    run will have (none when it writes no traces)."""
    parts = [trace_parts(parts_dir / f"segment-{p.index:03d}.ndjson") for p in plans]
    if not parts or not parts[0][0].exists():
        return []
    _concatenate([p[0] for p in parts], output_dir / (SPANS_FILE + ".partial"))
    _concatenate([p[2] for p in parts], output_dir / (LOGS_FILE + ".partial"))
    seen: set[bytes] = set()
    with open(output_dir / (SERVICE_MAP_FILE + ".partial"), "wb") as out:
        for _, map_path, _ in parts:
            lines = map_path.read_bytes().splitlines(keepends=True)
            for action, doc in zip(lines[::2], lines[1::2], strict=True):
                if action not in seen:  # the action line names the edge's hashId
                    seen.add(action)
                    out.write(action + doc)
    return [str(output_dir / name) for name in TRACE_FILES]


def _pairs(data: bytes) -> tuple[int, int]:
    """(bytes up to the last complete action/document pair, number of pairs)."""
    lines = data.count(b"\n")
    if lines < 2:
        return 0, 0
    cut = data.rindex(b"\n") + 1
    if lines % 2:
        cut = data.rindex(b"\n", 0, cut - 1) + 1
    return cut, lines // 2


class TraceFollower:
    """Feeds the trace parts to their sinks while the segments are simulated, in segment
    order, so their load overlaps the simulation instead of following it. A segment's parts
    are complete once its result record exists (written after they are closed); its spans
    are followed as they grow, its logs and edges sent when it is complete (each edge once).
    Runs on its own thread: each sink is fed from it alone."""

    def __init__(self, plans: Sequence[SegmentPlan], parts_dir: Path,
                 sinks: dict[str, EventSink]) -> None:
        self.plans = plans
        self.parts_dir = parts_dir
        self.sinks = sinks
        self.seen: set[bytes] = set()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="trace-follower", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def finish(self, ok: bool) -> None:
        """Wait for every part to be fed (``ok``), or stop now; raise what went wrong."""
        if not ok:
            self.stop.set()
        self.thread.join()
        if ok and self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            for plan in self.plans:
                if not self._segment(plan.index):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the run's thread in finish
            self.error = exc

    def _segment(self, index: int) -> bool:
        """Feed one segment's parts; False when told to stop first."""
        part = self.parts_dir / f"segment-{index:03d}.ndjson"
        spans_path, map_path, logs_path = trace_parts(part)
        record = part.with_name(f"segment-{index:03d}.result")
        spans = self.sinks.get(SPANS_FILE)
        pending, fh = b"", None
        try:
            while not self.stop.is_set():
                done = record.exists()  # before reading: the parts were closed before it
                if fh is None and spans_path.exists():
                    fh = open(spans_path, "rb")  # noqa: SIM115 - closed below
                chunk = fh.read(4 << 20) if fh is not None else b""
                if chunk:
                    pending = self._feed(spans, pending + chunk)
                elif done:
                    break
                else:
                    time.sleep(0.05)
        finally:
            if fh is not None:
                fh.close()
        if self.stop.is_set():
            return False
        self._feed(self.sinks.get(LOGS_FILE), logs_path.read_bytes())
        self._feed_edges(map_path.read_bytes())
        return True

    @staticmethod
    def _feed(sink: EventSink | None, data: bytes) -> bytes:
        cut, count = _pairs(data)
        if sink is not None and count:
            sink.emit_raw(data[:cut], count)
        return data[cut:]

    def _feed_edges(self, data: bytes) -> None:
        lines = data.splitlines(keepends=True)
        new = [action + doc for action, doc in zip(lines[::2], lines[1::2], strict=True)
               if action not in self.seen]
        self.seen.update(lines[::2])
        self._feed(self.sinks.get(SERVICE_MAP_FILE), b"".join(new))
