"""A run's trace files: each segment writes its kept spans, its service map and its logs
into part files beside its document part; the run joins them, in segment order, into
``otel-v1-apm-span.ndjson`` and ``otel-v1-apm-service-map.ndjson`` (``_bulk`` format for
their own indices), keeping each service-map edge once, as Data Prepper does, and
``logs.ndjson`` (for the main index, beside ``all_data.ndjson``: its documents and ids are
untouched).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
