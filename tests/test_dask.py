"""The Dask backend (issue #15 part 1) on a local cluster of two worker processes: the same
files and the same index content as one local worker, a worker killed mid-task changes
neither, and an unreachable scheduler is one line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch
from opensearchpy.helpers import scan

from sim.cli import main
from sim.run import workspace

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = str(ROOT / "scenarios" / "baseline.yaml")
# two segments (split where half of 08:00-16:00's load has arrived: see sim.run.plan.split_points)
ARGS = ["--today", "2026-11-27", "--start", "today 08:00", "--end", "today 16:00",
        "--base-tps", "1", "--quiet"]
FILES = ("all_data.ndjson", "incidents.ndjson")  # split files: off by default (#15)
WAIT_S = 120.0


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def indices(opensearch_url):  # noqa: F811
    names = {k: f"dask-{k}-{uuid.uuid4().hex[:8]}" for k in ("one", "dask", "killed", "resumed")}
    yield names
    OpenSearch(opensearch_url).indices.delete(index=",".join(names.values()) + ",dask-inc-*",
                                              ignore_unavailable=True)


def _run(out: Path, url: str, index: str, *extra: str) -> int:
    return main([SCENARIO, *ARGS, "--output-dir", str(out), "--opensearch", url,
                 "--index", index, *extra])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _content(client: OpenSearch, index: str) -> dict[str, str]:
    """Every document of the index: _id -> hash of its source."""
    client.indices.refresh(index=index)
    return {hit["_id"]: hashlib.sha256(json.dumps(hit["_source"], sort_keys=True).encode())
            .hexdigest() for hit in scan(client, index=index, size=5000)}


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, opensearch_url, indices):  # noqa: F811
    out = tmp_path_factory.mktemp("one")
    assert _run(out, opensearch_url, indices["one"], "--workers", "1") == 0
    return out, _content(OpenSearch(opensearch_url), indices["one"])


def test_two_dask_workers_write_the_same_files_and_index(tmp_path, cluster, opensearch_url,  # noqa: F811
                                                         indices, one_worker):
    ref_dir, ref_index = one_worker
    out = tmp_path / "dask"
    assert _run(out, opensearch_url, indices["dask"], "--dask", cluster.scheduler_address) == 0
    for name in FILES:
        assert _sha(out / name) == _sha(ref_dir / name), name
    summary = json.loads((out / "run_summary.json").read_text())
    stream = next(s for s in summary["sinks"] if s["name"] == "opensearch")
    assert stream["tasks"] == 2 and stream["indexed"] == summary["total_documents"]
    assert _content(OpenSearch(opensearch_url), indices["dask"]) == ref_index
    assert len(ref_index) == summary["total_documents"]
    assert not [p for p in out.iterdir() if p.name.startswith(".segments")]


def test_a_worker_killed_mid_task_is_retried_without_duplicates(tmp_path, cluster,
                                                                 opensearch_url,  # noqa: F811
                                                                 indices, one_worker,
                                                                 monkeypatch):
    ref_dir, ref_index = one_worker
    out = tmp_path / "killed"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(
        _run(out, opensearch_url, indices["killed"])))
    runner.start()
    killed = None
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        deadline = time.monotonic() + WAIT_S
        part = out / workspace.PARTS / "segment-000.ndjson"
        # a good share of segment 0 written (and some of it sent) but not finished
        while killed is None:
            assert time.monotonic() < deadline and runner.is_alive(), "no task to kill"
            if part.exists() and part.stat().st_size > 8 << 20:
                for worker, keys in client.processing().items():
                    if any(str(k).endswith("-000") for k in keys):
                        pid = client.run(os.getpid, workers=[worker])[worker]
                        os.kill(pid, signal.SIGKILL)
                        killed = worker
            time.sleep(0.05)
    runner.join(WAIT_S)
    assert codes == [0]
    assert not (out / workspace.PARTS / "segment-000.result").exists()  # removed with the run
    for name in FILES:
        assert _sha(out / name) == _sha(ref_dir / name), name
    summary = json.loads((out / "run_summary.json").read_text())
    stream = next(s for s in summary["sinks"] if s["name"] == "opensearch")
    # the retry re-sent what the dead worker had already indexed: answered 409, not doubled
    assert stream["already_present"] > 0
    assert stream["indexed"] + stream["already_present"] == summary["total_documents"]
    assert _content(OpenSearch(opensearch_url), indices["killed"]) == ref_index


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    code = main([SCENARIO, *ARGS, "--output-dir", str(tmp_path / "out"),
                 "--dask", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err[0]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".lock"]


def test_a_killed_local_run_resumes_on_dask(tmp_path, cluster, opensearch_url,  # noqa: F811
                                            indices, one_worker):
    """The plan does not depend on the backend: finished local segments are kept, the rest
    run as tasks, and the finished ones are streamed again by a task (409s, no duplicates)."""
    import subprocess
    import sys

    ref_dir, ref_index = one_worker
    out = tmp_path / "resumed"
    index = indices["resumed"]
    args = [*ARGS, "--output-dir", str(out), "--opensearch", opensearch_url, "--index", index]
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), SCENARIO, *args,
                             "--workers", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    record = out / workspace.PARTS / "segment-000.result"
    deadline = time.monotonic() + WAIT_S
    try:
        while not record.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert main([SCENARIO, *args, "--resume", "--dask", cluster.scheduler_address]) == 0
    for name in FILES:
        assert _sha(out / name) == _sha(ref_dir / name), name
    summary = json.loads((out / "run_summary.json").read_text())
    stream = next(s for s in summary["sinks"] if s["name"] == "opensearch")
    assert stream["tasks"] == 2 and stream["already_present"] > 0  # segment 0 sent again
    assert stream["indexed"] + stream["already_present"] == summary["total_documents"]
    assert _content(OpenSearch(opensearch_url), index) == ref_index
