"""Crash and resume (issue #14 part 5): part directories never outlive a run that could clean
up, a killed run (kill -9) is continued by --resume to byte-identical files, and a live run
keeps a second one out of its directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401

from sim.cli import main
from sim.run import workspace

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = str(ROOT / "scenarios" / "baseline.yaml")
# two segments: a run is split at every UTC midnight
ARGS = ["--today", "2026-11-27", "--start", "yesterday 22:00", "--end", "today 02:00",
        "--base-tps", "2", "--quiet", "--workers", "1"]
FILES = ("all_data.ndjson", "incidents.ndjson")  # split files: off by default (#15)
WAIT_S = 90.0


def _run(out: Path, *extra: str) -> int:
    return main([SCENARIO, *ARGS, "--output-dir", str(out), *extra])


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), SCENARIO, *ARGS,
                             "--output-dir", str(out), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists()
            and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".segments")
                  or p.name.endswith(".partial"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    assert _run(out) == 0
    return out


def test_kill_9_then_resume_is_byte_identical(tmp_path, reference, capsys):
    out = tmp_path / "out"
    proc = _start(out)
    parts = out / workspace.PARTS
    try:
        _wait_for(parts / "segment-000.result", proc)
        workers = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the run only: its workers notice and end
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert workers and not _alive(workers)  # no orphan goes on writing parts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "all_data.ndjson").exists()
    assert (parts / "segment-000.ndjson").exists() and (parts / "manifest.json").exists()
    assert not (parts / "segment-001.result").exists()
    # mark segment 0's record: the resumed run must take its result from it, not simulate it
    record_file = parts / "segment-000.result"
    record = pickle.loads(record_file.read_bytes())
    record["result"].counts["resumed_from_record"] = 0
    record_file.write_bytes(pickle.dumps(record))
    capsys.readouterr()
    assert _run(out, "--resume") == 0
    for name in FILES:
        assert _sha(out / name) == _sha(reference / name), name
    summary = (out / "run_summary.json").read_text()
    assert '"resumed_from_record": 0' in summary
    print(f"RELIABILITY kill -9 + --resume, files: {json.loads(summary)['total_documents']:,} "
          "documents, every file byte-identical to the uninterrupted run")
    assert _leftovers(out) == []


def _killed_after_first_segment(out: Path) -> Path:
    """A run into ``out`` killed with SIGKILL once its first segment has its result record,
    as a crash leaves it; its part directory."""
    proc = _start(out)
    parts = out / workspace.PARTS
    try:
        _wait_for(parts / "segment-000.result", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return parts


def test_resume_refuses_parts_of_another_run_or_incomplete_parts(tmp_path, capsys):
    out = tmp_path / "out"
    parts = _killed_after_first_segment(out)
    capsys.readouterr()
    # another seed is another run: one line, exit 2, the parts left as they were
    assert _run(out, "--resume", "--seed", "7") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belong to another run" in err[0] and "seed" in err[0]
    assert (parts / "segment-000.result").exists()
    # a part that no longer matches its record (size and hash are kept in the record)
    part = parts / "segment-000.ndjson"
    part.write_bytes(part.read_bytes()[:-10])
    assert _run(out, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "segment-000.ndjson" in err[0] and "does not match" in err[0]
    # nothing to resume in a fresh directory
    assert _run(tmp_path / "empty", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no killed run to resume" in err[0]


def _older_shape(record: bytes) -> bytes:
    """The record of a version whose segment result had no ground-truth minutes yet."""
    old = pickle.loads(record)
    del vars(old["result"])["minutes"]
    return pickle.dumps(old)


# how a record written by another version may look to this one
FOREIGN_RECORDS = {
    # a module that has moved since (before sim/ was split by role: sim.segment)
    "No module named 'sim.segment'": lambda record: pickle.dumps(
        pickle.loads(record), protocol=2).replace(b"csim.run.segment\nSegmentResult\n",
                                                  b"csim.segment\nSegmentResult\n"),
    # a class renamed since
    "SegmentOutcome": lambda record: pickle.dumps(pickle.loads(record), protocol=2).replace(
        b"csim.run.segment\nSegmentResult\n", b"csim.run.segment\nSegmentOutcome\n"),
    "not a segment result of this version": _older_shape,
    "UnpicklingError": lambda record: b"not a pickle",
}


def test_resume_of_parts_written_by_another_version_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    parts = _killed_after_first_segment(out)
    record_file = parts / "segment-000.result"
    record = record_file.read_bytes()
    for problem, forge in FOREIGN_RECORDS.items():
        foreign = forge(record)
        assert foreign != record, problem
        record_file.write_bytes(foreign)  # the manifest still matches: same run, same plan
        capsys.readouterr()
        assert _run(out, "--resume") == 2, problem
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert "segment-000.result" in lines[0] and problem in lines[0], lines[0]
        assert "written by another version of storefront-sim" in lines[0], lines[0]
        assert lines[0].endswith("run without --resume to start again"), lines[0]
        assert record_file.read_bytes() == foreign  # the parts are left as they were
        assert not (out / "all_data.ndjson").exists()
    # and without --resume the run starts again
    assert _run(out) == 0
    assert _leftovers(out) == []


def test_sigterm_removes_the_part_directory(tmp_path):
    out = tmp_path / "out"
    proc = _start(out)
    try:
        _wait_for(out / workspace.PARTS / "segment-000.ndjson", proc)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read().decode().strip().splitlines()
    assert code == 130 and err == ["error: interrupted; no complete-looking output was left behind"]
    assert _leftovers(out) == [] and not (out / "all_data.ndjson").exists()


def test_a_stale_part_directory_is_removed_by_the_next_run(tmp_path, reference):
    out = tmp_path / "out"
    for stale in (out / workspace.PARTS, out / ".segments-k2j4x9"):  # this and older versions
        stale.mkdir(parents=True)
        (stale / "segment-000.ndjson").write_bytes(b"left by a killed run\n")
    assert _run(out) == 0
    assert _leftovers(out) == []
    assert _sha(out / "all_data.ndjson") == _sha(reference / "all_data.ndjson")


def test_a_second_live_run_into_the_same_directory_stops(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "all_data.ndjson").write_bytes(b"an earlier run's file\n")
    with workspace.locked(out):  # as a live run holds it
        assert _run(out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another run is writing into this directory" in err[0]
    assert (out / "all_data.ndjson").read_bytes() == b"an earlier run's file\n"
    assert _leftovers(out) == []


def test_a_failing_sink_removes_the_part_directory(tmp_path):
    from sim.cli import build_parser, load_from_args
    from sim.run.batch import simulate

    class Refusing:
        accepts_encoded = True
        remote = True  # fed while the workers simulate
        send_when_idle = False

        def emit(self, doc_id: str, doc: object) -> None:
            raise RuntimeError("refused")

        def emit_raw(self, lines: bytes, count: int) -> None:
            raise RuntimeError("refused")

        def flush(self) -> None:
            pass

        def close(self, ok: bool = True):
            from sim.outputs.sink import SinkSummary
            return SinkSummary("refusing")

    out = tmp_path / "out"
    scenario, today = load_from_args(build_parser().parse_args(
        [SCENARIO, *ARGS, "--output-dir", str(out)]))
    with pytest.raises(RuntimeError, match="refused"):
        simulate(scenario, today, out, [Refusing()], workers=2)
    assert _leftovers(out) == [] and not (out / "all_data.ndjson").exists()


def test_a_resumed_stream_completes_the_index_without_duplicates(tmp_path, opensearch_url,  # noqa: F811
                                                                  capsys):
    import uuid

    from opensearchpy import OpenSearch

    index = f"resume-{uuid.uuid4().hex[:8]}"
    client = OpenSearch(opensearch_url)
    out = tmp_path / "out"
    stream = ("--opensearch", opensearch_url, "--index", index)
    proc = _start(out, *stream)
    try:
        try:
            _wait_for(out / workspace.PARTS / "segment-000.result", proc)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        client.indices.refresh(index=index)
        before = client.count(index=index)["count"]
        assert _run(out, "--resume", *stream) == 0
        summary = json.loads((out / "run_summary.json").read_text())
        total = summary["total_documents"]
        sink = next(s for s in summary["sinks"] if s["name"] == "opensearch")
        client.indices.refresh(index=index)
        # every document once: ids are deterministic and sent with create (409 if present)
        assert before < total
        assert client.count(index=index)["count"] == total
        assert sink["indexed"] + sink["already_present"] == total and sink["unaccounted"] == 0
        assert sink["already_present"] >= before > 0  # what the killed run had sent
        print(f"RELIABILITY kill -9 + --resume, streaming: generated {total:,}, in the index "
              f"after the kill {before:,}, resumed run indexed {sink['indexed']:,} + already "
              f"present {sink['already_present']:,}, index {total:,}: lost 0, duplicated 0")
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
