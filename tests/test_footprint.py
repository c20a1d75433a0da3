"""What a run leaves on disk (issue #15): about all_data and nothing more by default, the
seed's split files on request, and ``--gzip`` files that decompress to the plain bytes,
are the same for any worker count, and load into OpenSearch as they are."""

from __future__ import annotations

import gzip
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from opensearch_fixtures import opensearch_node, opensearch_url  # noqa: F401

from sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("normal_data", "incident_data", "recovery_data")


def _scenario(tmp_path: Path, split_files: bool = False) -> Path:
    path = tmp_path / f"fp-{split_files}.yaml"
    path.write_text(
        "name: footprint\nseed: 5\n"
        "faults:\n  - {type: payment_gateway_slowdown, start: today 00:10, duration_minutes: 6}\n"
        f"output: {{split_files: {str(split_files).lower()}}}\n")
    return path


def _run(scenario: Path, out: Path, *flags: str) -> Path:
    # crosses midnight: two segments, so --workers 2 really runs two processes
    argv = [str(scenario), "--today", "2026-11-27", "--start", "yesterday 23:50", "--end",
            "today 00:30", "--base-tps", "4", "--output-dir", str(out), "--quiet", *flags]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("footprint")
    plain = _scenario(tmp)
    return {
        "default": _run(plain, tmp / "default", "--workers", "2"),
        "split": _run(_scenario(tmp, split_files=True), tmp / "split", "--workers", "2"),
        "gzip1": _run(plain, tmp / "gzip1", "--gzip", "--workers", "1"),
        "gzip2": _run(plain, tmp / "gzip2", "--gzip", "--workers", "2"),
    }


def _bytes_on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def test_default_run_writes_about_all_data_only(runs: dict[str, Path]) -> None:
    out = runs["default"]
    all_data = (out / "all_data.ndjson").stat().st_size
    assert all_data > 1_000_000
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == [
        "alerts.ndjson", "all_data.ndjson", "incidents.ndjson", "run_summary.json"]
    assert _bytes_on_disk(out) <= 1.1 * all_data
    # the seed's layout, when asked for, is more than twice that
    assert _bytes_on_disk(runs["split"]) > 1.9 * (runs["split"] / "all_data.ndjson").stat().st_size


def test_split_command_writes_the_files_a_run_wrote(runs: dict[str, Path]) -> None:
    out = runs["default"]
    assert main(["split", str(out)]) == 0
    for name in ("all_data", "incidents", *SPLITS):
        assert (out / f"{name}.ndjson").read_bytes() == \
            (runs["split"] / f"{name}.ndjson").read_bytes(), name
    incident = (out / "incident_data.ndjson").read_bytes()
    assert incident.count(b"\n") > 100  # the fault showed: not an empty cut
    assert sum((out / f"{n}.ndjson").stat().st_size for n in SPLITS) == \
        (out / "all_data.ndjson").stat().st_size


def test_split_command_on_gzip_output_writes_gzip(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "g"
    out.mkdir()
    for name in ("all_data", "incidents"):
        (out / f"{name}.ndjson.gz").write_bytes((runs["gzip2"] / f"{name}.ndjson.gz").read_bytes())
    assert main(["split", str(out)]) == 0
    for name in SPLITS:
        assert gzip.decompress((out / f"{name}.ndjson.gz").read_bytes()) == \
            (runs["split"] / f"{name}.ndjson").read_bytes()


def test_split_command_without_a_run_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["split", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "all_data.ndjson" in err and str(tmp_path) in err
    (tmp_path / "all_data.ndjson").write_bytes(b"")
    (tmp_path / "incidents.ndjson").write_bytes(b'{"index":{}}\nnot json\n')
    assert main(["split", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "incidents.ndjson" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all_data.ndjson", "incidents.ndjson"]


def test_gzip_decompresses_to_the_plain_bytes_for_any_worker_count(runs: dict[str, Path]) -> None:
    for name in ("all_data", "incidents"):
        one = (runs["gzip1"] / f"{name}.ndjson.gz").read_bytes()
        two = (runs["gzip2"] / f"{name}.ndjson.gz").read_bytes()
        assert one == two, name  # the compressed bytes themselves
        assert gzip.decompress(one) == (runs["default"] / f"{name}.ndjson").read_bytes()
        # no modification time, no file name: the header is the same on any day
        assert one[:4] == b"\x1f\x8b\x08\x00" and one[4:8] == b"\x00\x00\x00\x00"
    assert sorted(p.name for p in runs["gzip2"].iterdir() if p.name != ".lock") == [
        "alerts.ndjson.gz", "all_data.ndjson.gz", "incidents.ndjson.gz", "run_summary.json"]
    ratio = (runs["default"] / "all_data.ndjson").stat().st_size / \
        (runs["gzip2"] / "all_data.ndjson.gz").stat().st_size
    assert ratio > 4


def _http(method: str, url: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> dict:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return orjson.loads(resp.read())


def test_gzip_file_loads_into_opensearch_with_content_encoding(
        runs: dict[str, Path], opensearch_url: str) -> None:  # noqa: F811
    """The README's curl: the .gz file is the request body, the node decompresses it."""
    url = opensearch_url.rstrip("/")
    index = f"gz-{uuid.uuid4().hex[:8]}"
    plain = (runs["default"] / "all_data.ndjson").read_bytes().splitlines()
    try:
        _http("PUT", f"{url}/{index}", (ROOT / "mapping.json").read_bytes(),
              {"Content-Type": "application/json"})
        resp = _http("POST", f"{url}/{index}/_bulk?refresh=true&filter_path=errors,items.*.status",
                     (runs["gzip2"] / "all_data.ndjson.gz").read_bytes(),
                     {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
        assert resp["errors"] is False and len(resp["items"]) == len(plain) // 2
        assert _http("GET", f"{url}/{index}/_count")["count"] == len(plain) // 2
        for i in (0, len(plain) // 4 * 2, len(plain) - 2):
            doc_id = orjson.loads(plain[i])["index"]["_id"]
            got = _http("GET", f"{url}/{index}/_doc/{doc_id}")
            assert got["_source"] == orjson.loads(plain[i + 1])
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{url}/{index}", method="DELETE"),
                               timeout=60).close()
