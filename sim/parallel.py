"""Simulating segments on several cores without changing a byte of the output.

Segments are fixed by the window (UTC days), each with its own warm-up and random streams,
so a segment's documents do not depend on where it runs. Worker processes write their
segment to a part file; the parent reads part files strictly in segment order — following
the one being written, like ``tail -f`` — and hands the documents to the sinks. The output
is therefore identical for any number of workers, sinks still receive documents while the
simulation runs, and the parent's memory stays bounded (part files wait on disk, not in RAM).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sim.config import Scenario
from sim.documents import Customer, make_customer_pool
from sim.segment import SegmentPlan, SegmentResult, simulate_segment
from sim.sinks.base import EncodedDoc, EventSink
from sim.sinks.ndjson import bulk_lines, doc_id_prefix

_POLL_S = 0.05
_READ = 4 << 20
_customers: dict[tuple[int, int], list[Customer]] = {}


def customers_for(scenario: Scenario) -> list[Customer]:
    """The run's customer pool, made once per process."""
    key = (scenario.seed, scenario.traffic.customers)
    if key not in _customers:
        _customers[key] = make_customer_pool(*key)
    return _customers[key]


def _segment_to_file(scenario: Scenario, plan: SegmentPlan, run_key: str, part: str,
                     customers: list[tuple[str, str, str, str, str]]) -> SegmentResult:
    """Worker: simulate one segment into a part file of _bulk lines."""
    seq = 0
    prefix = doc_id_prefix(run_key, plan.index)
    with open(part, "wb", buffering=1 << 20) as fh:
        write = fh.write

        def emit(doc: dict[str, Any] | EncodedDoc) -> None:
            nonlocal seq
            seq += 1
            write(bulk_lines(f"{prefix}{seq:09d}", doc))

        return simulate_segment(scenario, plan, [Customer(*c) for c in customers], emit)


def _feed(lines: bytes, count: int, sinks: Sequence[EventSink]) -> None:
    """Every sink takes the part file's bytes as they are: nothing is decoded here."""
    for sink in sinks:
        sink.emit_raw(lines, count)


def _follow(part: Path, future: Future, sinks: Sequence[EventSink]) -> None:
    """Hand the part file's complete line pairs to the sinks until its worker is done."""
    while not part.exists():
        if future.done():
            future.result()  # raises the worker's error
            return
        time.sleep(_POLL_S)
    with open(part, "rb") as fh:
        pending = b""
        while True:
            finished = future.done()
            chunk = fh.read(_READ)
            if chunk:
                pending += chunk
                lines = pending.count(b"\n")
                pairs = lines // 2
                if pairs:
                    # after the last complete pair: the last newline, or the one before it
                    cut = pending.rindex(b"\n") + 1
                    if lines % 2:
                        cut = pending.rindex(b"\n", 0, cut - 1) + 1
                    _feed(pending[:cut], pairs, sinks)
                    pending = pending[cut:]
                continue
            if finished:
                future.result()
                if pending:
                    raise RuntimeError(f"{part}: truncated segment output")
                return
            time.sleep(_POLL_S)


def run_segments(
    scenario: Scenario,
    plans: Sequence[SegmentPlan],
    run_key: str,
    sinks: Sequence[EventSink],
    workers: int,
    scratch: Path,
    progress: Callable[[float], None] | None = None,
) -> list[SegmentResult]:
    """Simulate every segment (in parallel when workers > 1) and feed sinks in order.

    With workers > 1 even a single segment runs in a worker process when a sink sends to a
    server: the simulation then has a core of its own, and the sink's threads have this
    process's (they take the part file's bytes as they are, ``emit_raw``)."""
    remote = any(getattr(sink, "remote", False) for sink in sinks)
    if workers <= 1 or (len(plans) <= 1 and not remote):
        return [_in_process(scenario, plan, run_key, sinks, progress) for plan in plans]
    scratch.mkdir(parents=True, exist_ok=True)
    # a fresh process per segment: a week's memory stays that of one segment. Each is forked
    # from a server that has the simulation imported, and gets the customer pool made here
    # once (as plain tuples: compiled frozen records do not unpickle)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sim.parallel"])
    customers = [(c.customer_id, c.country, c.currency, c.client_ip, c.user_agent)
                 for c in customers_for(scenario)]
    results: list[SegmentResult] = []
    with ProcessPoolExecutor(max_workers=min(workers, len(plans)), mp_context=ctx,
                             max_tasks_per_child=1) as pool:
        parts = [scratch / f"segment-{p.index:03d}.ndjson" for p in plans]
        futures = [pool.submit(_segment_to_file, scenario, p, run_key, str(part), customers)
                   for p, part in zip(plans, parts, strict=True)]
        try:
            for plan, part, future in zip(plans, parts, futures, strict=True):
                _follow(part, future, sinks)
                results.append(future.result())
                part.unlink(missing_ok=True)
                if progress is not None:
                    progress(plan.warmup_s + plan.window.seconds)
        finally:
            for future in futures:
                future.cancel()
            for part in parts:
                part.unlink(missing_ok=True)
    return results


def _in_process(scenario: Scenario, plan: SegmentPlan, run_key: str,
                sinks: Sequence[EventSink], progress: Callable[[float], None] | None
                ) -> SegmentResult:
    seq = 0
    prefix = doc_id_prefix(run_key, plan.index)
    emitters = [sink.emit if getattr(sink, "accepts_encoded", False) else _decoding(sink)
                for sink in sinks]

    def emit(doc: dict[str, Any] | EncodedDoc) -> None:
        nonlocal seq
        seq += 1
        doc_id = f"{prefix}{seq:09d}"  # doc_id_for(run_key, plan.index, seq)
        for sink_emit in emitters:
            sink_emit(doc_id, doc)

    return simulate_segment(scenario, plan, customers_for(scenario), emit, progress)


def _decoding(sink: EventSink) -> Callable[[str, dict[str, Any] | EncodedDoc], None]:
    """A sink that only takes dicts gets every already-encoded document decoded."""
    def emit(doc_id: str, doc: dict[str, Any] | EncodedDoc) -> None:
        sink.emit(doc_id, doc.as_dict() if type(doc) is EncodedDoc else doc)

    return emit


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))
