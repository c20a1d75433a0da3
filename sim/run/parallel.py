"""Simulating segments on several cores (or a Dask cluster) without changing a byte of the output.

Segments are fixed by the window (UTC days), each with its own warm-up and random streams,
so a segment's documents do not depend on where it runs. A worker writes its segment to a
part file and, once the file is complete, a small result record beside it (the segment's
counts and ground truth, the part's size and hash): a finished segment survives its run
being killed, which is what ``--resume`` picks up.

Sinks that send to a server (OpenSearch) are fed while the simulation runs: the parent
reads part files strictly in segment order, following the one being written like
``tail -f``. File sinks are fed once every segment is finished, by joining the parts in
order and deleting each as it is joined: the parts are the run's only copy of the
documents until then, so a run needs about one ``all_data`` of disk, not two. The output
is identical for any number of workers and any backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import pickle
import select
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.config import Scenario
from sim.model.customers import Customer, make_customer_pool
from sim.outputs.files import WriteFailure
from sim.outputs.sink import EventSink, SinkSummary
from sim.run.segment import SegmentPlan, SegmentResult, simulate_segment
from sim.run.traces import writing_trace_parts
from sim.telemetry.encoding import EncodedDoc, bulk_lines, doc_ids
from sim.telemetry.minutes import Minute

_POLL_S = 0.05
_READ = 4 << 20
_customers: dict[tuple[int, int], list[Customer]] = {}


class SegmentError(RuntimeError):
    """A segment could not be run (backend unreachable, worker lost too often): one line."""


def customers_for(scenario: Scenario) -> list[Customer]:
    """The run's customer pool, made once per process."""
    key = (scenario.seed, scenario.traffic.customers)
    if key not in _customers:
        _customers[key] = make_customer_pool(*key)
    return _customers[key]


# ---------------------------------------------------------------- part files and records

def part_path(parts_dir: Path, index: int) -> Path:
    return parts_dir / f"segment-{index:03d}.ndjson"


def record_path(parts_dir: Path, index: int) -> Path:
    return parts_dir / f"segment-{index:03d}.result"


def file_hash(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()


def write_record(part: Path, result: SegmentResult) -> None:
    """The segment's result beside its complete part file, written atomically (tmp + rename):
    a record exists only for a part that was closed, and says how to check it."""
    record = {"result": result, "part_size": part.stat().st_size, "part_hash": file_hash(part)}
    path = record_path(part.parent, result.index)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)


def read_record(parts_dir: Path, index: int) -> SegmentResult | None:
    """The finished segment's result if its record is there and its part file matches it."""
    path = record_path(parts_dir, index)
    part = part_path(parts_dir, index)
    try:
        record = _load_record(path)
        ok = (part.stat().st_size == record["part_size"]
              and file_hash(part) == record["part_hash"])
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SegmentError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not ok:
        raise SegmentError(f"{part}: does not match its result record (size or hash differ)")
    return record["result"]


class ForeignRecord(SegmentError):
    """A result record this version cannot read: written by another version (it names
    classes that have moved or changed since). This version writes a record atomically,
    so one of its own is either whole or not there."""


def _load_record(path: Path) -> dict[str, Any]:
    """A record as ``write_record`` left it, checked to be of this version's shape."""
    data = path.read_bytes()
    try:
        record = pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - a module or class not (or no longer) there, ...
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ForeignRecord(f"{path.name}: {detail[:200]}") from None
    result = record.get("result") if isinstance(record, dict) else None
    if not isinstance(result, SegmentResult) or \
            any(f.name not in vars(result) for f in dataclasses.fields(SegmentResult)) or \
            not all(isinstance(m, Minute) for m in result.minutes.values()) or \
            not {"part_size", "part_hash"} <= record.keys():
        raise ForeignRecord(f"{path.name}: not a segment result of this version")
    return record


# ---------------------------------------------------------------- simulating one segment

def _segment_to_file(scenario: Scenario, plan: SegmentPlan, run_key: str, part: str,
                     customers: list[tuple[str, str, str, str, str]] | None,
                     also: EventSink | None = None) -> SegmentResult:
    """Worker: simulate one segment into a part file of _bulk lines (rewritten from scratch
    if the task is retried), then leave its result record beside it. ``also`` receives
    every document too (a Dask worker's own OpenSearch sink). A failed write, e.g. a full
    disk, comes back to the parent as a WriteFailure naming the part file."""
    next_id = doc_ids(run_key, plan.index)
    pool = customers_for(scenario) if customers is None else [Customer(*c) for c in customers]
    try:
        with open(part, "wb", buffering=1 << 20) as fh, \
                writing_trace_parts(Path(part), scenario.output.traces.enabled, run_key,
                                    plan.index) as traces:
            write = fh.write
            if also is None:
                def emit(doc: dict[str, Any] | EncodedDoc) -> None:
                    write(bulk_lines(next_id(), doc))
            else:
                also_emit = also.emit

                def emit(doc: dict[str, Any] | EncodedDoc) -> None:
                    doc_id = next_id()
                    write(bulk_lines(doc_id, doc))
                    also_emit(doc_id, doc)

            result = simulate_segment(scenario, plan, pool, emit, traces=traces)
        write_record(Path(part), result)
    except OSError as exc:
        raise WriteFailure.of(part, exc, covers_from=plan.window.start.timestamp()) from None
    return result


def _die_with_parent(parent: int) -> None:
    """Worker initializer: the worker ends when the run's process dies (even by kill -9),
    so no orphan goes on writing a part file that a resumed run rewrites. (Workers are
    children of the forkserver, which outlives the run: PR_SET_PDEATHSIG would not fire.)"""
    def watch() -> None:
        try:
            fd = os.pidfd_open(parent)
            select.select([fd], [], [])  # readable when the process has exited
        except OSError:  # no pidfd (old kernel): poll
            while _alive(parent):
                time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- feeding sinks

def _feed(lines: bytes, count: int, sinks: Sequence[EventSink]) -> None:
    """Every sink takes the part file's bytes as they are: nothing is decoded here."""
    for sink in sinks:
        sink.emit_raw(lines, count)


def _complete_pairs(pending: bytes) -> tuple[int, int]:
    """(bytes up to the last complete action/document pair, number of pairs)."""
    lines = pending.count(b"\n")
    pairs = lines // 2
    if not pairs:
        return 0, 0
    cut = pending.rindex(b"\n") + 1
    if lines % 2:
        cut = pending.rindex(b"\n", 0, cut - 1) + 1
    return cut, pairs


def feed_part(part: Path, sinks: Sequence[EventSink]) -> None:
    """Hand a complete part file to the sinks."""
    with open(part, "rb") as fh:
        pending = b""
        while chunk := fh.read(_READ):
            pending = _feed_pairs(pending + chunk, sinks)
    if pending:
        raise RuntimeError(f"{part}: truncated segment output")


def _feed_pairs(pending: bytes, sinks: Sequence[EventSink]) -> bytes:
    """Feed the complete action/document pairs of ``pending``; return the incomplete rest."""
    cut, pairs = _complete_pairs(pending)
    if pairs:
        _feed(pending[:cut], pairs, sinks)
    return pending[cut:]


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
                pending = _feed_pairs(pending + chunk, sinks)
                continue
            if finished:
                future.result()
                if pending:
                    raise RuntimeError(f"{part}: truncated segment output")
                return
            time.sleep(_POLL_S)


def join_parts(plans: Sequence[SegmentPlan], parts_dir: Path, sinks: Sequence[EventSink]) -> None:
    """Feed the file sinks every part in segment order, deleting each part once joined (the
    run then needs one copy of the data on disk, plus one part)."""
    for plan in plans:
        part = part_path(parts_dir, plan.index)
        if sinks:
            feed_part(part, sinks)
        part.unlink()


# ---------------------------------------------------------------- backends

@dataclass(frozen=True)
class StreamTarget:
    """Where Dask workers stream their segments: no secrets in it (tasks get logged);
    each worker reads OPENSEARCH_USER / OPENSEARCH_PASSWORD from its own environment."""

    url: str  # scrubbed of any user:password
    index: str
    ca_certs: str | None = None
    insecure: bool = False


def run_segments(
    scenario: Scenario,
    plans: Sequence[SegmentPlan],
    run_key: str,
    sinks: Sequence[EventSink],
    workers: int,
    parts_dir: Path,
    progress: Callable[[float], None] | None = None,
    finished: dict[int, SegmentResult] | None = None,
    dask: str | None = None,
    stream: StreamTarget | None = None,
) -> tuple[list[SegmentResult], list[SinkSummary]]:
    """Simulate every segment not already ``finished`` and feed the sinks in order.

    Returns the segments' results and, with Dask streaming, each task's sink summary.
    Local workers are fresh processes per segment; with ``dask`` (a scheduler address) the
    segments are Dask tasks, and with ``stream`` each task also streams into OpenSearch."""
    finished = dict(finished or {})
    parts_dir.mkdir(parents=True, exist_ok=True)
    followers = [s for s in sinks if s.remote]
    joined = [s for s in sinks if not s.remote]
    if dask is not None:
        results, summaries = _run_on_dask(dask, scenario, plans, run_key, parts_dir, progress,
                                          finished, stream)
        for plan in plans:  # complete parts, in order (a retried task rewrote its part)
            if followers:
                feed_part(part_path(parts_dir, plan.index), followers)
    else:
        results, summaries = _run_local(scenario, plans, run_key, followers, workers, parts_dir,
                                        progress, finished), []
    join_parts(plans, parts_dir, joined)
    return results, summaries


def _run_local(scenario: Scenario, plans: Sequence[SegmentPlan], run_key: str,
               followers: Sequence[EventSink], workers: int, parts_dir: Path,
               progress: Callable[[float], None] | None,
               finished: dict[int, SegmentResult]) -> list[SegmentResult]:
    # a fresh process per segment: a week's memory stays that of one segment. Each is forked
    # from a server that has the simulation imported, and gets the customer pool made here
    # once (as plain tuples: compiled frozen records do not unpickle)
    todo = [p for p in plans if p.index not in finished]
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sim.run.parallel"])
    customers = [(c.customer_id, c.country, c.currency, c.client_ip, c.user_agent)
                 for c in customers_for(scenario)] if todo else []
    results: list[SegmentResult] = []
    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo))), mp_context=ctx,
                               max_tasks_per_child=1, initializer=_die_with_parent,
                               initargs=(os.getpid(),))
    ok = False
    try:
        futures = {p.index: pool.submit(_segment_to_file, scenario, p, run_key,
                                        str(part_path(parts_dir, p.index)), customers)
                   for p in todo}
        for plan in plans:
            part = part_path(parts_dir, plan.index)
            if plan.index in finished:  # resumed: its part is complete on disk
                if followers:
                    feed_part(part, followers)
                results.append(finished[plan.index])
            else:
                future = futures[plan.index]
                if followers:
                    _follow(part, future, followers)
                results.append(future.result())
            if progress is not None:
                progress(plan.warmup_s + plan.window.seconds)
        ok = True
    finally:
        if not ok:  # stop now: no worker goes on simulating a run that is over
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.kill()
        # wait even after a kill (quick: the pool is broken then): shutdown(wait=False)
        # clears the pool's process table under its management thread, which then dies
        # with a traceback on stderr
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _run_on_dask(address: str, scenario: Scenario, plans: Sequence[SegmentPlan], run_key: str,
                 parts_dir: Path, progress: Callable[[float], None] | None,
                 finished: dict[int, SegmentResult], stream: StreamTarget | None
                 ) -> tuple[list[SegmentResult], list[SinkSummary]]:
    try:
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError:
        raise SegmentError("--dask needs the optional extra: pip install 'storefront-sim[dask]'"
                           ) from None
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SegmentError(f"cannot reach the Dask scheduler at {address}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
                           ) from None
    with client:
        futures = {}
        for plan in plans:
            part = str(part_path(parts_dir, plan.index))
            if plan.index in finished:
                if stream is not None:  # resumed: make sure its documents are in the index
                    futures[plan.index] = client.submit(
                        _dask_restream, part, plan.index, stream, str(parts_dir), pure=False,
                        key=f"storefront-{run_key}-{plan.index:03d}-restream")
                continue
            futures[plan.index] = client.submit(
                _dask_segment, scenario, plan, run_key, part, stream, str(parts_dir),
                pure=False, key=f"storefront-{run_key}-{plan.index:03d}")
        outcome: dict[int, tuple[SegmentResult | None, SinkSummary | None]] = {}
        index_of = {f.key: i for i, f in futures.items()}
        by_index = {p.index: p for p in plans}
        if progress is not None:  # a resumed run's finished segments are done already
            for i in finished:
                progress(by_index[i].warmup_s + by_index[i].window.seconds)
        try:
            for future in as_completed(list(futures.values()), loop=client.loop):
                i = index_of[future.key]
                outcome[i] = future.result()
                if progress is not None and i not in finished:
                    plan = by_index[i]
                    progress(plan.warmup_s + plan.window.seconds)
        except KilledWorker as exc:
            raise SegmentError(f"a Dask worker died running {exc.task}, too often to retry "
                               "(see the workers' logs)") from None
        finally:
            for future in futures.values():
                future.cancel()
    results = []
    summaries = []
    for plan in plans:
        seg, summary = outcome.get(plan.index, (None, None))
        if plan.index in finished:
            results.append(finished[plan.index])
        else:
            assert seg is not None
            results.append(seg)
        if summary is not None:
            summaries.append(summary)
    return results, summaries


def _worker_sink(stream: StreamTarget, parts_dir: str, index: int) -> Any:
    from sim.outputs.opensearch import OpenSearchSink, connect

    client = connect(stream.url, ca_certs=stream.ca_certs, insecure=stream.insecure)
    return OpenSearchSink(client, stream.index,
                          dead_letter_path=Path(parts_dir) / f"dead_letter-{index:03d}.ndjson")


def _dask_segment(scenario: Scenario, plan: SegmentPlan, run_key: str, part: str,
                  stream: StreamTarget | None, parts_dir: str
                  ) -> tuple[SegmentResult, SinkSummary | None]:
    """Dask task: one segment into its part file (shared storage) and, when streaming, into
    OpenSearch with the run's deterministic ids (a retry after a lost worker re-sends what
    its predecessor sent: ``create`` answers 409, nothing is duplicated)."""
    if stream is None:
        return _segment_to_file(scenario, plan, run_key, part, None), None
    sink = _worker_sink(stream, parts_dir, plan.index)
    ok = False
    try:
        result = _segment_to_file(scenario, plan, run_key, part, None, also=sink)
        ok = True
    finally:
        summary = sink.close(ok)
    return result, summary


def _dask_restream(part: str, index: int, stream: StreamTarget, parts_dir: str
                   ) -> tuple[None, SinkSummary]:
    """Dask task of a resumed run: a finished segment's part into OpenSearch again (what the
    killed run had sent is answered 409: nothing is duplicated)."""
    sink = _worker_sink(stream, parts_dir, index)
    ok = False
    try:
        feed_part(Path(part), [sink])
        ok = True
    finally:
        summary = sink.close(ok)
    return None, summary


def merge_summaries(name: str, summaries: Sequence[SinkSummary]) -> SinkSummary:
    """One sink summary for the tasks that each streamed a segment."""
    total = SinkSummary(name=name)
    by_type: dict[str, dict[str, int]] = {}
    extra = {"retried_items": 0, "retry_rounds": 0, "ambiguous_409": 0}
    for s in summaries:
        total.generated += s.generated
        total.indexed += s.indexed
        total.already_present += s.already_present
        total.dead_lettered += s.dead_lettered
        for kind, row in s.details.get("by_event_type", {}).items():
            acc = by_type.setdefault(kind, dict.fromkeys(row, 0))
            for k, v in row.items():
                acc[k] = acc.get(k, 0) + v
        for k in extra:
            extra[k] += int(s.details.get(k, 0))
        if "index" in s.details:
            total.details["index"] = s.details["index"]
    total.details.update(by_event_type=dict(sorted(by_type.items())), tasks=len(summaries),
                         **extra)
    return total


# ---------------------------------------------------------------- one process, no parts

def in_process(scenario: Scenario, plan: SegmentPlan, run_key: str,
               sinks: Sequence[EventSink], progress: Callable[[float], None] | None
               ) -> SegmentResult:
    """A segment simulated here, its documents straight into the sinks (no part file)."""
    return simulate_segment(scenario, plan, customers_for(scenario),
                            sink_emitter(run_key, plan.index, sinks), progress)


def sink_emitter(run_key: str, index: int, sinks: Sequence[EventSink]
                 ) -> Callable[[dict[str, Any] | EncodedDoc], None]:
    """A segment's ``emit`` that gives every document its id and hands it to each sink
    (a sink that does not take encoded documents gets them decoded)."""
    next_id = doc_ids(run_key, index)
    emitters = [sink.emit if sink.accepts_encoded else _decoding(sink) for sink in sinks]

    def emit(doc: dict[str, Any] | EncodedDoc) -> None:
        doc_id = next_id()
        for sink_emit in emitters:
            sink_emit(doc_id, doc)

    return emit


def _decoding(sink: EventSink) -> Callable[[str, dict[str, Any] | EncodedDoc], None]:
    """A sink that only takes dicts gets every already-encoded document decoded."""
    def emit(doc_id: str, doc: dict[str, Any] | EncodedDoc) -> None:
        sink.emit(doc_id, doc.as_dict() if type(doc) is EncodedDoc else doc)

    return emit


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))
