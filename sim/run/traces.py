"""A run's trace files: each segment writes its kept spans and its service map into part
files beside its document part; the run joins them, in segment order, into
``otel-v1-apm-span.ndjson`` and ``otel-v1-apm-service-map.ndjson`` (``_bulk`` format for
their own indices), keeping each service-map edge once, as Data Prepper does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from sim.run.segment import SegmentPlan, TraceOutput
from sim.telemetry.spans import SERVICE_MAP_FILE, SPANS_FILE

TRACE_FILES = (SPANS_FILE, SERVICE_MAP_FILE)


def trace_parts(part: Path) -> tuple[Path, Path]:
    """The span and service-map part files of a segment's document part."""
    stem = part.name.removesuffix(".ndjson")
    return part.with_name(f"{stem}.spans.ndjson"), part.with_name(f"{stem}.service-map.ndjson")


@contextlib.contextmanager
def writing_trace_parts(part: Path, enabled: bool) -> Iterator[TraceOutput | None]:
    """The segment's trace output into its part files (rewritten from scratch), or None."""
    if not enabled:
        yield None
        return
    spans_path, map_path = trace_parts(part)
    with open(spans_path, "wb", buffering=1 << 20) as spans, open(map_path, "wb") as edges:
        yield spans.write, edges.write


def stage_trace_files(plans: Sequence[SegmentPlan], parts_dir: Path, output_dir: Path) -> list[str]:
    """Join the segments' trace parts into the run's two ``.partial`` files; the files the
    run will have (none when it writes no traces)."""
    parts = [trace_parts(parts_dir / f"segment-{p.index:03d}.ndjson") for p in plans]
    if not parts or not parts[0][0].exists():
        return []
    spans_out = output_dir / (SPANS_FILE + ".partial")
    with open(spans_out, "wb") as out:
        for spans_path, _ in parts:
            with open(spans_path, "rb") as fh:
                while chunk := fh.read(4 << 20):
                    out.write(chunk)
    seen: set[bytes] = set()
    with open(output_dir / (SERVICE_MAP_FILE + ".partial"), "wb") as out:
        for _, map_path in parts:
            lines = map_path.read_bytes().splitlines(keepends=True)
            for action, doc in zip(lines[::2], lines[1::2], strict=True):
                if action not in seen:  # the action line names the edge's hashId
                    seen.add(action)
                    out.write(action + doc)
    return [str(output_dir / SPANS_FILE), str(output_dir / SERVICE_MAP_FILE)]
